"""What a worker can run: the flows it has every handler for, and the runnable work it
must leave to others.

A worker claims only executions of ``engine.runnable_flows()`` (the claim query filters
by them), so an execution whose flow or handler this process lacks is never leased,
changed or failed here, and the claim loop cannot spin re-claiming it. The survey counts
the runnable executions nobody here can run (``Worker.unrunnable``, also on
``/healthz``) and logs a warning per flow version whenever that count changes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowmonkey.engine.engine import Engine

__all__ = ["Coverage"]

_MAX_LEFT = 10_000


class Coverage:
    """The survey of runnable work this worker cannot take (see the module docstring)."""

    def __init__(self, engine: Engine, log: logging.Logger, extra: Mapping[str, Any]) -> None:
        self.engine = engine
        self.log = log
        self.extra = extra
        self.unrunnable = 0
        """Runnable executions (at the last survey) whose flow or handlers this lacks."""
        self._reported: dict[tuple[str, str], int] = {}
        # Announced ids given back (their flow or a handler is missing here): giving one
        # back announces it again, so they are skipped until the next survey.
        self._left: set[str] = set()

    def gave_back(self, execution_id: str) -> None:
        """An execution announced by id could not be run here and was given back."""
        if len(self._left) < _MAX_LEFT:
            self._left.add(execution_id)

    def left(self, execution_id: str) -> bool:
        """True when this worker gave ``execution_id`` back since the last survey."""
        return execution_id in self._left

    async def survey(self) -> list[str]:
        """Pick up flows saved in the store since the last call, then count (and warn
        about) runnable executions this worker cannot run. Returns no ids (for
        ``run_every``)."""
        engine = self.engine
        self._left.clear()
        await engine.load_flows_from_store(strict=False)
        counts = await engine.store.runnable_by_flow(now=engine.clock.now())
        known = engine.runnable_flows()
        missing = {key: n for key, n in counts.items() if key not in known}
        self.unrunnable = sum(missing.values())
        for key, count in sorted(missing.items()):
            if self._reported.get(key) == count:
                continue
            flow_id, version = key
            self.log.warning(
                "%d runnable execution(s) of flow %s@%s left for another worker: %s",
                count, flow_id, version, self._why(flow_id, version),
                extra={**self.extra, "flow_id": flow_id, "flow_version": version,
                       "count": count},
            )  # fmt: skip
        self._reported = missing
        return []

    def _why(self, flow_id: str, version: str) -> str:
        flow = self.engine.flows.get(flow_id, version)
        if flow is None:
            return "this worker does not have the flow (not registered, not in the store)"
        from flowmonkey.engine.lookup import missing_handlers

        missing = missing_handlers(self.engine.runtime, flow)
        return "this worker has no handler for " + ", ".join(f'"{t}"' for t in missing)
