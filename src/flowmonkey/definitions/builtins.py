"""The built-in step types and the edges of a step (used by validation, rendering, the engine).

Built-in steps are run by the engine itself, not by a registered handler; their ``config``
is checked by ``flowmonkey.definitions.validate``. Their edges live partly in ``config``
(switch cases, parallel branches), so graph walks go through :func:`step_edges`.

Switch targets: a case ``goto: null`` completes the flow. ``default`` absent means "no
default" (no match fails the step with ``NO_MATCH``); ``default: null`` present completes
the flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowmonkey.model.flow import Step

__all__ = [
    "BUILTIN_STEP_TYPES",
    "DELAY",
    "FOR_EACH",
    "JOIN",
    "NON_WAITING_BUILTIN_TYPES",
    "PARALLEL",
    "SUBFLOW",
    "SWITCH",
    "USER_TASK",
    "WAITING_BUILTIN_TYPES",
    "WAIT_FOR_SIGNAL",
    "edge_label",
    "is_builtin",
    "step_edges",
    "step_exits",
    "switch_cases",
]

PARALLEL = "parallel"
JOIN = "join"
SWITCH = "switch"
FOR_EACH = "forEach"
SUBFLOW = "subflow"
WAIT_FOR_SIGNAL = "waitForSignal"
USER_TASK = "userTask"
DELAY = "delay"

BUILTIN_STEP_TYPES: frozenset[str] = frozenset(
    {PARALLEL, JOIN, SWITCH, FOR_EACH, SUBFLOW, WAIT_FOR_SIGNAL, USER_TASK, DELAY}
)
"""Step types the engine runs itself; no handler needs to be registered for them."""

WAITING_BUILTIN_TYPES: frozenset[str] = frozenset(
    {FOR_EACH, SUBFLOW, WAIT_FOR_SIGNAL, USER_TASK, DELAY}
)
"""Built-in types whose step makes the execution wait (durably)."""

NON_WAITING_BUILTIN_TYPES: frozenset[str] = BUILTIN_STEP_TYPES - WAITING_BUILTIN_TYPES
"""Built-in types that route without waiting or running user code (switch, parallel, join)."""

_TRANSITION_LABELS = {
    "onSuccess": "success",
    "onFailure": "failure",
    "onResume": "resume",
    "onTimeout": "timeout",
}


def is_builtin(step_type: object) -> bool:
    """True when ``step_type`` is run by the engine itself."""
    return isinstance(step_type, str) and step_type in BUILTIN_STEP_TYPES


def switch_cases(step: Step) -> list[tuple[int, Any, Any]]:
    """Return ``(index, when, goto)`` for each well-formed-enough case of a switch step.

    Cases that are not objects are skipped (validation reports them).
    """
    cases = step.config.get("cases")
    if not isinstance(cases, list):
        return []
    return [
        (i, case.get("when"), case.get("goto"))
        for i, case in enumerate(cases)
        if isinstance(case, Mapping)
    ]


def step_exits(step: Step) -> list[tuple[str, str | None]]:
    """Every way out of ``step`` as ``(label, target)``; ``None`` targets complete the flow.

    ``label`` is the location of the edge inside the step (``transitions.onSuccess``,
    ``transitions.ports.approve``, ``config.cases[0].goto``, ``config.default``,
    ``config.branches[1]``), so ``f"steps.{step.id}.{label}"`` is a validation path.
    Only string (or ``None`` completion) targets are listed; malformed ones are skipped.
    Failure routes (``onFailure`` absent) that fail the flow are not listed.
    """
    out: list[tuple[str, str | None]] = []
    if step.type == PARALLEL:
        branches = step.config.get("branches")
        if isinstance(branches, list):
            out.extend(
                (f"config.branches[{i}]", b) for i, b in enumerate(branches) if isinstance(b, str)
            )
    elif step.type == SWITCH:
        for i, _when, goto in switch_cases(step):
            if goto is None or isinstance(goto, str):
                out.append((f"config.cases[{i}].goto", goto))
        if "default" in step.config:
            default = step.config["default"]
            if default is None or isinstance(default, str):
                out.append(("config.default", default))
    trans = step.transitions
    routes_on_success = step.type not in (PARALLEL, SWITCH)
    # Values are typed str | None but come from files: anything else is skipped here and
    # reported by validation.
    named: tuple[tuple[str, Any], ...] = (
        ("onSuccess", trans.on_success),
        ("onFailure", trans.on_failure),
        ("onResume", trans.on_resume),
        ("onTimeout", trans.on_timeout),
    )
    for name, target in named:
        completes = name == "onSuccess" and target is None and routes_on_success
        if isinstance(target, str) or completes:
            out.append((f"transitions.{name}", target))
    ports: Mapping[str, Any] = trans.ports
    for port, target in ports.items():
        if target is None or isinstance(target, str):
            out.append((f"transitions.ports.{port}", target))
    return out


def step_edges(step: Step) -> list[tuple[str, str]]:
    """Edges from ``step`` to other steps as ``(label, target step id)`` (see ``step_exits``).

    Covers transitions, ports, switch cases/default and parallel branches.
    """
    return [(label, target) for label, target in step_exits(step) if target is not None]


def edge_label(step: Step, label: str) -> str:
    """A short human label for an edge of ``step``: ``success``, a port name, a case's
    ``when`` expression, ``default`` or ``branch``."""
    if label.startswith("transitions.ports."):
        return label.removeprefix("transitions.ports.")
    if label.startswith("transitions."):
        name = label.removeprefix("transitions.")
        return _TRANSITION_LABELS.get(name, name)
    if label.startswith("config.cases["):
        index = int(label[len("config.cases[") : label.index("]")])
        for i, when, _goto in switch_cases(step):
            if i == index:
                return str(when)
        return label
    if label == "config.default":
        return "default"
    if label.startswith("config.branches["):
        return "branch"
    return label
