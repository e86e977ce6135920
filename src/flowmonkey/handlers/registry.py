"""``HandlerRegistry``: step type -> ``RegisteredHandler``, the callable the engine runs.

Everything that can be decided once is decided at registration: sync or async, the
metadata, compiled schema validators and dataclass converters. A function handler with
no schemas is stored as the user's own function, unwrapped, because the engine calls it
on its hot path.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from flowmonkey.errors import FlowMonkeyError, HandlerNotFound, ValidationIssue
from flowmonkey.handlers.base import (
    METADATA_ATTR,
    Handler,
    HandlerMetadata,
    build_metadata,
    check_type_name,
    class_namespace,
    ensure_one_argument,
    is_async_callable,
)
from flowmonkey.handlers.context import HandlerContext
from flowmonkey.handlers.schema import Converter, Issue, SchemaValidator, converter_for
from flowmonkey.model.flow import Flow
from flowmonkey.model.result import Result

__all__ = ["HANDLERS_NOT_LOADED", "INPUT_VALIDATION_FAILED", "HandlerRegistry", "RegisteredHandler"]

HANDLERS_NOT_LOADED = "HANDLERS_NOT_LOADED"
"""Error code of ``register_module`` when the module or file cannot be loaded."""
INPUT_VALIDATION_FAILED = "INPUT_VALIDATION_FAILED"
"""Failure code when ``ctx.config``/``ctx.input`` do not match the handler's schemas."""


@dataclass(frozen=True, slots=True)
class RegisteredHandler:
    """What the engine runs for a step type."""

    type: str
    fn: Callable[[HandlerContext], Any]
    """Call with the context: async -> returns a coroutine; sync -> returns the value."""
    is_async: bool
    """True iff calling ``fn`` returns a coroutine (sync ``fn`` runs in a thread pool)."""
    metadata: HandlerMetadata
    timeout: timedelta | None
    """The handler's default timeout; the engine falls back to step/default timeouts."""


ConfigHook = Callable[[Mapping[str, Any]], Iterable[str]]


@dataclass(frozen=True, slots=True)
class _Entry:
    registered: RegisteredHandler
    config_validator: SchemaValidator | None
    config_hook: ConfigHook | None


class _Gate:
    """Checks (and converts) ``ctx.config``/``ctx.input`` before a handler runs."""

    __slots__ = (
        "config_convert",
        "config_validator",
        "input_convert",
        "input_validator",
        "valid_configs",
    )

    def __init__(
        self, meta: HandlerMetadata, localns: Mapping[str, Any] | None, *, trusted: bool = False
    ) -> None:
        def compile_schema(schema: dict[str, Any] | None, what: str) -> SchemaValidator | None:
            if schema is None:
                return None
            try:
                return SchemaValidator(schema, check=not trusted)
            except ValueError as exc:
                raise ValueError(f'handler "{meta.type}": {what}: {exc}') from exc

        def convert(tp: type[Any] | None) -> Converter | None:
            return None if tp is None else converter_for(tp, localns=localns)

        self.valid_configs: set[bytes] = set()
        """Configs (as canonical JSON) already found valid: a step's config is the same on
        every run, and a schema check costs more than the JSON encoding."""
        self.config_validator = compile_schema(meta.config_schema, "config_schema")
        self.input_validator = compile_schema(meta.input_schema, "input_schema")
        self.config_convert = convert(meta.config_type)
        self.input_convert = convert(meta.input_type)

    @property
    def needed(self) -> bool:
        return self.config_validator is not None or self.input_validator is not None

    def prepare(self, ctx: HandlerContext) -> HandlerContext | Result:
        """The context to call the handler with, or the failure to return instead."""
        issues: list[Issue] = []
        if self.config_validator is not None:
            key = _config_key(ctx.config)
            if key is None or key not in self.valid_configs:
                found = self.config_validator.errors(ctx.config)
                issues += [{**i, "source": "config"} for i in found]
                if not found and key is not None and len(self.valid_configs) < _MAX_VALID_CONFIGS:
                    self.valid_configs.add(key)
        if self.input_validator is not None:
            issues += [{**i, "source": "input"} for i in self.input_validator.errors(ctx.input)]
        if issues:
            return _validation_failure(issues)
        if self.config_convert is None and self.input_convert is None:
            return ctx
        changes: dict[str, Any] = {}
        source = "config"
        try:
            if self.config_convert is not None:
                changes["config"] = self.config_convert(ctx.config)
            source = "input"
            if self.input_convert is not None:
                changes["input"] = self.input_convert(ctx.input)
        except (TypeError, ValueError, KeyError) as exc:
            # Raised by a dataclass ``__post_init__`` check, i.e. the user's own validation.
            return _validation_failure([{"path": "$", "message": str(exc), "source": source}])
        # The copy shares the runtime and the cancellation event with the engine's context
        # while leaving the engine's own ``config``/``input`` untouched.
        return ctx.replace(input=changes.get("input"), config=changes.get("config"))


_MAX_VALID_CONFIGS = 4096


def _config_key(config: Any) -> bytes | None:
    """``config`` as canonical JSON, or ``None`` when it is not JSON data."""
    try:
        return orjson.dumps(config, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None


def _validation_failure(issues: list[Issue]) -> Result:
    message = "; ".join(f"{i['path']}: {i['message']}" for i in issues)
    return Result.failure(INPUT_VALIDATION_FAILED, message, details=issues, retryable=False)


def _gated(call: Callable[[HandlerContext], Any], gate: _Gate, is_async: bool) -> Any:
    # Two wrappers, not one, so that ``is_async`` stays true of ``fn`` itself: a sync
    # handler keeps a sync wrapper and still runs in the engine's thread pool.
    if is_async:

        async def run_async(ctx: HandlerContext) -> Any:
            prepared = gate.prepare(ctx)
            if isinstance(prepared, Result):
                return prepared
            return await call(prepared)

        return run_async

    def run_sync(ctx: HandlerContext) -> Any:
        prepared = gate.prepare(ctx)
        if isinstance(prepared, Result):
            return prepared
        return call(prepared)

    return run_sync


def _entry(
    call: Callable[[HandlerContext], Any],
    meta: HandlerMetadata,
    *,
    localns: Mapping[str, Any] | None = None,
    config_hook: ConfigHook | None = None,
    trusted: bool = False,
) -> _Entry:
    gate = _Gate(meta, localns, trusted=trusted)
    fn = _gated(call, gate, meta.is_async) if gate.needed else call
    registered = RegisteredHandler(
        type=meta.type, fn=fn, is_async=meta.is_async, metadata=meta, timeout=meta.timeout
    )
    return _Entry(registered, gate.config_validator, config_hook)


class HandlerRegistry:
    """Handlers by step type. Accepts ``@handler`` functions and ``Handler`` classes.

    ``on_register`` callbacks are called (synchronously) with each new
    ``RegisteredHandler``; the engine uses this to emit ``handler.registered``.
    """

    def __init__(self, handlers: Iterable[Any] = (), *, standard: bool = True) -> None:
        """Register the standard handlers (unless ``standard=False``), then each of
        ``handlers`` (anything ``register`` accepts)."""
        self._entries: dict[str, _Entry] = {}
        self._standard: set[str] = set()
        """Types still served by a standard handler (a user handler may replace them)."""
        self.on_register: list[Callable[[RegisteredHandler], Any]] = []
        if standard:
            from flowmonkey.handlers.standard import standard_handlers

            for std in standard_handlers():
                # Their schemas are constants checked by the test suite: compiling them
                # without the metaschema check keeps a new registry cheap (~1 ms, not 30).
                meta = std.describe()
                entry = _entry(std.execute, meta, config_hook=std.validate_config, trusted=True)
                self._entries[entry.registered.type] = entry
                self._standard.add(entry.registered.type)
        for h in handlers:
            self.register(h)

    # -- registration ---------------------------------------------------------------------

    def register(
        self, h: Any, *, type: str | None = None, replace: bool = False
    ) -> RegisteredHandler:
        """Register a handler; return what the engine will run.

        ``h`` may be an ``@handler`` function, a plain function with ``type=``, a
        ``Handler`` subclass (instantiated once, with no arguments), a ``Handler``
        instance or a ``RegisteredHandler``. ``type=`` also renames a decorated handler.

        Raises:
            ValueError: the type is already registered and ``replace`` is false.
            TypeError: ``h`` is not something that can be registered.
        """
        entry = self._build(h, type)
        self._add([entry], replace=replace)
        return entry.registered

    def _build(self, h: Any, type_: str | None) -> _Entry:
        if type_ is not None:
            check_type_name(type_)
        if isinstance(h, RegisteredHandler):
            rh = h if type_ is None else _renamed_registered(h, type_)
            validator = (
                SchemaValidator(rh.metadata.config_schema) if rh.metadata.config_schema else None
            )
            return _Entry(rh, validator, None)
        if inspect.isclass(h):
            if not issubclass(h, Handler):
                raise TypeError(
                    f"{h.__qualname__} is not a Handler subclass; subclass "
                    "flowmonkey.handlers.Handler or decorate a function with @handler"
                )
            if inspect.isabstract(h):
                raise TypeError(f"Handler class {h.__qualname__} is abstract (define execute)")
            cls = h
            try:
                h = cls()
            except TypeError as exc:
                raise TypeError(
                    f"Handler class {cls.__qualname__} must be constructible without "
                    f"arguments ({exc}); register an instance instead"
                ) from exc
        if isinstance(h, Handler):
            meta = h.describe()
            if type_ is not None:
                meta = replace(meta, type=type_)
            return _entry(
                h.execute, meta, localns=class_namespace(h.__class__), config_hook=h.validate_config
            )
        if not callable(h):
            raise TypeError(f"cannot register {h!r} as a handler")
        declared = getattr(h, METADATA_ATTR, None)
        if isinstance(declared, HandlerMetadata):
            fn_meta = declared if type_ is None else replace(declared, type=type_)
        elif type_ is None:
            raise TypeError(
                f"{getattr(h, '__qualname__', h)!r} is not decorated with @handler; "
                'decorate it or pass the type: register(fn, type="my-type")'
            )
        else:
            ensure_one_argument(h, type_)
            fn_meta = build_metadata(type_, source=h, is_async=is_async_callable(h))
        return _entry(h, fn_meta)

    def _add(self, entries: list[_Entry], *, replace: bool) -> None:
        # Check everything first so a failed batch (register_module) registers nothing.
        seen: set[str] = set()
        for entry in entries:
            t = entry.registered.type
            taken = t in self._entries and t not in self._standard
            if t in seen or (taken and not replace):
                raise ValueError(
                    f'Handler "{t}" already registered (pass replace=True to override)'
                )
            seen.add(t)
        for entry in entries:
            t = entry.registered.type
            if t in self._standard:
                self._standard.discard(t)
                warnings.warn(
                    f'handler "{t}" replaces the standard handler of that type',
                    UserWarning,
                    stacklevel=4,
                )
            self._entries[t] = entry
            for callback in list(self.on_register):
                callback(entry.registered)

    def unregister(self, type: str) -> bool:
        """Remove the handler of ``type``; False if there was none."""
        self._standard.discard(type)
        return self._entries.pop(type, None) is not None

    def is_standard(self, type: str) -> bool:
        """True when ``type`` is served by a standard handler (see flowmonkey.handlers.standard)."""
        return type in self._standard

    def register_module(self, module: ModuleType | str | os.PathLike[str]) -> list[str]:
        """Register every handler a module defines; return their types.

        ``module`` is a module object, a dotted module name or a ``.py`` file path. Every
        ``@handler`` function and concrete ``Handler`` subclass *defined* in it (not
        imported into it) is registered, plus the handlers of a ``HandlerRegistry``
        named ``handlers`` in it. All or nothing: on a duplicate nothing is registered.

        Raises:
            FlowMonkeyError: code ``HANDLERS_NOT_LOADED``, the module cannot be loaded.
            ValueError: a type is registered twice.
        """
        mod = _load_module(module)
        entries: list[_Entry] = []
        own = getattr(mod, "handlers", None)
        taken: set[str] = set()
        if isinstance(own, HandlerRegistry) and own is not self:
            entries.extend(own._entries.values())
            taken.update(own._entries)
        seen: set[int] = set()
        for value in list(vars(mod).values()):
            if id(value) in seen or getattr(value, "__module__", None) != mod.__name__:
                continue
            seen.add(id(value))
            declared = _declared_type(value)
            if declared is not None and declared not in taken:
                entries.append(self._build(value, None))
        self._add(entries, replace=False)
        return [e.registered.type for e in entries]

    # -- lookup ---------------------------------------------------------------------------

    def get(self, type: str) -> RegisteredHandler | None:
        """The handler of ``type``, or ``None``."""
        entry = self._entries.get(type)
        return None if entry is None else entry.registered

    def has(self, type: str) -> bool:
        """True if ``type`` is registered."""
        return type in self._entries

    def types(self) -> list[str]:
        """Registered types, in registration order."""
        return list(self._entries)

    def metadata(self, type: str) -> HandlerMetadata | None:
        """The metadata of ``type``, or ``None``."""
        entry = self._entries.get(type)
        return None if entry is None else entry.registered.metadata

    def manifest(self) -> dict[str, Any]:
        """``{"version": "1", "handlers": [metadata.to_dict(), ...]}``, JSON-ready."""
        return {
            "version": "1",
            "handlers": [e.registered.metadata.to_dict() for e in self._entries.values()],
        }

    def validate_config(self, type: str, config: Mapping[str, Any]) -> list[str]:
        """Static check of a step's config: ``["path: message", ...]``, empty when fine.

        Runs the handler's config schema, then (if that passes) its ``validate_config``
        hook. Raises ``HandlerNotFound`` for an unknown type.
        """
        entry = self._entries.get(type)
        if entry is None:
            raise HandlerNotFound(type)
        if entry.config_validator is not None:
            problems = entry.config_validator.errors(config)
            if problems:
                return [f"{p['path']}: {p['message']}" for p in problems]
        if entry.config_hook is None:
            return []
        try:
            return [str(m) for m in entry.config_hook(config)]
        except Exception as exc:
            # A crashing hook must not crash flow validation; report it as a problem.
            return [f"validate_config raised {type_name(exc)}: {exc}"]

    def check_flow_configs(self, flow: Flow) -> list[ValidationIssue]:
        """The config problems of every step of ``flow`` whose type is registered here
        (``flowmonkey validate`` and the API reject a flow with any, before it runs)."""
        issues: list[ValidationIssue] = []
        for key, step in flow.steps.items():
            if step.type not in self._entries:
                continue
            for problem in self.validate_config(step.type, step.config):
                where, sep, message = problem.partition(": ")
                if not sep:
                    where, message = "$", problem
                suffix = "" if where == "$" else ("" if where.startswith("[") else ".") + where
                issues.append(ValidationIssue(f"steps.{key}.config{suffix}", message))
        return issues

    def __contains__(self, type: object) -> bool:
        return type in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[RegisteredHandler]:
        return iter([e.registered for e in self._entries.values()])

    def __repr__(self) -> str:
        return f"HandlerRegistry({self.types()!r})"


def type_name(exc: BaseException) -> str:
    """The class name of an exception (for messages)."""
    return exc.__class__.__name__


def _renamed_registered(rh: RegisteredHandler, type_: str) -> RegisteredHandler:
    return replace(rh, type=type_, metadata=replace(rh.metadata, type=type_))


def _declared_type(value: Any) -> str | None:
    """The handler type a module-level object declares, if it is a handler at all."""
    if inspect.isclass(value):
        if issubclass(value, Handler) and not inspect.isabstract(value):
            declared = getattr(value, "type", None)
            return declared if isinstance(declared, str) else None
        return None
    meta = getattr(value, METADATA_ATTR, None)
    return meta.type if callable(value) and isinstance(meta, HandlerMetadata) else None


def _not_loaded(message: str) -> FlowMonkeyError:
    return FlowMonkeyError(message, code=HANDLERS_NOT_LOADED)


def _load_module(spec: ModuleType | str | os.PathLike[str]) -> ModuleType:
    if isinstance(spec, ModuleType):
        return spec
    if isinstance(spec, os.PathLike) or spec.endswith(".py") or "/" in spec or os.sep in spec:
        return _load_file(Path(spec))
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and (spec == exc.name or spec.startswith(exc.name + ".")):
            raise _not_loaded(
                f'Handlers module "{spec}" not found (is it importable from {os.getcwd()}?)'
            ) from exc
        raise _not_loaded(f'Handlers module "{spec}" failed to import: {exc}') from exc
    except Exception as exc:
        raise _not_loaded(
            f'Handlers module "{spec}" failed to import: {type_name(exc)}: {exc}'
        ) from exc


def _load_file(path: Path) -> ModuleType:
    resolved = path.expanduser().resolve()
    if not resolved.is_file():
        raise _not_loaded(f'Handlers file "{path}" not found')
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", resolved.stem)
    name = f"_flowmonkey_handlers_{stem}_{digest}"
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(resolved):
        return loaded
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise _not_loaded(f'Handlers file "{path}" cannot be loaded as a Python module')
    module = importlib.util.module_from_spec(spec)
    # Dataclasses and ``typing.get_type_hints`` look the module up in ``sys.modules``.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise _not_loaded(
            f'Handlers file "{path}" failed to load: {type_name(exc)}: {exc}'
        ) from exc
    return module
