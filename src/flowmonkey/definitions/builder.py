"""``FlowBuilder``: build a :class:`Flow` in Python (same model as a flow file).

Example::

    flow = (
        FlowBuilder("order", version="1.0.0")
        .step("validate", "validate-order", input={"type": "key", "key": "order"})
        .step("charge", "charge-card", on_failure="refund")
        .step("ship", "ship-order", on_success=None)
        .step("refund", "refund-order")
        .build()
    )

``on_success=NEXT`` (the default) chains to the next step added, or completes the flow
after the last one; ``None`` completes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal, Self, TypeAlias

from flowmonkey.definitions import builtins
from flowmonkey.definitions.validate import raise_for_issues, validate_flow
from flowmonkey.durations import format_duration, parse_duration
from flowmonkey.errors import ValidationIssue
from flowmonkey.model.flow import Flow, InputSelector, RetryPolicy, Step, Transitions
from flowmonkey.model.pipes import Pipe

__all__ = ["NEXT", "FlowBuilder", "Next", "Target"]


class Next:
    """Type of :data:`NEXT`: "the next step added" (resolved by ``build()``)."""

    def __repr__(self) -> str:
        return "NEXT"

    def __copy__(self) -> Next:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Next:
        return self


NEXT: Final = Next()
"""Transition target meaning "the next step added to the builder" (``None`` after the last)."""

Target: TypeAlias = str | Next | None
"""A step id, ``None`` (complete/fail the flow) or :data:`NEXT`."""

InputLike: TypeAlias = InputSelector | Mapping[str, Any] | None
DurationLike: TypeAlias = timedelta | int | float | str


class FlowBuilder:
    """Fluent builder for a :class:`Flow`; ``build()`` validates like ``load_flow``.

    Args:
        flow_id: the flow id.
        version: a semantic version.
        name: a display name.
    """

    def __init__(self, flow_id: str, version: str = "1.0.0", name: str | None = None) -> None:
        self._id = flow_id
        self._version = version
        self._name = name
        self._description: str | None = None
        self._start: str | None = None
        self._order: list[str] = []
        self._steps: dict[str, dict[str, Any]] = {}
        self._issues: list[ValidationIssue] = []

    # --- flow attributes --------------------------------------------------------------

    def version(self, version: str) -> Self:
        """Set the flow version."""
        self._version = version
        return self

    def name(self, name: str | None) -> Self:
        """Set the flow's display name."""
        self._name = name
        return self

    def description(self, description: str | None) -> Self:
        """Set the flow's description."""
        self._description = description
        return self

    def start_at(self, step_id: str) -> Self:
        """Start the flow at ``step_id`` (default: the first step added)."""
        self._start = step_id
        return self

    # --- steps ------------------------------------------------------------------------

    def step(
        self,
        id: str,
        type: str,
        *,
        config: Mapping[str, Any] | None = None,
        input: InputLike = None,
        output_key: str | None = None,
        on_success: Target = NEXT,
        on_failure: Target = None,
        on_resume: Target = None,
        on_timeout: Target = None,
        ports: Mapping[str, Target] | None = None,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        timeout: DurationLike | None = None,
        name: str | None = None,
        description: str | None = None,
        pipes: Sequence[Pipe | Mapping[str, Any]] = (),
    ) -> Self:
        """Add a step running handler ``type`` (or a built-in type).

        ``pipes`` write rows into data tables in the step's commit: ``Pipe`` objects or
        their file shape ``{"table", "map", "when"?}`` (see also :meth:`pipe`).
        """
        if id in self._steps:
            self._issues.append(ValidationIssue(f"steps.{id}", f'step "{id}" is added twice'))
            return self
        self._order.append(id)
        self._steps[id] = {
            "type": type,
            "config": copy.deepcopy(dict(config or {})),
            "input": input,
            "output_key": output_key,
            "transitions": {
                "on_success": on_success,
                "on_failure": on_failure,
                "on_resume": on_resume,
                "on_timeout": on_timeout,
                "ports": dict(ports or {}),
            },
            "retry": retry,
            "timeout": timeout,
            "name": name,
            "description": description,
            "pipes": [p if isinstance(p, Pipe) else _pipe(p) for p in pipes],
        }
        return self

    def pipe(self, table: str, map: str, *, when: str = "success") -> Self:
        """Add a pipe to the step added last: when it ends ``when`` (``success``,
        ``failure`` or ``always``), the JMESPath ``map`` over ``{input, output, error,
        context, execution}`` builds a row of ``table``, written in the step's commit."""
        if not self._order:
            self._issues.append(ValidationIssue("steps", "pipe() needs a step added first"))
            return self
        self._steps[self._order[-1]]["pipes"].append(Pipe(table=table, map=map, when=when))
        return self

    def parallel(self, id: str, branches: Sequence[str], *, name: str | None = None) -> Self:
        """Fork one token per branch; each branch must lead into the same :meth:`join`."""
        return self.step(
            id, builtins.PARALLEL, config={"branches": list(branches)}, on_success=None, name=name
        )

    def join(
        self,
        id: str,
        mode: Literal["all", "any"] = "all",
        on_success: Target = NEXT,
        *,
        name: str | None = None,
    ) -> Self:
        """Wait for the branches of the nearest parallel step (``all``) or the first (``any``)."""
        return self.step(id, builtins.JOIN, config={"mode": mode}, on_success=on_success, name=name)

    def switch(
        self,
        id: str,
        cases: Sequence[tuple[str, Target]] = (),
        default: Target = None,
        *,
        name: str | None = None,
    ) -> Self:
        """Route by the first JMESPath ``when`` that is truthy; else ``default`` (if any)."""
        config: dict[str, Any] = {"cases": [{"when": w, "goto": g} for w, g in cases]}
        if default is not None:
            config["default"] = default
        return self.step(id, builtins.SWITCH, config=config, on_success=None, name=name)

    def user_task(
        self,
        id: str,
        title: str,
        *,
        assignee: str | None = None,
        role: str | None = None,
        priority: Literal["low", "normal", "high", "urgent"] | None = None,
        due_in: DurationLike | None = None,
        form: Mapping[str, Any] | None = None,
        description: str | None = None,
        **options: Any,
    ) -> Self:
        """Create a user task and wait for it (``options`` as for :meth:`step`).

        ``title`` and ``description`` may hold ``{{path}}`` templates; ``form`` is a JSON
        Schema the completion output is validated against.
        """
        config = _compact(
            title=title,
            description=description,
            assignee=assignee,
            role=role,
            priority=priority,
            dueIn=_duration(due_in),
            form=copy.deepcopy(dict(form)) if form is not None else None,
        )
        return self.step(id, builtins.USER_TASK, config=config, **options)

    def wait_for_signal(
        self,
        id: str,
        signal: str | None = None,
        *,
        timeout: DurationLike | None = None,
        **options: Any,
    ) -> Self:
        """Wait for ``engine.signal``; after ``timeout`` go to ``on_timeout`` (else TIMEOUT).

        ``timeout`` is the wait's timeout (``config.timeout``), not a handler timeout.
        """
        config = _compact(signal=signal, timeout=_duration(timeout))
        return self.step(id, builtins.WAIT_FOR_SIGNAL, config=config, **options)

    def delay(
        self,
        id: str,
        duration: DurationLike | None = None,
        *,
        until: datetime | str | None = None,
        **options: Any,
    ) -> Self:
        """Wait durably for ``duration`` or until a time (ISO string, datetime or ``${path}``)."""
        until_value = until.isoformat() if isinstance(until, datetime) else until
        config = _compact(duration=_duration(duration), until=until_value)
        return self.step(id, builtins.DELAY, config=config, **options)

    def subflow(
        self,
        id: str,
        flow_id: str,
        *,
        version: str | None = None,
        wait: bool = True,
        output: str | None = None,
        **options: Any,
    ) -> Self:
        """Start a child execution of ``flow_id`` (and wait for it unless ``wait=False``)."""
        config = _compact(flowId=flow_id, version=version, output=output)
        if not wait:
            config["wait"] = False
        return self.step(id, builtins.SUBFLOW, config=config, **options)

    def for_each(
        self,
        id: str,
        items: str,
        flow: str,
        *,
        version: str | None = None,
        concurrency: int | None = None,
        output: str | None = None,
        **options: Any,
    ) -> Self:
        """Run sub-flow ``flow`` once per item of the context list at ``items``."""
        config = _compact(
            items=items, flow=flow, version=version, concurrency=concurrency, output=output
        )
        return self.step(id, builtins.FOR_EACH, config=config, **options)

    # --- build ------------------------------------------------------------------------

    def build(self) -> Flow:
        """Resolve :data:`NEXT`, validate and return the flow.

        Raises:
            FlowValidationError: the flow has errors (every issue is listed).
        """
        steps: dict[str, Step] = {}
        issues = list(self._issues)
        for index, step_id in enumerate(self._order):
            following = self._order[index + 1] if index + 1 < len(self._order) else None
            steps[step_id] = self._make_step(step_id, self._steps[step_id], following, issues)
        flow = Flow(
            id=self._id,
            version=self._version,
            name=self._name,
            description=self._description,
            initial_step_id=self._start or (self._order[0] if self._order else ""),
            steps=steps,
        )
        raise_for_issues(flow.id, issues + validate_flow(flow))
        return flow

    def _make_step(
        self,
        step_id: str,
        spec: dict[str, Any],
        following: str | None,
        issues: list[ValidationIssue],
    ) -> Step:
        def resolve(target: Target) -> str | None:
            return following if isinstance(target, Next) else target

        trans = spec["transitions"]
        config = copy.deepcopy(spec["config"])
        if spec["type"] == builtins.SWITCH:
            for case in config["cases"]:
                case["goto"] = resolve(case["goto"])
            if "default" in config:
                config["default"] = resolve(config["default"])
        raw_input = spec["input"]
        retry = spec["retry"]
        timeout = None
        if spec["timeout"] is not None:
            try:
                timeout = parse_duration(spec["timeout"], field="timeout")
            except ValueError as exc:  # listed with every other issue by build()
                message = str(exc).removeprefix("timeout: ")
                issues.append(ValidationIssue(f"steps.{step_id}.timeout", message))
        return Step(
            id=step_id,
            type=spec["type"],
            config=config,
            input=(
                raw_input
                if isinstance(raw_input, InputSelector)
                else InputSelector.from_dict(raw_input)
                if raw_input is not None
                else InputSelector()
            ),
            output_key=spec["output_key"],
            transitions=Transitions(
                on_success=resolve(trans["on_success"]),
                on_failure=resolve(trans["on_failure"]),
                on_resume=resolve(trans["on_resume"]),
                on_timeout=resolve(trans["on_timeout"]),
                ports={port: resolve(t) for port, t in trans["ports"].items()},
            ),
            retry=(
                retry
                if isinstance(retry, RetryPolicy) or retry is None
                else RetryPolicy.from_dict(retry)
            ),
            timeout=timeout,
            name=spec["name"],
            description=spec["description"],
            pipes=tuple(spec.get("pipes", ())),
        )


def _duration(value: DurationLike | None) -> int | float | str | None:
    """Durations go into config in their file form (a timedelta becomes ``"1h30m"``)."""
    if isinstance(value, timedelta):
        return format_duration(value)
    return value


def _pipe(data: Mapping[str, Any]) -> Pipe:
    return Pipe(
        table=data.get("table", ""), map=data.get("map", ""), when=data.get("when", "success")
    )


def _compact(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
