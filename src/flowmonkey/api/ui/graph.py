"""What the execution page draws: the coloured Mermaid graph and the attempt timeline."""

from __future__ import annotations

from dataclasses import dataclass

from flowmonkey.definitions.mermaid import node_ids, to_mermaid
from flowmonkey.model.execution import Execution, TokenStatus
from flowmonkey.model.flow import Flow

__all__ = ["Bar", "step_states", "colored_graph", "timeline"]

TIMELINE_MAX = 200
"""Attempts the timeline draws (the latest); the history table lists every one."""


def step_states(execution: Execution) -> dict[str, str]:
    """``visited``, ``failed`` or ``current`` for each step the execution touched."""
    states: dict[str, str] = {}
    for record in execution.history:
        states[record.step_id] = "failed" if record.outcome == "failure" else "visited"
    if execution.error is not None and execution.error.step_id:
        states[execution.error.step_id] = "failed"
    if not execution.is_terminal:
        for token in execution.tokens:
            if token.step_id and token.status in (TokenStatus.ACTIVE, TokenStatus.WAITING):
                states[token.step_id] = "current"
        if execution.current_step_id:
            states[execution.current_step_id] = "current"
    return states


def colored_graph(flow: Flow, states: dict[str, str]) -> str:
    """Mermaid text of ``flow`` with visited, current and failed steps classed."""
    lines = [to_mermaid(flow)]
    lines.append("    classDef visited fill:#cfe8d5,stroke:#1f7a3a,color:#0b2e16")
    lines.append("    classDef current fill:#fde8b0,stroke:#a86b00,stroke-width:3px,color:#3a2600")
    lines.append("    classDef failed fill:#f7c9c9,stroke:#b3261e,color:#410e0b")
    ids = node_ids(flow)
    for step_id, state in states.items():
        if step_id in ids:
            lines.append(f"    class {ids[step_id]} {state}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Bar:
    """One attempt on the timeline, placed in percent of the whole span."""

    step_id: str
    attempt: int
    outcome: str
    duration_ms: float
    left: float
    width: float
    row: int


def timeline(execution: Execution) -> tuple[list[Bar], int]:
    """Bars of the latest ``TIMELINE_MAX`` attempts and how many were left out."""
    records = execution.history[-TIMELINE_MAX:]
    if not records:
        return [], 0
    start = min(r.started_at for r in records)
    end = max(r.finished_at for r in records)
    span = max((end - start).total_seconds(), 1e-6)
    bars = []
    for row, record in enumerate(records):
        left = (record.started_at - start).total_seconds() / span * 100
        width = max((record.finished_at - record.started_at).total_seconds() / span * 100, 0.4)
        bars.append(
            Bar(
                step_id=record.step_id,
                attempt=record.attempt,
                outcome=record.outcome,
                duration_ms=record.duration_ms,
                left=round(min(left, 99.6), 3),
                width=round(min(width, 100 - min(left, 99.6)), 3),
                row=row,
            )
        )
    return bars, len(execution.history) - len(records)
