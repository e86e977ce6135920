"""Render a flow as a Mermaid ``flowchart TD`` (deterministic: steps in definition order)."""

from __future__ import annotations

import re

from flowmonkey.definitions import builtins
from flowmonkey.model.flow import Flow, Step

__all__ = ["node_ids", "to_mermaid"]

_START = "fm_start"
_END = "fm_end"
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_]")
_WAIT_TYPES = frozenset({builtins.WAIT_FOR_SIGNAL, builtins.USER_TASK, builtins.DELAY})
_SUBROUTINE_TYPES = frozenset({builtins.SUBFLOW, builtins.FOR_EACH})


def _escape(text: str) -> str:
    """Make ``text`` safe inside a quoted Mermaid label (entity codes for special chars)."""
    text = text.replace("#", "#35;")
    for char, code in (('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;"),
                       ("`", "#96;"), ("\n", " ")):  # fmt: skip
        text = text.replace(char, code)
    return text


def _node_ids(flow: Flow) -> dict[str, str]:
    ids: dict[str, str] = {}
    used: set[str] = set()
    for key in flow.steps:
        base = "s_" + _UNSAFE_ID.sub("_", key)
        candidate, n = base, 2
        while candidate in used:
            candidate, n = f"{base}_{n}", n + 1
        used.add(candidate)
        ids[key] = candidate
    return ids


def node_ids(flow: Flow) -> dict[str, str]:
    """The Mermaid node id of each step of ``flow`` (as ``to_mermaid`` writes them), so a
    caller can add ``class`` lines that colour steps."""
    return _node_ids(flow)


def _shape(step: Step, node_id: str, key: str) -> str:
    label = f'"{_escape(key)}<br/>{_escape(step.type or "?")}"'
    if step.type == builtins.SWITCH:
        return f"{node_id}{{{label}}}"
    if step.type in (builtins.PARALLEL, builtins.JOIN):
        return f"{node_id}{{{{{label}}}}}"
    if step.type in _WAIT_TYPES:
        return f"{node_id}([{label}])"
    if step.type in _SUBROUTINE_TYPES:
        return f"{node_id}[[{label}]]"
    return f"{node_id}[{label}]"


def to_mermaid(flow: Flow) -> str:
    """Return Mermaid ``flowchart TD`` text for ``flow``.

    Shapes: switch = rhombus, parallel/join = hexagon, waits (signal, user task, delay) =
    stadium, subflow/forEach = subroutine, other steps = rectangle. Edges are labelled
    ``success``/``failure``/``resume``/``timeout``, port names, switch ``when``
    expressions, ``default`` or ``branch``; transitions that complete the flow lead to an
    ``end`` node.
    """
    ids = _node_ids(flow)
    lines = ["flowchart TD", f"    {_START}((start))"]
    lines += [f"    {_shape(step, ids[key], key)}" for key, step in flow.steps.items()]
    edges: list[str] = []
    if flow.initial_step_id in ids:
        edges.append(f"    {_START} --> {ids[flow.initial_step_id]}")
    missing: dict[str, str] = {}
    ends = False
    for key, step in flow.steps.items():
        for label, target in builtins.step_exits(step):
            if target is None:
                ends = True
                dest = _END
            elif target in ids:
                dest = ids[target]
            else:
                dest = missing.setdefault(target, f"missing_{len(missing) + 1}")
            text = _escape(builtins.edge_label(step, label))
            edges.append(f'    {ids[key]} -->|"{text}"| {dest}')
    if ends:
        lines.append(f"    {_END}([end])")
    lines += [f'    {node}["{_escape(target)} (missing)"]' for target, node in missing.items()]
    for node in missing.values():
        lines.append(f"    style {node} stroke-dasharray: 5 5")
    return "\n".join(lines + edges) + "\n"
