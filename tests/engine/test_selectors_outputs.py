"""Input selectors (all six, templates) and output storage (SEMANTICS.md)."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey import ExecutionStatus, FlowBuilder, Result, handler
from flowmonkey.model.flow import Flow, InputSelector, Step, Transitions

from .conftest import MakeEngine
from .support import UncheckedFlows, capture, one_step, state

CTX: dict[str, Any] = {
    "a": {"b": 2},
    "a.b": "literal",
    "items": [{"name": "first"}, {"name": "second"}],
    "n": 42,
    "s": "str",
    "none": None,
    "flag": True,
    "obj": {"q": 1},
    "lst": [1, 2],
    "nested": {"inner": None},
}


async def resolved(make: MakeEngine, selector: dict[str, Any], context: dict[str, Any]) -> Any:
    h, seen = capture("cap")
    async with make([h], [one_step("cap", input=selector)]) as engine:
        result = await engine.start("f", context)
        assert result.status is ExecutionStatus.COMPLETED, result.error
    assert len(seen) == 1
    return seen[0].input


# -- key / keys / path / full / static --------------------------------------------------


async def test_key_is_top_level_only(make: MakeEngine) -> None:
    assert await resolved(make, {"type": "key", "key": "a.b"}, CTX) == "literal"


async def test_key_missing_is_none(make: MakeEngine) -> None:
    assert await resolved(make, {"type": "key", "key": "nope"}, {"x": 1}) is None


async def test_keys_present_only(make: MakeEngine) -> None:
    got = await resolved(make, {"type": "keys", "keys": ["n", "missing", "none"]}, CTX)
    assert got == {"n": 42, "none": None}


async def test_keys_none_present_is_empty(make: MakeEngine) -> None:
    assert await resolved(make, {"type": "keys", "keys": ["x", "y"]}, {"z": 1}) == {}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.b", 2),
        ("items.0.name", "first"),
        ("items.1.name", "second"),
        ("items.5.name", None),
        ("none.deeper", None),
        ("nested.inner.x", None),
        ("missing.x.y", None),
        ("n", 42),
    ],
)
async def test_path(make: MakeEngine, path: str, expected: Any) -> None:
    assert await resolved(make, {"type": "path", "path": path}, CTX) == expected


async def test_full_is_shallow_copy(make: MakeEngine) -> None:
    h, seen = capture("cap")
    async with make([h], [one_step("cap", input={"type": "full"})]) as engine:
        await engine.start("f", {"x": 1, "d": {"k": "v"}})
    got = seen[0].input
    assert got == {"x": 1, "d": {"k": "v"}}
    assert isinstance(got, dict)
    # A new top-level object, not the read-only context view itself.
    assert got is not seen[0].context
    got["added"] = True
    assert "added" not in seen[0].context


async def test_static(make: MakeEngine) -> None:
    value = {"fixed": [1, "two", None]}
    assert await resolved(make, {"type": "static", "value": value}, CTX) == value


async def test_default_selector_is_full(make: MakeEngine) -> None:
    h, seen = capture("cap")
    async with make([h], [one_step("cap")]) as engine:
        await engine.start("f", {"x": 1})
    assert seen[0].input == {"x": 1}


# -- templates --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${n}", 42),
        ("${obj}", {"q": 1}),
        ("${lst}", [1, 2]),
        ("${none}", None),
        ("${missing}", None),
        ("${items.0.name}", "first"),
        ("${flag}", True),
        ("n=${n}", "n=42"),
        ("${n}${n}", "4242"),
        ("[${missing}]", "[]"),
        ("[${none}]", "[null]"),
        ("a ${none} ${obj} ${lst}", 'a null {"q":1} [1,2]'),
        ("${flag}/${s}", "true/str"),
        ("${ n }", None),
        ("x${ n }", "x"),
        ("no placeholders", "no placeholders"),
    ],
)
async def test_template_strings(make: MakeEngine, template: str, expected: Any) -> None:
    got = await resolved(make, {"type": "template", "template": template}, CTX)
    assert got == expected
    assert type(got) is type(expected)


async def test_template_untrimmed_expression_reads_spaced_key(make: MakeEngine) -> None:
    got = await resolved(make, {"type": "template", "template": "${ a }"}, {" a ": 7, "a": 1})
    assert got == 7


async def test_template_recursive_dicts_and_lists(make: MakeEngine) -> None:
    template = {
        "count": "${n}",
        "label": "item ${items.0.name}",
        "${n}": "key not interpolated",
        "list": ["${s}", {"deep": "${obj.q}"}, 5, None, False],
        "gone": "${missing}",
    }
    got = await resolved(make, {"type": "template", "template": template}, CTX)
    assert got == {
        "count": 42,
        "label": "item first",
        "${n}": "key not interpolated",
        "list": ["str", {"deep": 1}, 5, None, False],
        "gone": None,
    }
    assert "gone" in got


# -- malformed selectors at run time ------------------------------------------------------


@pytest.mark.parametrize(
    "selector",
    [
        InputSelector(type="bogus"),
        InputSelector(type="key", key=None),
        InputSelector(type="path", path=None),
        InputSelector(type="keys", keys=None),
    ],
    ids=["unknown-type", "key-without-key", "path-without-path", "keys-without-keys"],
)
async def test_malformed_selector_fails_input_error(
    make: MakeEngine, selector: InputSelector
) -> None:
    h, seen = capture("cap")
    flow = Flow(
        id="bad",
        version="1.0.0",
        initial_step_id="s",
        steps={"s": Step(id="s", type="cap", input=selector, transitions=Transitions())},
    )
    engine = make([h])
    engine.flows = UncheckedFlows([flow])
    async with engine:
        result = await engine.start("bad", {"x": 1})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "INPUT_ERROR"
        assert result.error.step_id == "s"
        assert seen == []  # the handler never ran
        stored = await engine.get(result.execution.id)
        assert stored is not None and stored.status is ExecutionStatus.FAILED
        assert stored.error is not None and stored.error.code == "INPUT_ERROR"


# -- outputs ----------------------------------------------------------------------------


@handler("emit")
async def emit(ctx: Any) -> Result:
    return Result.success(ctx.config.get("value"))


async def test_output_key_dot_path_creates_intermediates(make: MakeEngine) -> None:
    flow = one_step("emit", config={"value": {"v": 1}}, output_key="x.y.z")
    async with make([emit], [flow]) as engine:
        result = await engine.start("f", {"x": {"keep": True}})
        assert result.status is ExecutionStatus.COMPLETED
        expected = {"x": {"keep": True, "y": {"z": {"v": 1}}}}
        assert result.execution.context == expected
        stored = await engine.get(result.execution.id)
        assert stored is not None and stored.context == expected


async def test_output_key_top_level_overwrites(make: MakeEngine) -> None:
    flow = one_step("emit", config={"value": [1, 2]}, output_key="out")
    async with make([emit], [flow]) as engine:
        result = await engine.start("f", {"out": "old"})
        stored = await engine.get(result.execution.id)
        assert stored is not None and stored.context == {"out": [1, 2]}


async def test_output_without_output_key_is_not_stored(make: MakeEngine) -> None:
    flow = one_step("emit", config={"value": {"v": 1}})
    async with make([emit], [flow]) as engine:
        result = await engine.start("f", {"a": 1})
        stored = await engine.get(result.execution.id)
        assert stored is not None and stored.context == {"a": 1}


@pytest.mark.parametrize("blocker", ["a string", 5, [1, 2]])
async def test_output_through_non_dict_fails_input_error(make: MakeEngine, blocker: Any) -> None:
    flow = (
        FlowBuilder("f")
        .step("first", "emit", config={"value": "one"}, output_key="first")
        .step("s", "emit", config={"value": 1}, output_key="x.y.z")
        .build()
    )
    async with make([emit], [flow]) as engine:
        created = await engine.create("f", {"x": {"y": blocker}})
        result = await engine.run(created.execution.id)
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None
        assert result.error.code == "INPUT_ERROR"
        assert result.error.step_id == "s"
        stored = await engine.get(created.execution.id)
        assert stored is not None
        # The failing step's write never happened; the earlier step's did.
        assert stored.context == {"x": {"y": blocker}, "first": "one"}


async def test_failure_output_never_written(make: MakeEngine) -> None:
    @handler("fail-out")
    async def fail_out(ctx: Any) -> Result:
        return Result.failure("NOPE", "no")

    flow = one_step("fail-out", output_key="out")
    async with make([fail_out], [flow]) as engine:
        result = await engine.start("f", {"a": 1})
        assert result.status is ExecutionStatus.FAILED
        stored = await engine.get(result.execution.id)
        assert stored is not None
        assert "out" not in stored.context
        assert "a" in stored.context


async def test_wait_output_written(make: MakeEngine) -> None:
    @handler("wait-out")
    async def wait_out(ctx: Any) -> Result:
        return Result.wait(output={"sent": True})

    flow = one_step("wait-out", output_key="mail.status")
    async with make([wait_out], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.WAITING
        stored, _ = await state(engine, result.execution.id)
        assert stored["context"] == {"mail": {"status": {"sent": True}}}
