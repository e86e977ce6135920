"""Full validation of a flow definition: every problem at once, each with a precise path."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Any

from flowmonkey.definitions import builtins
from flowmonkey.definitions.builtin_config import check_builtin_config, is_dot_path
from flowmonkey.definitions.cycles import loop_warnings
from flowmonkey.definitions.graph import check_graph
from flowmonkey.definitions.pipes import check_pipes
from flowmonkey.durations import MAX_DURATION, MAX_DURATION_MS
from flowmonkey.errors import FlowValidationError, ValidationIssue
from flowmonkey.jsonvalues import MAX_DEFINITION_BYTES, MAX_DEFINITION_DEPTH, json_problems
from flowmonkey.model.flow import SELECTOR_TYPES, Flow, RetryPolicy, Step
from flowmonkey.versions import is_semver

__all__ = [
    "errors_only",
    "issues_by_path",
    "raise_for_issues",
    "validate_flow",
    "validate_parsed",
]


def validate_flow(
    flow: Flow,
    *,
    handler_types: Collection[str] | None = None,
    tables: Collection[str] | None = None,
    max_bytes: int = MAX_DEFINITION_BYTES,
) -> list[ValidationIssue]:
    """Return every problem of ``flow`` (errors and warnings) in one list.

    Args:
        flow: the parsed flow.
        handler_types: the registered handler types; when given, a step whose type is
            neither built-in nor listed is an error. ``None`` skips that check.
        tables: the names of the existing data tables; when given, a pipe into any other
            table is an error. ``None`` skips that check (the engine makes it against
            its store before a flow with pipes is saved or started).
        max_bytes: the largest definition (``flow.to_dict()`` as compact JSON, unknown
            keys included); a flow that is not storable JSON within this size and
            ``MAX_DEFINITION_DEPTH`` levels gets only those issues.
    """
    return _validate(flow, handler_types, graph=True, max_bytes=max_bytes, tables=tables)


def validate_parsed(
    flow: Flow,
    parse_issues: Collection[ValidationIssue],
    *,
    handler_types: Collection[str] | None = None,
    tables: Collection[str] | None = None,
    max_bytes: int = MAX_DEFINITION_BYTES,
) -> list[ValidationIssue]:
    """Every issue of a leniently parsed flow (``Flow.parse``): ``parse_issues`` first,
    then the validation issues of the parts that did parse.

    A validation issue at or under the path of a parse issue is left out (it would only
    restate it: an unparseable ``version`` is not also "Required"). When a part that
    defines edges failed to parse (a whole step, ``steps``, ``initialStepId``, a step's
    ``transitions`` or ``config``), the graph checks (reachability, loops, fork/join
    pairing) are skipped: they would report consequences of the missing edges.
    """
    parsed = list(parse_issues)
    graph = not any(_affects_edges(i.path) for i in parsed)
    found = _validate(flow, handler_types, graph=graph, max_bytes=max_bytes, tables=tables)
    covered = [i.path for i in parsed]
    return parsed + [i for i in found if not any(_under(i.path, p) for p in covered)]


_EDGE_PARTS = re.compile(r"steps\.[^.]+(\.(transitions|config)([.\[].*)?)?")


def _affects_edges(path: str) -> bool:
    if path in ("", "steps", "initialStepId") or path.startswith("steps["):
        return True
    return _EDGE_PARTS.fullmatch(path) is not None


def _under(path: str, parent: str) -> bool:
    return not parent or path == parent or path.startswith((f"{parent}.", f"{parent}["))


def _validate(
    flow: Flow,
    handler_types: Collection[str] | None,
    *,
    graph: bool,
    max_bytes: int,
    tables: Collection[str] | None = None,
) -> list[ValidationIssue]:
    issues, fatal = _check_storable(flow, max_bytes)
    if fatal:
        # Nothing else is checked: the other checks walk config values, compile
        # expressions and schemas, and would only trip over the same values.
        return issues
    if not flow.id:
        issues.append(_err("id", "Required"))
    if not flow.version:
        issues.append(_err("version", "Required"))
    elif not is_semver(flow.version):
        issues.append(
            ValidationIssue(
                "version",
                f'"{flow.version}" is not a semantic version (MAJOR.MINOR.PATCH); '
                "versions then sort before every semver version",
                "warning",
            )
        )
    if not flow.initial_step_id:
        issues.append(_err("initialStepId", "Required"))
    if not flow.steps:
        issues.append(_err("steps", "At least one step required"))
        return issues
    if flow.initial_step_id and flow.initial_step_id not in flow.steps:
        issues.append(_err("initialStepId", f'Step "{flow.initial_step_id}" not found'))
    for key, step in flow.steps.items():
        issues += _check_step(key, step, flow, handler_types)
        if step.pipes:
            issues += check_pipes(step, f"steps.{key}.pipes", tables)
    # A non-string type (reported above) would break the graph walk's type lookups.
    if graph and all(isinstance(step.type, str) for step in flow.steps.values()):
        issues += check_graph(flow)
        issues += loop_warnings(flow)  # cycles with no way out, self-recursion
    return issues


def _check_storable(flow: Flow, max_bytes: int) -> tuple[list[ValidationIssue], bool]:
    """Problems of ``flow`` as the stores will write it (a flow built in Python or from a
    dict may hold anything), and whether one of them is fatal (see ``JsonProblem``)."""
    try:
        data = flow.to_dict()
    except (TypeError, ValueError, AttributeError) as exc:
        return [_err("", f"cannot be written as a definition: {exc}")], True
    problems = json_problems(data, max_depth=MAX_DEFINITION_DEPTH, max_bytes=max_bytes)
    return [_err(p.path, p.message) for p in problems], any(p.fatal for p in problems)


def errors_only(issues: Collection[ValidationIssue]) -> list[ValidationIssue]:
    """The error-severity issues of ``issues``."""
    return [i for i in issues if i.severity == "error"]


def raise_for_issues(
    flow_id: str | None, issues: Collection[ValidationIssue], *, source: str | None = None
) -> None:
    """Raise ``FlowValidationError`` (with every issue) when any issue is an error.

    ``source`` (a file name) is prefixed to the message when given.
    """
    errors = errors_only(issues)
    if not errors:
        return
    message = None
    if source:
        listed = "; ".join(f"{i.path}: {i.message}" for i in errors)
        name = f'flow "{flow_id}"' if flow_id else "flow"
        message = f"{source}: {name} is invalid ({len(errors)} problem(s)): {listed}"
    raise FlowValidationError(flow_id, list(issues), message)


def _err(path: str, message: str) -> ValidationIssue:
    return ValidationIssue(path, message, "error")


def _check_step(
    key: str, step: Step, flow: Flow, handler_types: Collection[str] | None
) -> list[ValidationIssue]:
    path = f"steps.{key}"
    issues: list[ValidationIssue] = []
    if step.id != key:
        issues.append(_err(f"{path}.id", f'ID mismatch: "{step.id}" vs key "{key}"'))
    step_type: Any = step.type
    if not step_type:
        issues.append(_err(f"{path}.type", "Required"))
    elif not isinstance(step_type, str):
        issues.append(_err(f"{path}.type", f"must be a string, got {step_type!r}"))
    elif (
        handler_types is not None
        and not builtins.is_builtin(step_type)
        and step_type not in handler_types
    ):
        issues.append(_err(f"{path}.type", f'No handler registered for type "{step_type}"'))
    issues += _check_selector(step, path)
    if step.output_key is not None and not is_dot_path(step.output_key):
        issues.append(
            _err(f"{path}.outputKey", f"must be a non-empty dot path, got {step.output_key!r}")
        )
    issues += _check_transitions(step, path, flow)
    if step.retry is not None:
        issues += _check_retry(step.retry, f"{path}.retry")
    timeout: Any = step.timeout
    if timeout is not None:
        issues += _check_timeout(timeout, f"{path}.timeout")
    issues += check_builtin_config(step, path)
    for extra in step.extra:
        issues.append(
            ValidationIssue(
                f"{path}.{extra}", f'unknown step field "{extra}" is ignored', "warning"
            )
        )
    return issues


def _check_timeout(timeout: Any, path: str) -> list[ValidationIssue]:
    if not isinstance(timeout, timedelta):
        return [_err(path, f"must be a duration, got {timeout!r}")]
    if timeout.total_seconds() <= 0:
        return [_err(path, "must be a positive duration")]
    if timeout > MAX_DURATION:
        return [_err(path, f"must be at most {MAX_DURATION.days} days (ten years)")]
    return []


def _check_selector(step: Step, path: str) -> list[ValidationIssue]:
    sel = step.input
    path = f"{path}.input"
    if sel.type not in SELECTOR_TYPES:
        return [
            _err(
                f"{path}.type",
                f"unknown selector type {sel.type!r}; use one of {', '.join(SELECTOR_TYPES)}",
            )
        ]
    if sel.type == "key" and (not isinstance(sel.key, str) or not sel.key):
        return [_err(f"{path}.key", "Required: the top-level context key to read")]
    if sel.type == "keys" and (
        not isinstance(sel.keys, tuple) or not all(isinstance(k, str) for k in sel.keys)
    ):
        return [_err(f"{path}.keys", "must be a list of context keys (strings)")]
    if sel.type == "path" and not is_dot_path(sel.path):
        return [_err(f"{path}.path", "Required: a dot path like 'order.items.0'")]
    if sel.type == "template" and sel.template is None:
        return [_err(f"{path}.template", "Required: the template value")]
    return []


def _check_transitions(step: Step, path: str, flow: Flow) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    trans = step.transitions
    # Typed str | None, but parsed from files without type checks.
    named: tuple[tuple[str, Any], ...] = (
        ("onSuccess", trans.on_success),
        ("onFailure", trans.on_failure),
        ("onResume", trans.on_resume),
        ("onTimeout", trans.on_timeout),
    )
    for name, target in named:
        if target is not None and not isinstance(target, str):
            issues.append(
                _err(f"{path}.transitions.{name}", f"must be a step id or null, got {target!r}")
            )
    ports: Mapping[Any, Any] = trans.ports
    for port, target in ports.items():
        if not isinstance(port, str) or not port:
            issues.append(_err(f"{path}.transitions.ports", f"invalid port name {port!r}"))
        if target is not None and not isinstance(target, str):
            issues.append(
                _err(
                    f"{path}.transitions.ports.{port}", f"must be a step id or null, got {target!r}"
                )
            )
    for label, target in builtins.step_edges(step):
        if target not in flow.steps:
            issues.append(_err(f"{path}.{label}", f'"{target}" not found'))
    return issues


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_retry(retry: RetryPolicy, path: str) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    max_attempts: Any = retry.max_attempts
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 0:
        issues.append(_err(f"{path}.maxAttempts", f"must be an integer >= 0, got {max_attempts!r}"))
    numbers: tuple[tuple[str, Any, float], ...] = (
        ("backoffMs", retry.backoff_ms, 0),
        ("backoffMultiplier", retry.backoff_multiplier, 1),
        ("maxBackoffMs", retry.max_backoff_ms, 0),
    )
    for name, value, minimum in numbers:
        if not _is_number(value) or not minimum <= value < math.inf:
            issues.append(_err(f"{path}.{name}", f"must be a number >= {minimum:g}, got {value!r}"))
        elif name != "backoffMultiplier" and value > MAX_DURATION_MS:
            issues.append(
                _err(
                    f"{path}.{name}",
                    f"must be at most {MAX_DURATION_MS} ms ({MAX_DURATION.days} days), "
                    f"got {value!r}",
                )
            )
    retry_on: Any = retry.retry_on
    if retry_on is not None and (
        not isinstance(retry_on, tuple) or not all(isinstance(c, str) for c in retry_on)
    ):
        issues.append(_err(f"{path}.retryOn", "must be a list of error codes (strings)"))
    jitter: Any = retry.jitter
    if not isinstance(jitter, bool):
        issues.append(_err(f"{path}.jitter", f"must be true or false, got {jitter!r}"))
    return issues


def issues_by_path(issues: Collection[ValidationIssue]) -> Mapping[str, list[ValidationIssue]]:
    """Group issues by their ``path`` (handy for editors and tests)."""
    out: dict[str, list[ValidationIssue]] = {}
    for issue in issues:
        out.setdefault(issue.path, []).append(issue)
    return out
