"""Graph analysis of a flow: reachability, loops without a way out, fork/join pairing.

Every walk follows :func:`flowmonkey.definitions.builtins.step_edges` (transitions, ports,
switch cases/default and parallel branches); edges to unknown steps are ignored here
(validation reports them separately).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from flowmonkey.definitions import builtins
from flowmonkey.errors import ValidationIssue
from flowmonkey.model.flow import Flow, Step

__all__ = [
    "adjacency",
    "check_graph",
    "fork_joins",
    "reachable_steps",
    "strongly_connected_components",
]


def adjacency(flow: Flow) -> dict[str, list[str]]:
    """``step id -> [target ids]`` over existing steps, in edge order, without duplicates."""
    out: dict[str, list[str]] = {}
    for key, step in flow.steps.items():
        targets: list[str] = []
        for _label, target in builtins.step_edges(step):
            if target in flow.steps and target not in targets:
                targets.append(target)
        out[key] = targets
    return out


def reachable_steps(flow: Flow) -> set[str]:
    """Ids of the steps reachable from ``initial_step_id`` (empty if it does not exist)."""
    if flow.initial_step_id not in flow.steps:
        return set()
    graph = adjacency(flow)
    seen = {flow.initial_step_id}
    stack = [flow.initial_step_id]
    while stack:
        for target in graph[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def strongly_connected_components(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components in discovery order, members in graph order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    order = {node: i for i, node in enumerate(graph)}
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, []))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component, key=order.__getitem__))
    return components


def _can_leave(step: Step, component: set[str]) -> bool:
    """True when ``step`` has a route out of ``component`` (or can complete/fail the flow)."""
    if step.type == builtins.SWITCH and "default" not in step.config:
        return True  # no match fails the step with NO_MATCH
    return any(target is None or target not in component for _, target in builtins.step_exits(step))


def _stuck_cycles(flow: Flow) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    graph = adjacency(flow)
    for component in strongly_connected_components(graph):
        members = set(component)
        if len(component) == 1 and component[0] not in graph[component[0]]:
            continue  # not a cycle
        steps = [flow.steps[m] for m in component]
        # Conservative: any step that runs user code or waits may change the context, wait
        # or fail, so only loops made purely of routing built-ins are reported.
        if not all(s.type in builtins.NON_WAITING_BUILTIN_TYPES for s in steps):
            continue
        if any(_can_leave(s, members) for s in steps):
            continue
        names = ", ".join(f'"{m}"' for m in component)
        issues.append(
            ValidationIssue(
                f"steps.{component[0]}",
                f"steps {names} form a cycle with no wait and no way out "
                "(it would loop until max_steps)",
                "warning",
            )
        )
    return issues


def _branch_joins(flow: Flow, start: str, limit: int) -> set[str]:
    """Joins at nesting depth 0 reached from ``start`` (nested fork/join pairs are skipped)."""
    found: set[str] = set()
    seen: set[tuple[str, int]] = set()
    stack = [(start, 0)]
    while stack:
        node, depth = stack.pop()
        if (node, depth) in seen or node not in flow.steps:
            continue
        seen.add((node, depth))
        step = flow.steps[node]
        if step.type == builtins.JOIN:
            if depth == 0:
                found.add(node)
                continue
            depth -= 1
        elif step.type == builtins.PARALLEL:
            depth += 1
            if depth > limit:
                continue
        stack.extend((target, depth) for _, target in builtins.step_edges(step))
    return found


def fork_joins(flow: Flow) -> dict[str, list[set[str]]]:
    """For each parallel step, the set of nearest joins reached by each of its branches."""
    limit = sum(1 for s in flow.steps.values() if s.type == builtins.PARALLEL) + 1
    out: dict[str, list[set[str]]] = {}
    for key, step in flow.steps.items():
        if step.type != builtins.PARALLEL:
            continue
        branches = step.config.get("branches")
        if not isinstance(branches, list):
            continue
        out[key] = [
            _branch_joins(flow, b, limit) if isinstance(b, str) and b in flow.steps else set()
            for b in branches
        ]
    return out


def _fork_join_issues(flow: Flow) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    matched: set[str] = set()
    for fork, per_branch in fork_joins(flow).items():
        branches: list[object] = list(flow.steps[fork].config.get("branches") or [])
        joins = set().union(*per_branch) if per_branch else set()
        matched |= joins
        for i, (branch, reached) in enumerate(zip(branches, per_branch, strict=True)):
            if not reached and isinstance(branch, str) and branch in flow.steps:
                issues.append(
                    ValidationIssue(
                        f"steps.{fork}.config.branches[{i}]",
                        f'branch "{branch}" never reaches a join step',
                        "error",
                    )
                )
        if len(joins) > 1:
            listed = ", ".join(f'"{j}"' for j in sorted(joins))
            issues.append(
                ValidationIssue(
                    f"steps.{fork}.config.branches",
                    f'the branches of parallel step "{fork}" reach different joins: {listed}',
                    "error",
                )
            )
    for key, step in flow.steps.items():
        if step.type == builtins.JOIN and key not in matched:
            issues.append(
                ValidationIssue(
                    f"steps.{key}",
                    f'join "{key}" is not reached by the branches of any parallel step',
                    "error",
                )
            )
    return issues


def check_graph(flow: Flow) -> list[ValidationIssue]:
    """Unreachable steps (warning), stuck cycles (warning) and fork/join pairing (errors)."""
    issues: list[ValidationIssue] = []
    if flow.initial_step_id in flow.steps:
        reachable = reachable_steps(flow)
        for key in flow.steps:
            if key not in reachable:
                issues.append(
                    ValidationIssue(
                        f"steps.{key}",
                        f'step "{key}" is unreachable from initialStepId "{flow.initial_step_id}"',
                        "warning",
                    )
                )
    issues += _stuck_cycles(flow)
    issues += _fork_join_issues(flow)
    return issues
