"""Flow definitions as pure data: ``Flow``, ``Step``, selectors, transitions, retry policy.

The JSON/YAML shape is FlowMonkey's (camelCase); Python attributes are snake_case.
``Flow.from_dict`` only parses; validation lives in ``flowmonkey.definitions.validate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flowmonkey.durations import format_duration, parse_duration
from flowmonkey.errors import FlowValidationError, ValidationIssue

__all__ = [
    "SELECTOR_TYPES",
    "Flow",
    "InputSelector",
    "RetryPolicy",
    "Step",
    "Transitions",
]

SELECTOR_TYPES = ("key", "keys", "path", "template", "full", "static")

_MISSING: Any = object()


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
        """Parse ``{"type": ..., ...}``; unknown shapes are kept for validation to report."""
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
        """Parse ``{"onSuccess": ..., "ports": {...}}`` (absent means ``{}``)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError("transitions must be an object")
        ports = data.get("ports") or {}
        if not isinstance(ports, Mapping):
            raise ValueError("transitions.ports must be an object of port -> step id")
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
        """Parse the FlowMonkey ``retry`` object (values are checked by validation)."""
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
        return float(
            min(self.backoff_ms * self.backoff_multiplier**retry_index, self.max_backoff_ms)
        )


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
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Unknown keys of the file form, kept so ``to_dict`` round-trips them."""

    @classmethod
    def from_dict(cls, data: Any, *, key: str | None = None) -> Step:
        """Parse one step; raises ``ValueError`` with a message naming the field."""
        if not isinstance(data, Mapping):
            raise ValueError("a step must be an object")
        timeout = data.get("timeout")
        retry = data.get("retry")
        config = data.get("config")
        if config is not None and not isinstance(config, Mapping):
            raise ValueError("config must be an object")
        return cls(
            id=data.get("id", key) if data.get("id", key) is not None else "",
            type=data.get("type") or "",
            config=dict(config or {}),
            input=InputSelector.from_dict(data["input"]) if "input" in data else InputSelector(),
            output_key=data.get("outputKey"),
            transitions=Transitions.from_dict(data.get("transitions")),
            retry=RetryPolicy.from_dict(retry) if retry is not None else None,
            timeout=parse_duration(timeout, field="timeout") if timeout is not None else None,
            name=data.get("name"),
            description=data.get("description"),
            extra={k: v for k, v in data.items() if k not in _STEP_KEYS},
        )

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
        out.update(self.extra)
        return out


_FLOW_KEYS = {"id", "version", "name", "description", "initialStepId", "steps"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    """A versioned graph of steps. Executions pin the version they started with."""

    id: str
    version: str
    initial_step_id: str
    steps: Mapping[str, Step]
    name: str | None = None
    description: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Unknown keys (``tags``, ``visual``, ``status``...), kept for round-trips."""

    @property
    def key(self) -> str:
        """``"<id>@<version>"``."""
        return f"{self.id}@{self.version}"

    def validate(self, *, handler_types: Any = None) -> list[ValidationIssue]:
        """Every problem of this flow (errors and warnings); see ``validate_flow``."""
        from flowmonkey.definitions.validate import validate_flow

        return validate_flow(self, handler_types=handler_types)

    def step(self, step_id: str) -> Step | None:
        """Return the step with this id, or ``None``."""
        return self.steps.get(step_id)

    @classmethod
    def from_dict(cls, data: Any) -> Flow:
        """Parse the FlowMonkey shape (no validation beyond what parsing needs).

        Raises:
            FlowValidationError: the input cannot be parsed at all; every unparseable
                part is listed.
        """
        if not isinstance(data, Mapping):
            raise FlowValidationError(
                None, [ValidationIssue("", "a flow definition must be an object")]
            )
        issues: list[ValidationIssue] = []
        raw_steps = data.get("steps")
        steps: dict[str, Step] = {}
        if isinstance(raw_steps, Mapping):
            items = list(raw_steps.items())
        elif isinstance(raw_steps, list):
            # Accept a list of steps (keyed by their ids) as a convenience.
            items = [(s.get("id", "") if isinstance(s, Mapping) else "", s) for s in raw_steps]
        elif raw_steps is None:
            items = []
        else:
            items = []
            issues.append(ValidationIssue("steps", "steps must be an object of id -> step"))
        for key, raw in items:
            try:
                steps[str(key)] = Step.from_dict(raw, key=str(key))
            except ValueError as exc:
                issues.append(ValidationIssue(f"steps.{key}", str(exc)))
        version = data.get("version", "")
        if issues:
            raise FlowValidationError(data.get("id"), issues)
        return cls(
            id=str(data.get("id") or ""),
            version=str(version) if version is not None else "",
            initial_step_id=str(data.get("initialStepId") or ""),
            steps=steps,
            name=data.get("name"),
            description=data.get("description"),
            extra={k: v for k, v in data.items() if k not in _FLOW_KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the FlowMonkey JSON shape (``Flow.from_dict(f.to_dict()) == f``)."""
        out: dict[str, Any] = {"id": self.id, "version": self.version}
        if self.name is not None:
            out["name"] = self.name
        if self.description is not None:
            out["description"] = self.description
        out["initialStepId"] = self.initial_step_id
        out["steps"] = {key: step.to_dict() for key, step in self.steps.items()}
        out.update(self.extra)
        return out
