"""Checks of the ``config`` of built-in steps (parallel, join, switch, forEach, subflow, ...).

Target existence of config edges (switch ``goto``/``default``, parallel ``branches``) is
checked with every other edge in ``validate.py``; here only shapes and values are checked.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from flowmonkey.definitions import builtins
from flowmonkey.definitions.expressions import expression_problem
from flowmonkey.durations import parse_datetime, parse_duration
from flowmonkey.errors import ValidationIssue
from flowmonkey.model.flow import Step

__all__ = ["JOIN_MODES", "TASK_PRIORITIES", "check_builtin_config", "is_dot_path"]

JOIN_MODES = ("all", "any")
TASK_PRIORITIES = ("low", "normal", "high", "urgent")

_TEMPLATE = re.compile(r"^\$\{[^}]+\}$")

_Check = Callable[[Mapping[str, Any], str], list[ValidationIssue]]


def is_dot_path(value: object) -> bool:
    """True for a non-empty dot path with no empty segment (``a.b.c``)."""
    return isinstance(value, str) and bool(value) and all(value.split("."))


def check_builtin_config(step: Step, path: str) -> list[ValidationIssue]:
    """Return the problems of a built-in step's config; ``path`` is ``steps.<key>``."""
    checks: dict[str, _Check] = {
        builtins.PARALLEL: _parallel,
        builtins.JOIN: _join,
        builtins.SWITCH: _switch,
        builtins.FOR_EACH: _for_each,
        builtins.SUBFLOW: _subflow,
        builtins.WAIT_FOR_SIGNAL: _wait_for_signal,
        builtins.USER_TASK: _user_task,
        builtins.DELAY: _delay,
    }
    step_type: object = step.type  # a Step built in Python may hold anything
    check = checks.get(step_type) if isinstance(step_type, str) else None
    if check is None:
        return []
    issues = check(step.config, f"{path}.config")
    if step.type in (builtins.PARALLEL, builtins.SWITCH):
        trans = step.transitions
        if trans.on_success is not None or trans.ports:
            issues.append(
                ValidationIssue(
                    f"{path}.transitions",
                    f"a {step.type} step routes through its config; "
                    "transitions.onSuccess and ports are ignored",
                    "warning",
                )
            )
    return issues


def _err(path: str, message: str) -> ValidationIssue:
    return ValidationIssue(path, message, "error")


def _optional_str(config: Mapping[str, Any], key: str, path: str) -> list[ValidationIssue]:
    value = config.get(key)
    if value is not None and not isinstance(value, str):
        return [_err(f"{path}.{key}", f"must be a string, got {type(value).__name__}")]
    return []


def _required_str(config: Mapping[str, Any], key: str, path: str) -> list[ValidationIssue]:
    value = config.get(key)
    if value is None or value == "":
        return [_err(f"{path}.{key}", "Required")]
    if not isinstance(value, str):
        return [_err(f"{path}.{key}", f"must be a string, got {type(value).__name__}")]
    return []


def _optional_path(config: Mapping[str, Any], key: str, path: str) -> list[ValidationIssue]:
    value = config.get(key)
    if value is not None and not is_dot_path(value):
        return [_err(f"{path}.{key}", f"must be a dot path like 'a.b', got {value!r}")]
    return []


def _optional_duration(
    config: Mapping[str, Any], key: str, path: str, *, positive: bool = True
) -> list[ValidationIssue]:
    value = config.get(key)
    if value is None:
        return []
    try:
        delta = parse_duration(value, field=key)
    except ValueError as exc:
        return [_err(f"{path}.{key}", str(exc))]
    if positive and delta.total_seconds() <= 0:
        return [_err(f"{path}.{key}", "must be a positive duration")]
    return []


def _optional_bool(config: Mapping[str, Any], key: str, path: str) -> list[ValidationIssue]:
    value = config.get(key)
    if value is not None and not isinstance(value, bool):
        return [_err(f"{path}.{key}", f"must be true or false, got {value!r}")]
    return []


def _positive_int(config: Mapping[str, Any], key: str, path: str) -> list[ValidationIssue]:
    value = config.get(key)
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return [_err(f"{path}.{key}", f"must be a positive integer, got {value!r}")]
    return []


def _parallel(config: Mapping[str, Any], path: str) -> list[ValidationIssue]:
    branches = config.get("branches")
    if branches is None:
        return [_err(f"{path}.branches", "Required: a list of step ids to run in parallel")]
    if not isinstance(branches, list) or not branches:
        return [_err(f"{path}.branches", "must be a non-empty list of step ids")]
    issues: list[ValidationIssue] = []
    seen: set[str] = set()
    for i, branch in enumerate(branches):
        if not isinstance(branch, str) or not branch:
            issues.append(_err(f"{path}.branches[{i}]", f"must be a step id, got {branch!r}"))
        elif branch in seen:
            issues.append(_err(f"{path}.branches[{i}]", f'branch "{branch}" is listed twice'))
        else:
            seen.add(branch)
    return issues


def _join(config: Mapping[str, Any], path: str) -> list[ValidationIssue]:
    mode = config.get("mode")
    if mode is not None and mode not in JOIN_MODES:
        return [_err(f"{path}.mode", f"must be one of all, any; got {mode!r}")]
    return []


def _switch(config: Mapping[str, Any], path: str) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    cases = config.get("cases")
    if cases is None:
        cases = []
        if "default" not in config:
            issues.append(_err(f"{path}.cases", "Required: a list of {when, goto} cases"))
    elif not isinstance(cases, list):
        issues.append(_err(f"{path}.cases", "must be a list of {when, goto} cases"))
        cases = []
    for i, case in enumerate(cases):
        case_path = f"{path}.cases[{i}]"
        if not isinstance(case, Mapping):
            issues.append(_err(case_path, "a case must be an object {when, goto}"))
            continue
        when = case.get("when")
        if not isinstance(when, str) or not when.strip():
            issues.append(_err(f"{case_path}.when", "Required: a JMESPath expression"))
        else:
            problem = expression_problem(when)
            if problem is not None:
                issues.append(_err(f"{case_path}.when", problem))
        if "goto" not in case:
            issues.append(_err(f"{case_path}.goto", "Required: a step id (or null to complete)"))
        elif case["goto"] is not None and not isinstance(case["goto"], str):
            issues.append(_err(f"{case_path}.goto", f"must be a step id, got {case['goto']!r}"))
    default = config.get("default")
    if default is not None and not isinstance(default, str):
        issues.append(_err(f"{path}.default", f"must be a step id, got {default!r}"))
    return issues


def _for_each(config: Mapping[str, Any], path: str) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    items = config.get("items")
    if items is None or items == "":
        issues.append(_err(f"{path}.items", "Required: the context path of a list"))
    elif not is_dot_path(items):
        issues.append(
            _err(f"{path}.items", f"must be a dot path like 'order.items', got {items!r}")
        )
    issues += _required_str(config, "flow", path)
    issues += _optional_str(config, "version", path)
    issues += _positive_int(config, "concurrency", path)
    issues += _optional_path(config, "output", path)
    return issues


def _subflow(config: Mapping[str, Any], path: str) -> list[ValidationIssue]:
    issues = _required_str(config, "flowId", path)
    issues += _optional_str(config, "version", path)
    issues += _optional_bool(config, "wait", path)
    issues += _optional_path(config, "output", path)
    return issues


def _wait_for_signal(config: Mapping[str, Any], path: str) -> list[ValidationIssue]:
    return _optional_str(config, "signal", path) + _optional_duration(config, "timeout", path)


def _user_task(config: Mapping[str, Any], path: str) -> list[ValidationIssue]:
    issues = _required_str(config, "title", path)
    for key in ("description", "assignee", "role", "signal"):
        issues += _optional_str(config, key, path)
    priority = config.get("priority")
    if priority is not None and priority not in TASK_PRIORITIES:
        issues.append(
            _err(
                f"{path}.priority", f"must be one of {', '.join(TASK_PRIORITIES)}; got {priority!r}"
            )
        )
    issues += _optional_duration(config, "dueIn", path)
    form = config.get("form")
    if form is not None:
        issues += _check_form(form, f"{path}.form")
    return issues


def _check_form(form: Any, path: str) -> list[ValidationIssue]:
    if not isinstance(form, Mapping):
        return [_err(path, "must be a JSON Schema object")]
    # Imported here: jsonschema is heavy and only user-task forms need it.
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    issues: list[ValidationIssue] = []
    if "$schema" in form and not isinstance(form["$schema"], str):
        return [_err(f"{path}.$schema", "must be a meta-schema URI string")]
    with warnings.catch_warnings(record=True) as caught:
        # An unknown "$schema" makes validator_for warn and fall back to the latest draft.
        warnings.simplefilter("always", DeprecationWarning)
        cls = validator_for(form)
    if caught:
        issues.append(
            ValidationIssue(
                f"{path}.$schema",
                f"unknown meta-schema {form['$schema']!r}; checked against the latest draft",
                "warning",
            )
        )
    try:
        cls.check_schema(dict(form))
    except SchemaError as exc:
        where = exc.json_path if exc.json_path != "$" else "the schema root"
        issues.append(_err(path, f"not a valid JSON Schema at {where}: {exc.message}"))
    return issues


def _delay(config: Mapping[str, Any], path: str) -> list[ValidationIssue]:
    has_duration = config.get("duration") is not None
    has_until = config.get("until") is not None
    if has_duration == has_until:
        return [_err(path, "a delay needs exactly one of 'duration' or 'until'")]
    if has_duration:
        return _optional_duration(config, "duration", path, positive=False)
    until = config["until"]
    if isinstance(until, str) and _TEMPLATE.match(until):
        return []
    try:
        parse_datetime(until, field="until")
    except ValueError as exc:
        return [_err(f"{path}.until", f"{exc} (or use a '${{path}}' template)")]
    return []
