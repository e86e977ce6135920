"""The CLI against a remote server (``--server URL`` / ``FLOWMONKEY_SERVER``).

``RemoteEngine`` offers the part of ``Engine`` that ``status``, ``list``, ``history``,
``events``, ``resume``, ``signal``, ``cancel``, ``retry`` and ``flows`` use, over
``flowmonkey.client.Client``, so those commands print the same output and exit with the
same codes as against a store. Resume, signal and retry wait (like the local engine,
which runs the next steps in the call) until the execution stops being
pending/running, up to ``SETTLE_TIMEOUT`` seconds.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flowmonkey.cli.errors import CliError
from flowmonkey.client import Client
from flowmonkey.clock import SystemClock
from flowmonkey.engine.results import CancelResult, RunResult
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.model.flow import Flow
from flowmonkey.stores.base import Page, StoredFlow

__all__ = ["SETTLE_TIMEOUT", "RemoteEngine"]

SETTLE_TIMEOUT = 60.0
_UNSETTLED = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RUNNING})


class _RemoteFlows:
    """``engine.store``'s flow reads, answered by the server."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._versions: dict[str, list[str]] = {}

    async def list_flows(self) -> builtins.list[StoredFlow]:
        out = []
        for item in await self._client.flows():
            self._versions[item["id"]] = list(item["versions"])
            definition = await self._client.get_flow(item["id"], item["latest"])
            saved = item.get("saved_at")
            at = datetime.fromisoformat(saved) if saved else datetime.min.replace(tzinfo=UTC)
            out.append(
                StoredFlow(
                    flow_id=item["id"], version=item["latest"], definition=definition,
                    created_at=at,
                )
            )  # fmt: skip
        return out

    async def flow_versions(self, flow_id: str) -> builtins.list[str]:
        return self._versions.get(flow_id, [])


class RemoteEngine:
    """See the module docstring."""

    remote = True

    def __init__(self, client: Client) -> None:
        self.client = client
        self.clock = SystemClock()
        self.store = _RemoteFlows(client)

    async def close(self) -> None:
        await self.client.close()

    def on(self, event_type: str, listener: Any) -> Callable[[], None]:
        """Progress lines are not streamed from a server: a no-op."""
        return lambda: None

    async def get(self, execution_id: str) -> Execution | None:
        return await self.client.get(execution_id)

    async def list(self, **query: Any) -> Page[Execution]:
        return await self.client.list(**query)

    async def events(self, execution_id: str, *, after: int = 0) -> builtins.list[Event]:
        return await self.client.events(execution_id, after=after)

    async def get_flow(self, flow_id: str, version: str | None = None) -> Flow:
        return Flow.from_dict(await self.client.get_flow(flow_id, version))

    async def cancel(
        self, execution_id: str, source: str = "user", reason: str | None = None
    ) -> CancelResult:
        return await self.client.cancel(execution_id, source=source, reason=reason)

    async def resume(self, execution_id: str, data: Any = None, *, token: str | None = None
                     ) -> RunResult:  # fmt: skip
        return await self._settled(await self.client.resume(execution_id, data, token=token))

    async def signal(
        self, execution_id: str, step_id: str, port: str | None = None, payload: Any = None
    ) -> RunResult:
        return await self._settled(
            await self.client.signal(execution_id, step_id, port=port, payload=payload)
        )

    async def retry(self, execution_id: str) -> RunResult:
        return await self._settled(await self.client.retry(execution_id))

    async def run(self, execution_id: str) -> RunResult:
        """Wait for the server to move it on (a due timer is the server's to apply)."""
        found = await self.client.get(execution_id)
        if found is None:
            raise CliError(f'execution "{execution_id}" disappeared', code="EXECUTION_NOT_FOUND")
        return await self._settled(RunResult.of(found), force=True)

    async def _settled(self, result: RunResult, *, force: bool = False) -> RunResult:
        execution = result.execution
        deadline = time.monotonic() + SETTLE_TIMEOUT
        pause = 0.01
        while (force or execution.status in _UNSETTLED) and time.monotonic() < deadline:
            force = False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
            found = await self.client.get(execution.id)
            if found is None:
                break
            execution = found
        return RunResult.of(execution)

    def __getattr__(self, name: str) -> Any:
        raise CliError(
            f"this command needs a store (--store), not a server (--server): {name}",
            code="NOT_REMOTE",
        )
