"""``FlowRegistry``: validated flow definitions by id and version ("latest" = highest semver)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Protocol, TypeAlias, runtime_checkable

from flowmonkey import versions
from flowmonkey.definitions.validate import raise_for_issues, validate_flow
from flowmonkey.errors import FlowValidationError, ValidationIssue
from flowmonkey.model.flow import Flow

__all__ = ["FlowRegistry", "HandlerTypes", "HasHandlerTypes", "handler_type_names"]


@runtime_checkable
class HasHandlerTypes(Protocol):
    """Anything that can list its handler types (e.g. a ``HandlerRegistry``)."""

    def types(self) -> Iterable[str]:
        """The registered handler type names."""
        ...


HandlerTypes: TypeAlias = HasHandlerTypes | Collection[str]
"""A handler registry (anything with ``types()``) or a collection of type names."""


def handler_type_names(handlers: HandlerTypes | None) -> frozenset[str] | None:
    """Normalise ``handlers`` to a set of type names (``None`` stays ``None``)."""
    if handlers is None:
        return None
    if isinstance(handlers, HasHandlerTypes):
        return frozenset(handlers.types())
    if isinstance(handlers, str):
        return frozenset({handlers})
    return frozenset(handlers)


class FlowRegistry:
    """Flow definitions by id and version.

    ``register`` validates fully; ``get(flow_id)`` returns the highest semver version
    (``10.0.0`` beats ``9.0.0``; a pre-release sorts before its release).

    Args:
        flows: flows to register right away.
        handlers: when given (a handler registry or type names), ``register`` also rejects
            steps whose handler type is unknown. A handler registry is read at each
            ``register`` call, so handlers added later count.
    """

    def __init__(self, flows: Iterable[Flow] = (), *, handlers: HandlerTypes | None = None) -> None:
        self._flows: dict[str, dict[str, Flow]] = {}
        self._latest: dict[str, Flow] = {}
        """Latest version per flow id: ``get(id)`` runs on every create."""
        self._handlers = handlers
        self.on_register: list[Callable[[Flow], None]] = []
        """Callbacks called with each newly registered flow (not for no-op re-registers)."""
        for flow in flows:
            self.register(flow)

    def register(self, flow: Flow, *, handlers: HandlerTypes | None = None) -> Flow:
        """Validate and add ``flow``; return it.

        Re-registering an identical ``id@version`` is a no-op.

        Raises:
            FlowValidationError: the flow has errors (all issues are in ``.issues``), or
                ``id@version`` is already registered with a different definition (an
                issue on ``version``).
        """
        issues = self.validate(flow, handlers=handlers if handlers is not None else self._handlers)
        raise_for_issues(flow.id, issues)
        existing = self._flows.get(flow.id, {}).get(flow.version)
        if existing is not None:
            if existing == flow:
                return existing
            raise FlowValidationError(
                flow.id,
                [
                    ValidationIssue(
                        "version",
                        f'Flow "{flow.key}" is already registered with a different '
                        "definition; bump the version",
                    )
                ],
            )
        by_version = self._flows.setdefault(flow.id, {})
        by_version[flow.version] = flow
        newest = versions.latest(by_version)
        if newest is not None:
            self._latest[flow.id] = by_version[newest]
        for callback in list(self.on_register):
            callback(flow)
        return flow

    def validate(self, flow: Flow, handlers: HandlerTypes | None = None) -> list[ValidationIssue]:
        """Every issue of ``flow`` without registering it; ``handlers`` (a registry with
        ``types()`` or type names) also checks handler types."""
        return validate_flow(flow, handler_types=handler_type_names(handlers))

    def get(self, flow_id: str, version: str | None = None) -> Flow | None:
        """The flow with this id and version, or its latest version; ``None`` if unknown."""
        if version is None:
            return self._latest.get(flow_id)
        by_version = self._flows.get(flow_id)
        if not by_version:
            return None
        return by_version.get(version)

    def has(self, flow_id: str, version: str | None = None) -> bool:
        """True when the flow (or that version of it) is registered."""
        return self.get(flow_id, version) is not None

    def flow_ids(self) -> list[str]:
        """Registered flow ids, in registration order."""
        return list(self._flows)

    def versions(self, flow_id: str) -> list[str]:
        """Registered versions of ``flow_id``, newest first (``[]`` if unknown)."""
        return versions.sort_versions(self._flows.get(flow_id, {}))

    def flows(self) -> list[Flow]:
        """Every registered flow: ids in registration order, versions newest first."""
        return [self._flows[fid][v] for fid in self._flows for v in self.versions(fid)]

    def __contains__(self, item: object) -> bool:
        """``"flow-id" in registry``, or ``flow in registry`` for that exact ``id@version``."""
        if isinstance(item, Flow):
            return self._flows.get(item.id, {}).get(item.version) == item
        return isinstance(item, str) and item in self._flows

    def __len__(self) -> int:
        """The number of registered ``id@version`` definitions."""
        return sum(len(v) for v in self._flows.values())

    def __iter__(self) -> Iterator[Flow]:
        """Iterate over :meth:`flows`."""
        return iter(self.flows())

    def __repr__(self) -> str:
        return f"FlowRegistry({', '.join(f.key for f in self.flows())})"
