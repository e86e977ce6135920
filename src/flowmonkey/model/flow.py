"""Flow definitions as pure data: ``Flow``, ``Step``, selectors, transitions, retry policy.

The JSON/YAML shape is FlowMonkey's (camelCase); Python attributes are snake_case.
``Flow.from_dict`` only parses; validation lives in ``flowmonkey.definitions.validate``
(``validate_flow(flow)``): the model never imports the layer above it.
``Flow.parse`` / ``Step.parse`` are the lenient parsers behind ``from_dict``: they collect
one issue per unparseable field (with its precise path) and keep going.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flowmonkey.durations import format_duration, parse_duration
from flowmonkey.errors import FlowValidationError, ValidationIssue
from flowmonkey.model.pipes import Pipe, parse_pipes

__all__ = [
    "SELECTOR_TYPES",
    "KEEP_FOREVER",
    "Flow",
    "InputSelector",
    "RetryPolicy",
    "Step",
    "Transitions",
]

SELECTOR_TYPES = ("key", "keys", "path", "template", "full", "static")

_MISSING: Any = object()


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _raise_issues(issues: list[ValidationIssue]) -> None:
    """``from_dict`` of a part: raise ``ValueError`` naming every unparseable field."""
    if issues:
        raise ValueError(
            "; ".join(f"{i.path}: {i.message}" if i.path else i.message for i in issues)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class InputSelector:
    """Picks a step's input out of the execution context (see SEMANTICS.md)."""

    type: str = "full"
    """One of ``key``, ``keys``, ``path``, ``template``, ``full``, ``static``."""
    key: str | None = None
    keys: tuple[str, ...] | None = None
    path: str | None = None
    template: Any = None
    value: Any = None

    @classmethod
    def from_dict(cls, data: Any) -> InputSelector:
        """Parse ``{"type": ..., ...}``; unknown shapes are kept for validation to report.

        Raises:
            ValueError: ``data`` is not an object.
        """
        if not isinstance(data, Mapping):
            raise ValueError("input must be an object like {type: key, key: name}")
        keys = data.get("keys")
        return cls(
            type=str(data.get("type", "")),
            key=data.get("key"),
            keys=tuple(keys) if isinstance(keys, list | tuple) else keys,
            path=data.get("path"),
            template=data.get("template"),
            value=data.get("value"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the FlowMonkey JSON shape."""
        out: dict[str, Any] = {"type": self.type}
        if self.type == "key":
            out["key"] = self.key
        elif self.type == "keys":
            out["keys"] = list(self.keys or ())
        elif self.type == "path":
            out["path"] = self.path
        elif self.type == "template":
            out["template"] = self.template
        elif self.type == "static":
            out["value"] = self.value
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Transitions:
    """Where an execution goes after a step. ``None`` (or absent) completes / fails."""

    on_success: str | None = None
    on_failure: str | None = None
    on_resume: str | None = None
    on_timeout: str | None = None
    ports: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> Transitions:
        """Parse ``{"onSuccess": ..., "ports": {...}}`` (absent means ``{}``).

        Raises:
            ValueError: ``data`` or its ``ports`` is not an object.
        """
        issues: list[ValidationIssue] = []
        out = cls._parse(data, "transitions", issues)
        _raise_issues(issues)
        return out

    @classmethod
    def _parse(cls, data: Any, path: str, issues: list[ValidationIssue]) -> Transitions:
        """Lenient: an unparseable part is one issue and is left empty."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            issues.append(
                ValidationIssue(
                    path, f"must be an object like {{onSuccess: step-id}}, got {_kind(data)}"
                )
            )
            return cls()
        ports = data.get("ports")
        if ports is None:
            ports = {}
        elif not isinstance(ports, Mapping):
            issues.append(
                ValidationIssue(
                    _join(path, "ports"),
                    f"must be an object of port -> step id, got {_kind(ports)}",
                )
            )
            ports = {}
        return cls(
            on_success=data.get("onSuccess"),
            on_failure=data.get("onFailure"),
            on_resume=data.get("onResume"),
            on_timeout=data.get("onTimeout"),
            ports=dict(ports),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape; ``None`` targets are omitted (absent == null)."""
        out: dict[str, Any] = {}
        for name, value in (
            ("onSuccess", self.on_success),
            ("onFailure", self.on_failure),
            ("onResume", self.on_resume),
            ("onTimeout", self.on_timeout),
        ):
            if value is not None:
                out[name] = value
        if self.ports:
            out["ports"] = dict(self.ports)
        return out

    def targets(self) -> list[tuple[str, str]]:
        """Return ``(field name, step id)`` for every non-null target."""
        out = [
            (name, value)
            for name, value in (
                ("onSuccess", self.on_success),
                ("onFailure", self.on_failure),
                ("onResume", self.on_resume),
                ("onTimeout", self.on_timeout),
            )
            if value is not None
        ]
        out.extend((f"ports.{port}", t) for port, t in self.ports.items() if t is not None)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Per-step retries. ``max_attempts`` counts retries after the first attempt."""

    max_attempts: int
    backoff_ms: int = 0
    backoff_multiplier: float = 2.0
    max_backoff_ms: int = 60_000
    retry_on: tuple[str, ...] | None = None
    jitter: bool = False

    @classmethod
    def from_dict(cls, data: Any) -> RetryPolicy:
        """Parse the FlowMonkey ``retry`` object (values are checked by validation).

        Raises:
            ValueError: ``data`` is not an object.
        """
        if not isinstance(data, Mapping):
            raise ValueError("retry must be an object like {maxAttempts: 3}")
        retry_on = data.get("retryOn")
        return cls(
            max_attempts=data.get("maxAttempts", 0),
            backoff_ms=data.get("backoffMs", 0),
            backoff_multiplier=data.get("backoffMultiplier", 2.0),
            max_backoff_ms=data.get("maxBackoffMs", 60_000),
            retry_on=tuple(retry_on) if isinstance(retry_on, list | tuple) else retry_on,
            jitter=data.get("jitter", False),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape (defaults omitted)."""
        out: dict[str, Any] = {"maxAttempts": self.max_attempts}
        if self.backoff_ms:
            out["backoffMs"] = self.backoff_ms
        if self.backoff_multiplier != 2.0:
            out["backoffMultiplier"] = self.backoff_multiplier
        if self.max_backoff_ms != 60_000:
            out["maxBackoffMs"] = self.max_backoff_ms
        if self.retry_on is not None:
            out["retryOn"] = list(self.retry_on)
        if self.jitter:
            out["jitter"] = True
        return out

    def delay_ms(self, retry_index: int) -> float:
        """Delay before retry ``retry_index`` (0-based), without jitter."""
        cap = float(self.max_backoff_ms)
        if not self.backoff_ms:
            return 0.0
        try:
            grown = self.backoff_ms * float(self.backoff_multiplier) ** retry_index
        except OverflowError:  # e.g. a multiplier of 1000 at the 200th retry: past any cap
            return cap
        return float(min(grown, cap))


_STEP_KEYS = {
    "id",
    "type",
    "config",
    "input",
    "outputKey",
    "transitions",
    "retry",
    "timeout",
    "name",
    "description",
    "pipes",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One node of a flow: a handler type, its config, input selector and transitions."""

    id: str
    type: str
    config: Mapping[str, Any] = field(default_factory=dict)
    input: InputSelector = field(default_factory=InputSelector)
    output_key: str | None = None
    transitions: Transitions = field(default_factory=Transitions)
    retry: RetryPolicy | None = None
    timeout: timedelta | None = None
    name: str | None = None
    description: str | None = None
    pipes: tuple[Pipe, ...] = ()
    """Rows this step writes into data tables, in its own commit (``model/pipes.py``)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Unknown keys of the file form, kept so ``to_dict`` round-trips them."""

    @classmethod
    def from_dict(cls, data: Any, *, key: str | None = None) -> Step:
        """Parse one step.

        Raises:
            ValueError: a field cannot be parsed; the message names every such field
                (``Flow.from_dict`` instead reports each one with its full path).
        """
        step, issues = cls.parse(data, key=key)
        _raise_issues(issues)
        return step

    @classmethod
    def parse(
        cls, data: Any, *, key: str | None = None, path: str = ""
    ) -> tuple[Step, list[ValidationIssue]]:
        """Parse one step leniently: every field that cannot be parsed (a ``timeout`` that is
        not a duration; a ``config``, ``input``, ``retry``, ``transitions`` or
        ``transitions.ports`` that is not an object; a non-string ``id``) becomes one issue
        at ``<path>.<field>`` and is left at its default; parsing goes on.

        Args:
            data: the step's JSON shape.
            key: the step's key in ``steps`` (the id when ``data`` has none).
            path: prefix of the issue paths, e.g. ``"steps.charge"``.

        Returns:
            The step (a placeholder ``Step(id=key, type="")`` when ``data`` is not an
            object) and the issues, in field order; no issues means a faithful parse.
        """
        issues: list[ValidationIssue] = []
        if not isinstance(data, Mapping):
            issues.append(ValidationIssue(path, f"a step must be an object, got {_kind(data)}"))
            return cls(id=key or "", type=""), issues

        def bad(name: str, message: str) -> None:
            issues.append(ValidationIssue(_join(path, name), message))

        step_id = data.get("id", key)
        if step_id is None:
            step_id = ""
        elif not isinstance(step_id, str):
            bad("id", f"must be a string, got {step_id!r} (quote it in YAML)")
            step_id = key or ""
        config = data.get("config")
        if config is not None and not isinstance(config, Mapping):
            bad("config", f"must be an object, got {_kind(config)}")
            config = None
        raw_input = data.get("input")
        selector = InputSelector()
        if raw_input is not None:
            if isinstance(raw_input, Mapping):
                selector = InputSelector.from_dict(raw_input)
            else:
                bad(
                    "input",
                    f"must be an object like {{type: key, key: name}}, got {_kind(raw_input)}",
                )
        transitions = Transitions._parse(
            data.get("transitions"), _join(path, "transitions"), issues
        )
        raw_retry = data.get("retry")
        retry = None
        if raw_retry is not None:
            if isinstance(raw_retry, Mapping):
                retry = RetryPolicy.from_dict(raw_retry)
            else:
                bad("retry", f"must be an object like {{maxAttempts: 3}}, got {_kind(raw_retry)}")
        raw_timeout = data.get("timeout")
        timeout = None
        if raw_timeout is not None:
            try:
                timeout = parse_duration(raw_timeout, field="timeout")
            except ValueError as exc:
                bad("timeout", str(exc).removeprefix("timeout: "))
        step_type = data.get("type")
        if step_type is not None and not isinstance(step_type, str):
            # A list or object here would reach set and dict lookups by type.
            bad("type", f"must be a string (a handler or built-in type), got {_kind(step_type)}")
            step_type = None
        step = cls(
            id=step_id,
            type=step_type or "",
            config=dict(config or {}),
            input=selector,
            output_key=data.get("outputKey"),
            transitions=transitions,
            retry=retry,
            timeout=timeout,
            name=data.get("name"),
            description=data.get("description"),
            pipes=parse_pipes(data.get("pipes"), _join(path, "pipes"), issues),
            extra={k: v for k, v in data.items() if k not in _STEP_KEYS},
        )
        return step, issues

    def to_dict(self) -> dict[str, Any]:
        """Return the FlowMonkey JSON shape."""
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.name is not None:
            out["name"] = self.name
        if self.description is not None:
            out["description"] = self.description
        if self.config:
            out["config"] = dict(self.config)
        out["input"] = self.input.to_dict()
        if self.output_key is not None:
            out["outputKey"] = self.output_key
        out["transitions"] = self.transitions.to_dict()
        if self.retry is not None:
            out["retry"] = self.retry.to_dict()
        if self.timeout is not None:
            out["timeout"] = format_duration(self.timeout)
        if self.pipes:
            out["pipes"] = [pipe.to_dict() for pipe in self.pipes]
        out.update(self.extra)
        return out


_FLOW_KEYS = {"id", "version", "name", "description", "initialStepId", "steps", "retention"}

KEEP_FOREVER = timedelta.max
"""``Flow.retention`` of ``retention: forever``: never purge this flow's executions."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    """A versioned graph of steps. Executions pin the version they started with."""

    id: str
    version: str
    initial_step_id: str
    steps: Mapping[str, Step]
    name: str | None = None
    description: str | None = None
    retention: timedelta | None = None
    """``retention:`` how long finished executions of this flow are kept before the
    worker's retention pass purges them (``KEEP_FOREVER`` for ``forever``); ``None``
    follows ``EngineOptions.retention``."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Unknown keys (``tags``, ``visual``, ``status``...), kept for round-trips."""

    @property
    def key(self) -> str:
        """``"<id>@<version>"``."""
        return f"{self.id}@{self.version}"

    def step(self, step_id: str) -> Step | None:
        """Return the step with this id, or ``None``."""
        return self.steps.get(step_id)

    @classmethod
    def from_dict(cls, data: Any) -> Flow:
        """Parse the FlowMonkey shape (no validation beyond what parsing needs).

        Raises:
            FlowValidationError: the input cannot be parsed; every unparseable part is
                listed (see ``Flow.parse``).
        """
        flow, issues = cls.parse(data)
        if issues:
            flow_id = data.get("id") if isinstance(data, Mapping) else None
            raise FlowValidationError(flow_id if isinstance(flow_id, str) else None, issues)
        return flow

    @classmethod
    def parse(cls, data: Any) -> tuple[Flow, list[ValidationIssue]]:
        """Parse leniently: every part that cannot be parsed is one issue with its path
        (``version``, ``steps.a.timeout``, ``steps.a.transitions.ports``, ...) and is left
        at its default (a step that is not an object becomes a placeholder with an empty
        type); parsing goes on. ``Flow.from_dict`` raises with these issues; ``load_flow``
        also validates what did parse and reports both.

        ``id``, ``version`` and ``initialStepId`` must be strings: YAML reads an unquoted
        ``version: 1.10`` as the number ``1.1``, so numbers are reported, not converted.
        """
        if not isinstance(data, Mapping):
            issue = ValidationIssue("", "a flow definition must be an object")
            return cls(id="", version="", initial_step_id="", steps={}), [issue]
        issues: list[ValidationIssue] = []
        flow_id = _string(data, "id", issues)
        version = _string(data, "version", issues)
        initial_step_id = _string(data, "initialStepId", issues)
        raw_steps = data.get("steps")
        items: list[tuple[str, str, Any]] = []  # (key, issue path, raw step)
        if isinstance(raw_steps, Mapping):
            items = [(str(k), f"steps.{k}", v) for k, v in raw_steps.items()]
        elif isinstance(raw_steps, list):
            # Accept a list of steps (keyed by their ids) as a convenience.
            first_index: dict[str, int] = {}
            for i, raw in enumerate(raw_steps):
                step_id = raw.get("id") if isinstance(raw, Mapping) else None
                if isinstance(step_id, str) and step_id in first_index:
                    # Keyed by id, the later step would silently replace the earlier one.
                    issues.append(
                        ValidationIssue(
                            f"steps[{i}].id",
                            f'duplicate step id "{step_id}" (also steps[{first_index[step_id]}])',
                        )
                    )
                elif isinstance(step_id, str) and step_id:
                    first_index[step_id] = i
                    items.append((step_id, f"steps.{step_id}", raw))
                else:
                    issues.append(
                        ValidationIssue(f"steps[{i}]", 'a step in a list needs an "id" string')
                    )
        elif raw_steps is not None:
            issues.append(ValidationIssue("steps", "steps must be an object of id -> step"))
        retention = _retention(data.get("retention"), issues)
        steps: dict[str, Step] = {}
        for key, path, raw in items:
            steps[key], step_issues = Step.parse(raw, key=key, path=path)
            issues += step_issues
        flow = cls(
            id=flow_id,
            version=version,
            initial_step_id=initial_step_id,
            steps=steps,
            name=data.get("name"),
            description=data.get("description"),
            retention=retention,
            extra={k: v for k, v in data.items() if k not in _FLOW_KEYS},
        )
        return flow, issues

    def to_dict(self) -> dict[str, Any]:
        """Return the FlowMonkey JSON shape (``Flow.from_dict(f.to_dict()) == f``)."""
        out: dict[str, Any] = {"id": self.id, "version": self.version}
        if self.name is not None:
            out["name"] = self.name
        if self.description is not None:
            out["description"] = self.description
        out["initialStepId"] = self.initial_step_id
        if self.retention is not None:
            out["retention"] = (
                "forever" if self.retention == KEEP_FOREVER else format_duration(self.retention)
            )
        out["steps"] = {key: step.to_dict() for key, step in self.steps.items()}
        out.update(self.extra)
        return out


def _retention(value: Any, issues: list[ValidationIssue]) -> timedelta | None:
    """The flow's ``retention`` (a duration or ``forever``); an issue when it is neither."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "forever":
        return KEEP_FOREVER
    try:
        retention = parse_duration(value, field="retention")
    except ValueError as exc:
        issues.append(ValidationIssue("retention", str(exc).removeprefix("retention: ")))
        return None
    if retention <= timedelta(0):
        issues.append(ValidationIssue("retention", 'must be positive (or "forever")'))
        return None
    return retention


def _kind(value: Any) -> str:
    """``a list``, ``the string 'x'``, ``the number 3``... for messages."""
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _string(data: Mapping[str, Any], name: str, issues: list[ValidationIssue]) -> str:
    """A top-level string field; absent/null is ``""`` (validation says Required)."""
    value = data.get(name)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if name == "version" and isinstance(value, float):
        message = (
            f"must be a string, got the number {value!r}: YAML reads an unquoted 1.10 as "
            'the number 1.1, so quote it (version: "1.10"); semantic versions look like '
            '"1.0.0"'
        )
    elif name == "version" and isinstance(value, int) and not isinstance(value, bool):
        message = (
            f"must be a string, got the number {value!r}: quote it in YAML and use a semantic "
            f'version (version: "{value}.0.0")'
        )
    elif isinstance(value, int | float) and not isinstance(value, bool):
        message = (
            f'must be a string, got the number {value!r} (quote it in YAML: {name}: "{value}")'
        )
    else:
        message = f"must be a string, got {_kind(value)}"
    issues.append(ValidationIssue(name, message))
    return ""
