"""``@handler``, ``Handler`` and ``HandlerRegistry`` (handlers/base.py, registry.py)."""

from __future__ import annotations

import asyncio
import inspect
import json
import textwrap
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowmonkey.errors import FlowMonkeyError, HandlerNotFound
from flowmonkey.handlers import (
    HANDLERS_NOT_LOADED,
    Handler,
    HandlerContext,
    HandlerMetadata,
    HandlerRegistry,
    RegisteredHandler,
    handler,
)
from flowmonkey.model.flow import Step
from flowmonkey.model.result import Result


def make_ctx(input: Any = None, config: Any = None) -> HandlerContext:
    return HandlerContext(
        input=input,
        config=config if config is not None else {},
        context={},
        step=Step(id="s", type="x"),
        execution_id="e",
        attempt=1,
        run_number=1,
        tenant_id=None,
    )


async def call(rh: RegisteredHandler, ctx: HandlerContext) -> Any:
    """Run a registered handler the way the engine does (minus the thread pool)."""
    out = rh.fn(ctx)
    return await out if rh.is_async else out


@handler("greet", description="Says hello", category="utility", tags=["demo"], version="1.2")
def greet(ctx: HandlerContext) -> Result:
    return Result.success({"message": f"Hello, {ctx.input['name']}!"})


@handler("agreet", timeout=2.5)
async def agreet(ctx: HandlerContext) -> str:
    """Async greeting.

    Second paragraph is not part of the description.
    """
    return f"Hi {ctx.input['name']}"


@dataclass
class Line:
    sku: str
    qty: int = 1


@dataclass
class ChargeInput:
    amount: float
    lines: list[Line]


@dataclass
class Positive:
    n: int

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError("n must be positive")


class Charge(Handler):
    """Charges a card."""

    type = "charge"
    category = "external"
    timeout = "1m"
    retryable = False

    @dataclass
    class Config:
        currency: str
        capture: bool = True

    Input = ChargeInput

    def __init__(self) -> None:
        self.calls: list[HandlerContext] = []

    async def execute(self, ctx: HandlerContext) -> Result:
        self.calls.append(ctx)
        config: Charge.Config = ctx.config  # type: ignore[assignment]  # typed by Config
        return Result.success({"amount": ctx.input.amount, "currency": config.currency})


class SyncTyped(Handler):
    type = "sync-typed"

    @dataclass
    class Part:
        name: str

    @dataclass
    class Input:
        parts: list[SyncTyped.Part]

    def __init__(self) -> None:
        self.calls = 0

    def execute(self, ctx: HandlerContext) -> Any:
        self.calls += 1
        return [p.name for p in ctx.input.parts]


class Plain(Handler):
    type = "plain"

    def execute(self, ctx: HandlerContext) -> Any:
        return ctx.input


# -- decorator ----------------------------------------------------------------------------


def test_decorator_attaches_metadata_and_returns_function_unchanged() -> None:
    meta = greet.__flowmonkey_handler__  # type: ignore[attr-defined]
    assert isinstance(meta, HandlerMetadata)
    assert meta.type == "greet"
    assert meta.name == "greet"
    assert meta.description == "Says hello"
    assert meta.category == "utility"
    assert meta.tags == ("demo",)
    assert meta.version == "1.2"
    assert meta.is_async is False
    assert meta.timeout is None
    # still a plain, directly callable function
    assert greet(make_ctx({"name": "Ann"})) == Result.success({"message": "Hello, Ann!"})


def test_decorator_reads_async_timeout_and_docstring() -> None:
    meta = agreet.__flowmonkey_handler__  # type: ignore[attr-defined]
    assert meta.is_async is True
    assert meta.timeout == timedelta(seconds=2.5)
    assert meta.description == "Async greeting."


def test_decorator_does_not_register_anywhere() -> None:
    assert len(HandlerRegistry(standard=False)) == 0


def test_decorator_misuse_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match=r'write @handler\("my-type"\)'):
        handler(greet)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non-empty string"):
        handler("  ")
    with pytest.raises(TypeError, match="exactly one positional argument"):

        @handler("two")
        def two(ctx: HandlerContext, other: int) -> None: ...

    with pytest.raises(TypeError, match="subclass Handler"):
        handler("cls")(Plain)
    with pytest.raises(TypeError, match="input_schema must be"):
        handler("bad", input_schema=int)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (timedelta(seconds=3), timedelta(seconds=3)),
        (10, timedelta(seconds=10)),
        ("1m30s", timedelta(seconds=90)),
        ("500ms", timedelta(milliseconds=500)),
    ],
)
def test_timeout_forms(spec: Any, expected: timedelta) -> None:
    @handler("t", timeout=spec)
    def fn(ctx: HandlerContext) -> None: ...

    assert fn.__flowmonkey_handler__.timeout == expected  # type: ignore[attr-defined]
    assert HandlerRegistry([fn], standard=False).get("t").timeout == expected  # type: ignore[union-attr]


@pytest.mark.parametrize("spec", [0, -1, "soon", True])
def test_bad_timeouts_are_rejected(spec: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="timeout"):
        handler("t", timeout=spec)


# -- registering functions ----------------------------------------------------------------


async def test_sync_and_async_functions_are_stored_unwrapped() -> None:
    registry = HandlerRegistry(standard=False)
    rh = registry.register(greet)
    assert rh is registry.get("greet")
    assert rh.fn is greet  # hot path: no wrapper
    assert rh.is_async is False
    assert rh.metadata is greet.__flowmonkey_handler__  # type: ignore[attr-defined]
    arh = registry.register(agreet)
    assert arh.fn is agreet
    assert arh.is_async is True
    assert arh.timeout == timedelta(seconds=2.5)
    assert await call(arh, make_ctx({"name": "Bo"})) == "Hi Bo"


async def test_plain_function_with_type_kwarg() -> None:
    async def raw(ctx: HandlerContext) -> int:
        return 1

    registry = HandlerRegistry(standard=False)
    rh = registry.register(raw, type="raw")
    assert rh.fn is raw
    assert rh.is_async is True
    assert rh.metadata.type == "raw"
    assert rh.metadata.name == "raw"
    assert await call(rh, make_ctx()) == 1
    with pytest.raises(TypeError, match="not decorated with @handler"):
        registry.register(lambda ctx: None)
    with pytest.raises(TypeError, match="exactly one positional argument"):
        registry.register(lambda: None, type="noargs")


def test_type_kwarg_renames_a_decorated_function() -> None:
    registry = HandlerRegistry([greet], standard=False)
    rh = registry.register(greet, type="hello")
    assert registry.types() == ["greet", "hello"]
    assert rh.metadata.type == "hello"
    assert rh.metadata.description == "Says hello"
    assert rh.fn is greet


def test_callable_object_with_async_call_counts_as_async() -> None:
    class Callable:
        async def __call__(self, ctx: HandlerContext) -> int:
            return 2

    rh = HandlerRegistry(standard=False).register(Callable(), type="obj")
    assert rh.is_async is True


# -- registering classes ------------------------------------------------------------------


async def test_class_is_instantiated_once_and_fn_is_bound_execute() -> None:
    registry = HandlerRegistry(standard=False)
    rh = registry.register(Plain)
    assert rh.is_async is False
    assert inspect.ismethod(rh.fn)
    assert rh.fn.__func__ is Plain.execute
    instance = rh.fn.__self__
    assert isinstance(instance, Plain)
    assert registry.get("plain").fn.__self__ is instance  # type: ignore[union-attr]
    assert await call(rh, make_ctx({"a": 1})) == {"a": 1}


def test_instance_registration_uses_that_instance() -> None:
    plain = Plain()
    rh = HandlerRegistry([plain], standard=False).get("plain")
    assert rh is not None
    assert rh.fn.__self__ is plain  # type: ignore[attr-defined]


def test_class_metadata() -> None:
    meta = HandlerRegistry([Charge], standard=False).metadata("charge")
    assert meta is not None
    assert meta.name == "charge"
    assert meta.description == "Charges a card."
    assert meta.category == "external"
    assert meta.timeout == timedelta(minutes=1)
    assert meta.retryable is False
    assert meta.is_async is True
    assert meta.config_schema is not None
    assert meta.config_schema["required"] == ["currency"]
    assert meta.input_schema is not None
    assert meta.input_schema["properties"]["lines"]["items"]["title"] == "Line"
    # A class without a docstring does not inherit Handler's.
    assert HandlerRegistry([Plain], standard=False).metadata("plain").description is None  # type: ignore[union-attr]


def test_bad_classes_are_rejected() -> None:
    class NoType(Handler):
        def execute(self, ctx: HandlerContext) -> None: ...

    class NoExecute(Handler):
        type = "abstract"

    class NeedsArgs(Handler):
        type = "args"

        def __init__(self, x: int) -> None: ...

        def execute(self, ctx: HandlerContext) -> None: ...

    class NotAHandler:
        type = "nope"

        def execute(self, ctx: HandlerContext) -> None: ...

    registry = HandlerRegistry(standard=False)
    with pytest.raises(TypeError, match="NoType must set `type`"):
        registry.register(NoType)
    with pytest.raises(TypeError, match="abstract"):
        registry.register(NoExecute)
    with pytest.raises(TypeError, match="constructible without arguments"):
        registry.register(NeedsArgs)
    with pytest.raises(TypeError, match="not a Handler subclass"):
        registry.register(NotAHandler)
    with pytest.raises(TypeError, match="cannot register"):
        registry.register(42)
    assert len(registry) == 0
    # An instance built with arguments is fine.
    assert registry.register(NeedsArgs(1)).type == "args"


# -- validation and conversion ------------------------------------------------------------


async def test_invalid_input_and_config_fail_without_calling_handler() -> None:
    charge = Charge()
    rh = HandlerRegistry([charge], standard=False).get("charge")
    assert rh is not None
    result = await call(rh, make_ctx({"amount": "ten", "lines": [{"qty": 2}]}, {}))
    assert isinstance(result, Result)
    assert result.outcome == "failure"
    assert result.error is not None
    assert result.error.code == "INPUT_VALIDATION_FAILED"
    assert result.error.retryable is False
    assert result.error.message == (
        "currency: is required; amount: must be a number; lines[0].sku: is required"
    )
    assert result.error.details == [
        {"path": "currency", "message": "is required", "source": "config"},
        {"path": "amount", "message": "must be a number", "source": "input"},
        {"path": "lines[0].sku", "message": "is required", "source": "input"},
    ]
    assert charge.calls == []  # execute never ran


async def test_valid_input_is_converted_to_dataclasses() -> None:
    charge = Charge()
    rh = HandlerRegistry([charge], standard=False).get("charge")
    assert rh is not None
    assert rh.is_async is True
    assert inspect.iscoroutinefunction(rh.fn)
    raw_input = {"amount": 5, "lines": [{"sku": "a"}, {"sku": "b", "qty": 3}]}
    ctx = make_ctx(raw_input, {"currency": "EUR"})
    result = await call(rh, ctx)
    assert result == Result.success({"amount": 5.0, "currency": "EUR"})
    [seen] = charge.calls
    assert seen.input == ChargeInput(amount=5.0, lines=[Line("a"), Line("b", 3)])
    seen_config: Any = seen.config
    assert seen_config == Charge.Config(currency="EUR", capture=True)
    # The engine's own context is left as it was, and cancellation is shared.
    assert ctx.input is raw_input
    assert ctx.config == {"currency": "EUR"}
    assert seen is not ctx
    assert seen.cancelled is ctx.cancelled
    assert seen.execution_id == "e"


def test_sync_class_with_validation_gets_a_sync_wrapper() -> None:
    registry = HandlerRegistry([SyncTyped], standard=False)
    rh = registry.get("sync-typed")
    assert rh is not None
    assert rh.is_async is False
    assert not inspect.iscoroutinefunction(rh.fn)
    # Nested classes may name their siblings (``list[SyncTyped.Part]``).
    assert rh.fn(make_ctx({"parts": [{"name": "x"}, {"name": "y"}]})) == ["x", "y"]
    failed = rh.fn(make_ctx({"parts": [{"name": 1}]}))
    assert isinstance(failed, Result)
    assert failed.error is not None
    assert failed.error.message == "parts[0].name: must be a string"


async def test_function_with_dict_schema_validates_but_does_not_convert() -> None:
    seen: list[Any] = []

    @handler("dict-schema", input_schema={"type": "object", "required": ["n"]})
    async def fn(ctx: HandlerContext) -> None:
        seen.append(ctx.input)

    rh = HandlerRegistry([fn], standard=False).get("dict-schema")
    assert rh is not None
    assert rh.fn is not fn
    assert rh.is_async is True
    failed = await call(rh, make_ctx({}))
    assert failed.error.code == "INPUT_VALIDATION_FAILED"
    assert failed.error.details == [{"path": "n", "message": "is required", "source": "input"}]
    assert seen == []
    await call(rh, make_ctx({"n": 1}))
    assert seen == [{"n": 1}]


def test_function_with_dataclass_schemas_converts_and_stays_sync() -> None:
    @handler("typed", input_schema=Line, config_schema=Positive)
    def fn(ctx: HandlerContext) -> tuple[Any, Any]:
        return ctx.input, ctx.config

    rh = HandlerRegistry([fn], standard=False).get("typed")
    assert rh is not None
    assert rh.is_async is False
    assert rh.fn(make_ctx({"sku": "a"}, {"n": 2})) == (Line("a"), Positive(2))
    assert fn.__flowmonkey_handler__.input_type is Line  # type: ignore[attr-defined]


def test_post_init_error_is_an_input_validation_failure() -> None:
    calls: list[int] = []

    @handler("positive", config_schema=Positive)
    def fn(ctx: HandlerContext) -> None:
        calls.append(1)

    rh = HandlerRegistry([fn], standard=False).get("positive")
    assert rh is not None
    failed = rh.fn(make_ctx(None, {"n": 0}))
    assert failed.error.code == "INPUT_VALIDATION_FAILED"
    assert failed.error.message == "$: n must be positive"
    assert failed.error.details[0]["source"] == "config"
    assert calls == []


def test_invalid_schema_fails_at_registration() -> None:
    @handler("bad-schema", config_schema={"type": "nonsense"})
    def fn(ctx: HandlerContext) -> None: ...

    with pytest.raises(ValueError, match='handler "bad-schema": config_schema: invalid JSON'):
        HandlerRegistry([fn], standard=False)


def test_validate_config_runs_schema_then_hook() -> None:
    class Hooked(Handler):
        type = "hooked"

        @dataclass
        class Config:
            mode: str

        def validate_config(self, config: Any) -> list[str]:
            return [] if config["mode"] in ("a", "b") else [f"mode: unknown mode {config['mode']}"]

        def execute(self, ctx: HandlerContext) -> None: ...

    class Crashing(Plain):
        type = "crashing"

        def validate_config(self, config: Any) -> list[str]:
            raise KeyError("boom")

    registry = HandlerRegistry([Hooked, Crashing, greet], standard=False)
    assert registry.validate_config("hooked", {}) == ["mode: is required"]
    assert registry.validate_config("hooked", {"mode": "z"}) == ["mode: unknown mode z"]
    assert registry.validate_config("hooked", {"mode": "a"}) == []
    assert registry.validate_config("greet", {"anything": 1}) == []
    assert registry.validate_config("crashing", {}) == ["validate_config raised KeyError: 'boom'"]
    with pytest.raises(HandlerNotFound):
        registry.validate_config("missing", {})


# -- registry API ------------------------------------------------------------------------


def test_duplicates_replace_and_lookup_api() -> None:
    registry = HandlerRegistry([greet, Plain], standard=False)
    with pytest.raises(ValueError, match='Handler "greet" already registered'):
        registry.register(greet)

    @handler("greet")
    def greet2(ctx: HandlerContext) -> None: ...

    assert registry.register(greet2, replace=True).fn is greet2
    assert registry.get("greet").fn is greet2  # type: ignore[union-attr]
    assert registry.types() == ["greet", "plain"]
    assert "plain" in registry
    assert "nope" not in registry
    assert registry.has("plain") and not registry.has("nope")
    assert registry.get("nope") is None
    assert registry.metadata("nope") is None
    assert len(registry) == 2
    assert [rh.type for rh in registry] == ["greet", "plain"]
    assert registry.unregister("greet") is True
    assert registry.unregister("greet") is False
    assert registry.types() == ["plain"]


def test_registered_handler_can_be_copied_between_registries() -> None:
    first = HandlerRegistry([Charge], standard=False)
    rh = first.get("charge")
    second = HandlerRegistry([rh], standard=False)
    assert second.get("charge") is rh
    assert second.validate_config("charge", {}) == ["currency: is required"]


def test_on_register_callbacks() -> None:
    registry = HandlerRegistry(standard=False)
    got: list[str] = []
    registry.on_register.append(lambda rh: got.append(rh.type))
    registry.register(greet)
    registry.register(Plain)
    assert got == ["greet", "plain"]


def test_manifest_is_json_ready() -> None:
    registry = HandlerRegistry([greet, Charge], standard=False)
    manifest = json.loads(json.dumps(registry.manifest()))
    assert manifest["version"] == "1"
    assert [h["type"] for h in manifest["handlers"]] == ["greet", "charge"]
    greet_entry, charge_entry = manifest["handlers"]
    assert greet_entry == {
        "type": "greet",
        "name": "greet",
        "description": "Says hello",
        "category": "utility",
        "configSchema": None,
        "inputSchema": None,
        "outputSchema": None,
        "timeoutMs": None,
        "retryable": True,
        "version": "1.2",
        "tags": ["demo"],
        "isAsync": False,
    }
    assert charge_entry["timeoutMs"] == 60_000
    assert charge_entry["retryable"] is False
    assert charge_entry["configSchema"]["properties"] == {
        "currency": {"type": "string"},
        "capture": {"type": "boolean", "default": True},
    }
    assert charge_entry["inputSchema"]["required"] == ["amount", "lines"]


# -- register_module ----------------------------------------------------------------------

MODULE_SOURCE = textwrap.dedent(
    """
    from __future__ import annotations

    from dataclasses import dataclass

    from flowmonkey.handlers import Handler, HandlerRegistry, handler
    from flowmonkey.model.result import Result
    from flowmonkey.handlers.base import Handler as _AlsoHandler  # imported: ignored


    @dataclass
    class Cfg:
        n: int


    @handler("mod-fn")
    def mod_fn(ctx):
        return ctx.input


    alias = mod_fn  # the same function twice: registered once


    @handler("mod-typed", config_schema=Cfg)
    def mod_typed(ctx):
        return ctx.config.n


    class ModClass(Handler):
        type = "mod-class"

        async def execute(self, ctx):
            return Result.success("ok")


    class _Base(Handler):
        pass  # abstract: no execute, no type


    def not_a_handler(ctx):
        return None


    def renamed(ctx):
        return "renamed"


    handlers = HandlerRegistry(standard=False)
    handlers.register(renamed, type="mod-registry")
    handlers.register(ModClass)  # also defined above: registered once
    """
)


def test_register_module_from_file(tmp_path: Path) -> None:
    path = tmp_path / "my_handlers.py"
    path.write_text(MODULE_SOURCE)
    registry = HandlerRegistry(standard=False)
    added = registry.register_module(str(path))
    assert sorted(added) == ["mod-class", "mod-fn", "mod-registry", "mod-typed"]
    assert sorted(registry.types()) == sorted(added)
    assert registry.get("mod-fn").fn(make_ctx(7)) == 7  # type: ignore[union-attr]
    assert registry.get("mod-typed").fn(make_ctx(None, {"n": 3})) == 3  # type: ignore[union-attr]
    assert registry.get("mod-registry").fn(make_ctx()) == "renamed"  # type: ignore[union-attr]
    result = asyncio.run(call(registry.get("mod-class"), make_ctx()))  # type: ignore[arg-type]
    assert result == Result.success("ok")
    # Loading the same file again in another registry works (Path objects too).
    assert sorted(HandlerRegistry(standard=False).register_module(path)) == sorted(added)


def test_register_module_by_dotted_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "fm_test_pkg_handlers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "steps.py").write_text(MODULE_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = HandlerRegistry(standard=False)
    added = registry.register_module("fm_test_pkg_handlers.steps")
    assert "mod-fn" in added and "mod-class" in added
    assert registry.get("mod-fn").metadata.type == "mod-fn"  # type: ignore[union-attr]


def test_register_module_is_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "dupes.py"
    path.write_text(MODULE_SOURCE)
    registry = HandlerRegistry(standard=False)

    @handler("mod-typed")
    def clash(ctx: HandlerContext) -> None: ...

    registry.register(clash)
    with pytest.raises(ValueError, match='"mod-typed" already registered'):
        registry.register_module(path)
    assert registry.types() == ["mod-typed"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_xyz", 'Handlers module "no_such_module_xyz" not found'),
        ("json.no_such_sub", 'Handlers module "json.no_such_sub" not found'),
        ("missing/file.py", 'Handlers file "missing/file.py" not found'),
    ],
)
def test_bad_module_is_a_clear_error(target: str, message: str) -> None:
    with pytest.raises(FlowMonkeyError) as info:
        HandlerRegistry(standard=False).register_module(target)
    assert info.value.code == HANDLERS_NOT_LOADED
    assert message in str(info.value)


def test_broken_module_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def oops(:\n")
    with pytest.raises(FlowMonkeyError, match=r"broken.py\" failed to load: SyntaxError") as info:
        HandlerRegistry(standard=False).register_module(broken)
    assert info.value.code == HANDLERS_NOT_LOADED
    needs = tmp_path / "needs_dep.py"
    needs.write_text("import no_such_dependency_xyz\n")
    with pytest.raises(FlowMonkeyError, match="no_such_dependency_xyz") as info:
        HandlerRegistry(standard=False).register_module(needs)
    assert info.value.code == HANDLERS_NOT_LOADED
