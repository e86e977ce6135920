"""Fuzzing load_flow + validate + save + run: only typed errors come out (issue 9 item 4).

Hypothesis builds flow-shaped data (the field vocabulary of flows and built-in steps,
with hostile values mixed in: huge integers, NaN, lone surrogates, deep nesting, bad
durations and expressions) and hands it to ``load_flow`` as a dict, JSON text and YAML
text. A definition that loads is saved to a store and run. Anything but a
``FlowMonkeyError`` (``FlowValidationError`` for the definition) fails the test.
Deterministic (``derandomize``) and bounded (a fixed number of examples).
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flowmonkey import EngineOptions, Result, handler
from flowmonkey.definitions import load_flow
from flowmonkey.errors import FlowMonkeyError, FlowValidationError
from flowmonkey.testing import make_engine

STEP_IDS = ["a", "b", "c"]
TYPES = [
    "echo",
    "parallel",
    "join",
    "switch",
    "forEach",
    "subflow",
    "waitForSignal",
    "userTask",
    "delay",
]


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


HOSTILE = st.sampled_from(
    [
        2**64,
        -(2**63) - 1,
        10**30,
        float("nan"),
        float("inf"),
        "\ud800",
        "a\udc00",
        "9999999d",
        1.0e300,
        "",
        "a[::0]",
        "(" * 1500 + "a" + ")" * 1500,
        "nope(a)",
        _nested(70),
        {"\ud800": 1},
        {1: "integer key"},
        {"a": {1, 2}},
        b"bytes",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(STEP_IDS)
    | HOSTILE
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)
TARGETS = st.sampled_from([*STEP_IDS, None])
DURATIONS = st.sampled_from(["1s", "PT5M", 1000, "3650d", "2h30m"])
EXPRESSIONS = st.sampled_from(["a", "a == `1`", "length(xs) > `1`", "xs[::2]", "not_null(a, b)"])
KEYS = st.sampled_from(
    [
        "type", "config", "input", "outputKey", "transitions", "retry", "timeout", "id",
        "onSuccess", "onFailure", "ports", "cases", "when", "goto", "default", "branches",
        "signal", "duration", "dueIn", "until", "flowId", "items", "maxAttempts",
        "backoffMs", "backoffMultiplier", "maxBackoffMs", "version", "initialStepId", "x",
    ]
)  # fmt: skip


def _config(step_type: str) -> st.SearchStrategy[dict[str, Any]]:
    """A plausible config per type (mutations make it implausible)."""
    configs: dict[str, st.SearchStrategy[dict[str, Any]]] = {
        "switch": st.fixed_dictionaries(
            {"cases": st.lists(st.fixed_dictionaries({"when": EXPRESSIONS, "goto": TARGETS}))},
            optional={"default": TARGETS},
        ),
        "parallel": st.fixed_dictionaries({"branches": st.lists(st.sampled_from(STEP_IDS))}),
        "join": st.fixed_dictionaries({}, optional={"mode": st.sampled_from(["all", "any"])}),
        "waitForSignal": st.fixed_dictionaries(
            {"signal": st.just("go")}, optional={"timeout": DURATIONS}
        ),
        "delay": st.fixed_dictionaries({"duration": DURATIONS}),
        "userTask": st.fixed_dictionaries({"title": st.just("t")}, optional={"dueIn": DURATIONS}),
        "subflow": st.fixed_dictionaries(
            {"flowId": st.just("f")}, optional={"wait": st.booleans()}
        ),
        "forEach": st.fixed_dictionaries({"items": st.just("xs"), "flow": st.just("f")}),
    }
    return configs.get(step_type, st.fixed_dictionaries({}, optional={"x": VALUES}))


@st.composite
def _step(draw: st.DrawFn) -> dict[str, Any]:
    step_type = draw(st.sampled_from(TYPES))
    step: dict[str, Any] = {"type": step_type, "config": draw(_config(step_type))}
    step["transitions"] = draw(
        st.fixed_dictionaries({}, optional={"onSuccess": TARGETS, "onFailure": TARGETS})
    )
    step.update(
        draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "timeout": DURATIONS,
                    "outputKey": st.sampled_from(["out", "a.b"]),
                    "retry": st.fixed_dictionaries(
                        {"maxAttempts": st.integers(0, 2)},
                        optional={"backoffMs": st.integers(0, 10)},
                    ),
                },
            )
        )
    )
    return step


def _containers(value: Any) -> list[Any]:
    """Every dict and list inside ``value`` (``value`` first)."""
    out: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            out.append(item)
            stack.extend(item)
    return out


@st.composite
def _flows(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible flow, then up to two hostile mutations anywhere in it."""
    ids = draw(st.lists(st.sampled_from(STEP_IDS), min_size=1, max_size=3, unique=True))
    steps = {step_id: draw(_step()) for step_id in ids}
    data: dict[str, Any] = {"id": "f", "version": "1.0.0", "initialStepId": ids[0]}
    if draw(st.booleans()):
        data["steps"] = steps
    else:
        data["steps"] = [{"id": step_id, **step} for step_id, step in steps.items()]
    for _ in range(draw(st.integers(0, 2))):
        target = draw(st.sampled_from(_containers(data)))
        value = copy.deepcopy(draw(VALUES))  # sampled values are shared: never mutate them
        if isinstance(target, dict):
            target[draw(KEYS)] = value
        elif target:
            target[draw(st.integers(0, len(target) - 1))] = value
        else:
            target.append(value)
    return data


FLOWS = _flows()


@handler("echo")
async def echo(ctx: Any) -> Result:
    return Result.success({"seen": True})


def _as_texts(data: dict[str, Any]) -> list[Any]:
    """The dict itself, its JSON and its YAML (when they can be written at all)."""
    sources: list[Any] = [data]
    try:
        sources.append(json.dumps(data))
    except (TypeError, ValueError):
        pass
    try:
        sources.append(yaml.safe_dump(data))
    except yaml.YAMLError:
        pass
    return sources


async def _save_and_run(flow: Any) -> None:
    engine = make_engine([echo], options=EngineOptions(max_steps=20))
    async with engine:
        try:
            await engine.save_flow(flow)
            result = await engine.start(flow.id, {"a": 1, "xs": [1, 2]})
            assert result.execution.status is not None
            await engine.tick_timers()
        except FlowMonkeyError:
            pass  # typed: allowed


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(FLOWS)
@example({"id": "f", "version": "1.0.0", "initialStepId": "a", "steps": {"a": {"type": ["x"]}}})
@example({"id": "f", "version": "1.0.0", "initialStepId": "a", "steps": [{"id": "a"}, {"id": "a"}]})
def test_only_typed_errors_come_out(data: dict[str, Any]) -> None:
    for source in _as_texts(data):
        try:
            flow = load_flow(source, handler_types={"echo"})
        except FlowValidationError:
            continue
        asyncio.run(_save_and_run(flow))


@settings(max_examples=100, derandomize=True, deadline=None, database=None)
@given(st.text(max_size=60) | st.binary(max_size=60).map(lambda b: b.decode("latin-1")))
@example("[" * 50_000)
@example("a: &a [*a, *a]\nid: f")
@example("{" + '"a": 1, ' * 3 + '"a": 2}')
def test_arbitrary_text_is_a_flow_or_an_invalid_flow(text: str) -> None:
    try:
        load_flow(text)
    except FlowValidationError:
        pass


NODE_IDS = ["s", "t", "u", "e"]


@st.composite
def _graphs(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible Vyuh graph (start -> activities/gateways -> end), then mutations."""
    kinds = st.sampled_from(
        [
            {"type": "task", "config": {"schemaType": "echo"}},
            {"type": "userTask", "config": {"title": "t"}},
            {"type": "signalWait", "config": {"signal": "go"}},
            {"type": "timerEvent", "config": {"duration": "1s"}},
            {"type": "subflow", "config": {"flowId": "g"}},
            {"type": "oneOf"},
            {"type": "allOf"},
        ]
    )
    nodes = [
        {"id": "s", "type": "start"},
        {"id": "t", **draw(kinds)},
        {"id": "u", **draw(kinds)},
        {"id": "e", "type": "end"},
    ]
    pairs = st.tuples(st.sampled_from(NODE_IDS), st.sampled_from(NODE_IDS))
    chain = [("s", "t"), ("t", "u"), ("u", "e")]
    extra = draw(st.lists(pairs, max_size=2))
    edges = [
        {"id": f"x{i}", "sourceNodeId": a, "targetNodeId": b}
        for i, (a, b) in enumerate(chain + extra)
    ]
    for edge in edges:
        if draw(st.integers(0, 3)) == 0:
            edge["condition"] = {"schemaType": "expression", "expression": draw(EXPRESSIONS)}
    data: dict[str, Any] = {"code": "g", "version": 1, "nodes": nodes, "edges": edges}
    for _ in range(draw(st.integers(0, 2))):
        target = draw(st.sampled_from(_containers(data)))
        value = copy.deepcopy(draw(VALUES))  # sampled values are shared: never mutate them
        if isinstance(target, dict):
            target[draw(KEYS | st.sampled_from(["sourceNodeId", "targetNodeId", "condition"]))] = (
                value
            )
        elif target:
            target[draw(st.integers(0, len(target) - 1))] = value
    return data


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_graphs())
def test_vyuh_graphs_give_only_typed_errors(data: dict[str, Any]) -> None:
    for source in _as_texts(data):
        try:
            flow = load_flow(source, handler_types={"echo"})
        except FlowValidationError:
            continue
        asyncio.run(_save_and_run(flow))
