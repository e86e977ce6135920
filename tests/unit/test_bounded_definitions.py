"""Issue 9 item 4: bounded, validated flow definitions.

Every class of bad input is a ``FlowValidationError`` (never ``TypeError``,
``ValueError``, ``RecursionError``) with the place of the problem; the limits are exact
(the largest accepted value loads, one more is refused). Store-independent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flowmonkey import FlowBuilder
from flowmonkey.definitions import load_flow, parse_flow, validate_flow
from flowmonkey.definitions.expressions import MAX_EXPRESSION_DEPTH
from flowmonkey.definitions.loader import check_flow
from flowmonkey.durations import MAX_DURATION, MAX_DURATION_MS
from flowmonkey.errors import FlowValidationError
from flowmonkey.jsonvalues import (
    INT_MAX,
    INT_MIN,
    MAX_DEFINITION_BYTES,
    MAX_DEFINITION_DEPTH,
    json_problems,
)
from flowmonkey.model.flow import Flow, RetryPolicy, Step
from flowmonkey.stores.memory import MemoryStore
from flowmonkey.stores.sqlite import SqliteStore

HEAD = "id: f\nversion: 1.0.0\ninitialStepId: a\n"


def flow_dict(**step: Any) -> dict[str, Any]:
    """A one-step flow whose step ``a`` has ``step`` as its fields."""
    return {"id": "f", "version": "1.0.0", "initialStepId": "a", "steps": {"a": step}}


def issues_of(source: Any, **kwargs: Any) -> dict[str, str]:
    """``{path: messages}`` of the errors ``load_flow`` raises for ``source`` (several
    messages at one path are joined with `` | ``)."""
    with pytest.raises(FlowValidationError) as info:
        load_flow(source, **kwargs)
    assert info.value.code == "INVALID_FLOW"
    out: dict[str, str] = {}
    for issue in info.value.issues:
        if issue.severity == "error":
            out[issue.path] = " | ".join(filter(None, [out.get(issue.path), issue.message]))
    return out


def nested(depth: int) -> Any:
    """A list nested ``depth`` levels (``[]`` is 1)."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# -- size, YAML aliases ------------------------------------------------------------------


def test_yaml_alias_bomb_is_refused_before_it_is_expanded() -> None:
    # 9 levels of 9 aliases: ~400 bytes of YAML, 9**9 strings once expanded (the 572 MB
    # row of the issue). The walk that measures it stops after about 1 MiB of it.
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    text = HEAD + "steps: {a: {type: noop}}\n" + "\n".join(lines) + "\n"
    assert len(text) < 1000
    issues = issues_of(text)
    assert issues == {"": f"larger than the maximum of {MAX_DEFINITION_BYTES} bytes as JSON"}


def test_size_limit_counts_ignored_top_level_keys_exactly() -> None:
    base = flow_dict(type="noop")
    base["blob"] = ""
    # Measured as stored: the normalised form (to_dict adds the default input selector).
    stored = load_flow(base).to_dict()
    room = MAX_DEFINITION_BYTES - len(json.dumps(stored, separators=(",", ":")).encode())
    fits = {**base, "blob": "x" * room}
    assert load_flow(fits).extra["blob"] == "x" * room  # exactly 1 MiB: accepted
    too_big = {**base, "blob": "x" * (room + 1)}
    assert "" in issues_of(too_big)
    # Multi-byte characters count as their UTF-8 bytes.
    assert "" in issues_of({**base, "blob": "é" * (room // 2 + 1)})


def test_size_limit_is_a_parameter() -> None:
    big = {**flow_dict(type="noop"), "blob": "x" * 2000}
    assert "" in issues_of(big, max_bytes=1000)
    assert load_flow(big, max_bytes=3000).id == "f"
    with pytest.raises(FlowValidationError):
        check_flow(big, max_bytes=1000)
    with pytest.raises(FlowValidationError):
        parse_flow(big, max_bytes=1000)


def test_a_flow_file_far_larger_than_the_limit_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(HEAD + "steps: {a: {type: noop}}\n" + "#" * (4 * MAX_DEFINITION_BYTES))
    with pytest.raises(FlowValidationError, match="larger than"):
        load_flow(path)
    with pytest.raises(FlowValidationError, match="longer than"):
        load_flow(path.read_text())


def test_python_flows_are_bounded_too() -> None:
    flow = Flow(
        id="f",
        version="1.0.0",
        initial_step_id="a",
        steps={"a": Step(id="a", type="noop")},
        extra={"blob": "x" * MAX_DEFINITION_BYTES},
    )
    issues = validate_flow(flow)
    assert [i.path for i in issues if i.severity == "error"] == [""]


# -- nesting --------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["json", "yaml"])
def test_deeply_nested_text_is_an_invalid_flow(form: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    text = '{"id": "f", "x": ' + deep + "}" if form == "json" else HEAD + "x: " + deep + "\n"
    assert "nested too deeply" in issues_of(text)[""]


def test_config_nesting_is_bounded_below_what_the_stores_serialise() -> None:
    # The definition is level 1, steps 2, a 3, config 4: the config value may add the rest.
    room = MAX_DEFINITION_DEPTH - 4
    assert load_flow(flow_dict(type="noop", config={"c": nested(room)})).id == "f"
    too_deep = flow_dict(type="noop", config={"c": nested(room + 1)})
    (path,) = issues_of(too_deep)
    assert path.startswith("steps.a.config.c[0]")
    # orjson's own limit (254) would have raised inside a store: now a validation error.
    assert issues_of(flow_dict(type="noop", config={"c": nested(300)}))


async def test_the_deepest_accepted_definition_is_stored_by_every_file_store(
    tmp_path: Path,
) -> None:
    room = MAX_DEFINITION_DEPTH - 4
    flow = load_flow(flow_dict(type="noop", config={"c": nested(room)}))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for store in (MemoryStore(), SqliteStore(tmp_path / "fm.db")):
        await store.initialize()
        try:
            assert await store.save_flow(flow.to_dict(), now=now)
            stored = await store.get_flow("f")
            assert stored is not None and stored.definition == flow.to_dict()
        finally:
            await store.close()


def test_recursive_yaml_alias_is_refused() -> None:
    assert issues_of(HEAD + "steps: {a: {type: noop}}\nx: &x [*x]\n")


# -- types the stores cannot write ------------------------------------------------------


@pytest.mark.parametrize("bad", [["noop"], {"name": "noop"}])
def test_step_type_that_is_a_list_or_object(bad: Any) -> None:
    message = issues_of(flow_dict(type=bad))["steps.a.type"]
    assert "must be a string" in message


def test_step_type_that_is_a_list_in_a_python_flow() -> None:
    step = Step(id="a", type=["noop"])  # type: ignore[arg-type]
    flow = Flow(id="f", version="1.0.0", initial_step_id="a", steps={"a": step})
    issues = validate_flow(flow)
    assert any(i.path == "steps.a.type" and i.severity == "error" for i in issues)


def test_integers_beyond_64_bits() -> None:
    fits = flow_dict(type="noop", config={"hi": INT_MAX, "lo": INT_MIN})
    assert load_flow(fits).steps["a"].config == {"hi": INT_MAX, "lo": INT_MIN}
    issues = issues_of(flow_dict(type="noop", config={"hi": INT_MAX + 1, "lo": INT_MIN - 1}))
    assert set(issues) == {"steps.a.config.hi", "steps.a.config.lo"}
    assert "beyond 64 bits" in issues["steps.a.config.hi"]


def test_integer_too_long_for_python_is_reported_with_its_line() -> None:
    issues = issues_of(HEAD + "steps: {a: {type: noop}}\nn: " + "9" * 5000 + "\n")
    assert "beyond 64 bits" in issues[""]
    with pytest.raises(FlowValidationError, match="<string>:5:4"):
        load_flow(HEAD + "steps: {a: {type: noop}}\nn: " + "9" * 5000 + "\n")
    assert "beyond 64 bits" in issues_of('{"id": "f", "n": ' + "9" * 5000 + "}")[""]


def test_lone_surrogates_in_ids() -> None:
    text = '{"id": "f\\ud800", "version": "1.0.0", "initialStepId": "a\\udc00",'
    text += ' "steps": {"a\\udc00": {"type": "noop"}}}'
    with pytest.raises(FlowValidationError) as info:
        load_flow(text)
    paths = {i.path for i in info.value.issues}
    assert {"id", "initialStepId", "steps.a\\udc00"} <= paths
    # Messages are printable (the surrogate is escaped), so the CLI can show them.
    info.value.message.encode("utf-8")


def test_nan_and_infinity_are_not_json() -> None:
    issues = issues_of(HEAD + "steps: {a: {type: noop, retry: {maxAttempts: 1, backoffMs: .nan}}}")
    assert "not valid JSON" in issues["steps.a.retry.backoffMs"]
    assert (
        "not valid JSON"
        in issues_of(flow_dict(type="noop", config={"x": float("inf")}))["steps.a.config.x"]
    )


def test_non_json_values_in_a_python_flow() -> None:
    step = Step(id="a", type="noop", config={"ids": {1, 2}, 3: "x"})  # type: ignore[dict-item]
    flow = Flow(id="f", version="1.0.0", initial_step_id="a", steps={"a": step})
    errors = [i for i in validate_flow(flow) if i.severity == "error"]
    messages = " | ".join(i.message for i in errors)
    assert "set is not JSON" in messages and "not a string" in messages


# -- duplicates ---------------------------------------------------------------------------


def test_duplicate_step_ids_in_the_list_form() -> None:
    data = flow_dict(type="noop")
    data["steps"] = [{"id": "a", "type": "first"}, {"id": "a", "type": "second"}]
    assert issues_of(data) == {"steps[1].id": 'duplicate step id "a" (also steps[0])'}


def test_duplicate_keys_in_yaml_name_the_line() -> None:
    text = HEAD + "steps:\n  a: {type: first}\n  a: {type: second}\n"
    with pytest.raises(FlowValidationError, match=r"<string>:6:3: .*duplicate key 'a'"):
        load_flow(text)
    # Any mapping, not only steps.
    with pytest.raises(FlowValidationError, match="duplicate key 'type'"):
        load_flow(HEAD + "steps:\n  a: {type: first, type: second}\n")


def test_duplicate_keys_in_json() -> None:
    text = '{"id": "f", "version": "1.0.0", "initialStepId": "a", '
    text += '"steps": {"a": {"type": "x"}, "a": {"type": "y"}}}'
    assert 'duplicate key "a"' in issues_of(text)[""]


def test_yaml_merge_keys_may_be_overridden() -> None:
    text = HEAD + "base: &b {type: x, timeout: 1s}\nsteps:\n  a: {<<: *b, type: y}\n"
    step = load_flow(text).steps["a"]
    assert step.type == "y" and step.timeout == timedelta(seconds=1)


# -- JMESPath -------------------------------------------------------------------------------


def switch(when: str) -> dict[str, Any]:
    return flow_dict(type="switch", config={"cases": [{"when": when, "goto": None}]})


WHEN = "steps.a.config.cases[0].when"


@pytest.mark.parametrize(
    ("when", "fragment"),
    [
        ("(" * 2000 + "a" + ")" * 2000, "nested too deeply"),
        ("!" * 3000 + "a", "nested too deeply"),
        ("abs(" * (MAX_EXPRESSION_DEPTH + 1) + "a" + ")" * (MAX_EXPRESSION_DEPTH + 1), "deeper"),
        ("x" * 5000, "longer than"),
        ("items[::0]", "slice step of 0"),
        ("items[?tags[1:2:0]]", "slice step of 0"),
        ("nope(a)", "unknown function nope()"),
        ("length(a, b)", "length() with 2 argument(s); it takes 1"),
        ("merge()", "takes at least 1"),
    ],
)
def test_jmespath_that_can_only_fail_is_refused(when: str, fragment: str) -> None:
    assert fragment in issues_of(switch(when))[WHEN]


@pytest.mark.parametrize("when", ["items[::1]", "length(a) > `2`", "not_null(a, b, c)"])
def test_ordinary_jmespath_still_passes(when: str) -> None:
    assert load_flow(switch(when)).steps["a"].type == "switch"


def test_vyuh_graph_with_a_deep_condition_is_an_invalid_flow() -> None:
    graph = {
        "code": "g",
        "nodes": [
            {"id": "s", "type": "start"},
            {"id": "t", "type": "task", "data": {"handler": "noop"}},
            {"id": "e", "type": "end"},
        ],
        "edges": [
            {"source": "s", "target": "t"},
            {"source": "t", "target": "e", "condition": "(" * 3000 + "a" + ")" * 3000},
        ],
    }
    with pytest.raises(FlowValidationError):
        load_flow(graph)


# -- durations --------------------------------------------------------------------------


def test_every_duration_field_is_bounded_and_listed_together() -> None:
    text = HEAD + (
        "steps:\n"
        "  a:\n"
        "    type: noop\n"
        "    timeout: 9999999d\n"
        "    retry: {maxAttempts: 3, backoffMs: 1.0e+300, maxBackoffMs: 1.0e+20}\n"
        "    transitions: {onSuccess: w}\n"
        "  w: {type: waitForSignal, config: {timeout: 9999999d}, transitions: {onSuccess: t}}\n"
        "  t: {type: userTask, config: {title: T, dueIn: P99999D}, transitions: {onSuccess: d}}\n"
        "  d: {type: delay, config: {duration: 315360000001}}\n"
    )
    issues = issues_of(text)
    assert set(issues) == {
        "steps.a.timeout",
        "steps.a.retry.backoffMs",
        "steps.a.retry.maxBackoffMs",
        "steps.w.config.timeout",
        "steps.t.config.dueIn",
        "steps.d.config.duration",
    }
    assert all("3650" in message for message in issues.values())


def test_the_maximum_duration_itself_is_accepted() -> None:
    text = HEAD + (
        "steps:\n"
        f"  a: {{type: noop, timeout: 3650d, retry: {{maxAttempts: 1, backoffMs: {MAX_DURATION_MS},"
        f" maxBackoffMs: {MAX_DURATION_MS}}}, transitions: {{onSuccess: w}}}}\n"
        "  w: {type: waitForSignal, config: {timeout: P3650D}}\n"
    )
    flow = load_flow(text)
    assert flow.steps["a"].timeout == MAX_DURATION


def test_flow_builder_durations_are_bounded_and_listed_together() -> None:
    too_long = MAX_DURATION + timedelta(days=1)
    builder = (
        FlowBuilder("f")
        .step("a", "noop", timeout=too_long, retry=RetryPolicy(max_attempts=1, backoff_ms=1e300))
        .wait_for_signal("w", signal="go", timeout=too_long)
        .delay("d", duration=too_long)
    )
    with pytest.raises(FlowValidationError) as info:
        builder.build()
    paths = {i.path for i in info.value.issues if i.severity == "error"}
    assert paths == {
        "steps.a.timeout",
        "steps.a.retry.backoffMs",
        "steps.w.config.timeout",
        "steps.d.config.duration",
    }


def test_python_step_with_a_timeout_beyond_the_maximum() -> None:
    step = Step(id="a", type="noop", timeout=timedelta(days=4000))
    flow = Flow(id="f", version="1.0.0", initial_step_id="a", steps={"a": step})
    issues = [i for i in validate_flow(flow) if i.severity == "error"]
    assert [i.path for i in issues] == ["steps.a.timeout"]


def test_retry_delay_cannot_overflow() -> None:
    policy = RetryPolicy(max_attempts=500, backoff_ms=1000, backoff_multiplier=1000.0)
    assert policy.delay_ms(400) == 60_000  # past the float range: the cap
    assert RetryPolicy(max_attempts=1).delay_ms(3) == 0.0


async def test_engine_save_flow_refuses_what_the_store_cannot_write() -> None:
    from flowmonkey.testing import make_engine

    step = Step(id="a", type="delay", config={"duration": "1s", "n": 2**64})
    flow = Flow(id="f", version="1.0.0", initial_step_id="a", steps={"a": step})
    engine = make_engine()
    async with engine:
        with pytest.raises(FlowValidationError) as info:
            await engine.save_flow(flow)  # the store's orjson would raise a TypeError
        assert [i.path for i in info.value.issues] == ["steps.a.config.n"]
        assert await engine.store.get_flow("f") is None


def test_vyuh_edge_endpoint_that_is_not_a_string() -> None:
    graph = {
        "code": "g",
        "nodes": [{"id": "s", "type": "start"}, {"id": "e", "type": "end"}],
        "edges": [{"id": "x", "sourceNodeId": ["s"], "targetNodeId": "e"}],
    }
    with pytest.raises(FlowValidationError) as info:
        load_flow(graph)
    assert "edges[0].sourceNodeId" in {i.path for i in info.value.issues}


def test_a_fatal_problem_is_not_hidden_behind_many_small_ones() -> None:
    # 30 huge integers first (only 20 problems are listed), then a structure too deep to
    # check further: the depth must still be found, or later checks would recurse on it.
    config = {f"n{i:02d}": 2**64 for i in range(30)}
    config["z"] = nested(MAX_DEFINITION_DEPTH)
    problems = json_problems(flow_dict(type="noop", config=config), max_depth=MAX_DEFINITION_DEPTH)
    assert len(problems) == 20
    assert problems[-1].fatal and problems[-1].path.startswith("steps.a.config.z")
    # The loader stops at the fatal problem, before anything walks the deep value.
    (path,) = issues_of(flow_dict(type="noop", config=config))
    assert path.startswith("steps.a.config.z")
