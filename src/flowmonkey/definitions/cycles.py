"""Warnings about flows that may never end: a cycle with no wait and no exit, and a
sub-flow step that starts its own flow (direct self-recursion).

Both are warnings, not errors: a handler may end such a loop (``Result.wait()``, a
``next_step`` override, a failure), and recursion may be bounded by the data. At run time
``max_steps`` bounds a loop and ``EngineOptions.max_subflow_depth`` bounds recursion.
"""

from __future__ import annotations

from flowmonkey.definitions import builtins
from flowmonkey.definitions.graph import adjacency, strongly_connected_components
from flowmonkey.errors import ValidationIssue
from flowmonkey.model.flow import Flow, Step

__all__ = ["endless_cycles", "loop_warnings", "self_recursion"]

# Edges a step takes when it succeeds (failure and timeout routes are the exception).
_SUCCESS_EDGES = ("transitions.onSuccess", "transitions.onResume", "transitions.ports.",
                  "config.cases[", "config.default", "config.branches[")  # fmt: skip


def loop_warnings(flow: Flow) -> list[ValidationIssue]:
    """Every warning of this module for ``flow``."""
    return endless_cycles(flow) + self_recursion(flow)


def _leaves(step: Step, component: set[str]) -> bool:
    """True when a success route of ``step`` completes the flow or leaves ``component``."""
    if step.type == builtins.SWITCH and "default" not in step.config:
        return True  # no match fails the step with NO_MATCH
    return any(
        label.startswith(_SUCCESS_EDGES) and (target is None or target not in component)
        for label, target in builtins.step_exits(step)
    )


def endless_cycles(flow: Flow) -> list[ValidationIssue]:
    """Cycles that run handlers but never wait and whose success routes never leave.

    Cycles made only of routing built-ins (switch, parallel, join) are reported by
    ``graph.check_graph`` already and are skipped here.
    """
    issues: list[ValidationIssue] = []
    graph = adjacency(flow)
    for component in strongly_connected_components(graph):
        if len(component) == 1 and component[0] not in graph[component[0]]:
            continue  # not a cycle
        steps = [flow.steps[m] for m in component]
        if all(s.type in builtins.NON_WAITING_BUILTIN_TYPES for s in steps):
            continue  # the routing-only case (graph.check_graph)
        if any(s.type in builtins.WAITING_BUILTIN_TYPES for s in steps):
            continue
        members = set(component)
        if any(_leaves(s, members) for s in steps):
            continue
        names = ", ".join(f'"{m}"' for m in component)
        issues.append(
            ValidationIssue(
                f"steps.{component[0]}",
                f"steps {names} form a cycle with no wait and no exit: unless a handler "
                "returns Result.wait(), a next_step override or a failure, it runs until "
                "max_steps (MAX_STEPS)",
                "warning",
            )
        )
    return issues


def self_recursion(flow: Flow) -> list[ValidationIssue]:
    """``subflow``/``forEach`` steps that start this very flow (each child starts another
    child: only ``max_subflow_depth`` stops it)."""
    issues: list[ValidationIssue] = []
    for key, step in flow.steps.items():
        if step.type == builtins.SUBFLOW:
            field = "flowId"
        elif step.type == builtins.FOR_EACH:
            field = "flow"
        else:
            continue
        target = step.config.get(field)
        version = step.config.get("version")
        if target == flow.id and version in (None, flow.version):
            issues.append(
                ValidationIssue(
                    f"steps.{key}.config.{field}",
                    f'step "{key}" starts its own flow "{flow.id}" (direct recursion): each '
                    "child starts another until max_subflow_depth fails it "
                    "(SUBFLOW_DEPTH_EXCEEDED)",
                    "warning",
                )
            )
    return issues
