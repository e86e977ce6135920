"""Tokens, tasks and flow versions of ``MemoryStore`` (a mixin: the store owns the
dicts and the indexes)."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson

from flowmonkey import errors
from flowmonkey.model.records import ResumeTokenRecord, Task
from flowmonkey.stores.base import StoredFlow, TaskQuery
from flowmonkey.stores.memory_index import Indexes
from flowmonkey.versions import semver_key

__all__ = ["MemoryRecords"]


class MemoryRecords:
    """Resume tokens, tasks and flows of ``MemoryStore``."""

    _tokens: dict[str, ResumeTokenRecord]
    _tasks: dict[str, Task]
    _flows: dict[tuple[str, str], StoredFlow]
    _index: Indexes

    async def get_resume_token(self, token_hash: str) -> ResumeTokenRecord | None:
        """Look up a token by hash."""
        record = self._tokens.get(token_hash)
        return replace(record) if record is not None else None

    async def get_task(self, task_id: str) -> Task | None:
        """One task."""
        task = self._tasks.get(task_id)
        return replace(task, metadata=dict(task.metadata)) if task is not None else None

    async def list_tasks(self, query: TaskQuery) -> builtins.list[Task]:
        """Tasks matching the query, oldest (or newest) first."""
        out = []
        if query.execution_id is not None:  # the tasks of one execution, by its index
            found = self._index.tasks_of.get(query.execution_id, ())
            tasks: Iterable[Task] = [self._tasks[i] for i in found]
        else:
            tasks = self._tasks.values()
        for task in tasks:
            if query.status is not None and task.status != query.status:
                continue
            if query.assignee is not None and task.assignee != query.assignee:
                continue
            if query.role is not None and task.role != query.role:
                continue
            if query.tenant_id is not None and task.tenant_id != query.tenant_id:
                continue
            if query.execution_id is not None and task.execution_id != query.execution_id:
                continue
            if query.after is not None and (
                (task.created_at, task.id) >= query.after
                if query.newest_first
                else (task.created_at, task.id) <= query.after
            ):
                continue
            out.append(task)
        out.sort(key=lambda t: (t.created_at, t.id), reverse=query.newest_first)
        return [replace(t, metadata=dict(t.metadata)) for t in out[: query.limit]]

    # -- flows --------------------------------------------------------------------------

    async def save_flow(self, definition: dict[str, Any], *, now: datetime) -> bool:
        """Store one immutable flow version."""
        flow_id, version = str(definition.get("id")), str(definition.get("version"))
        frozen = orjson.loads(orjson.dumps(definition))
        existing = self._flows.get((flow_id, version))
        if existing is not None:
            if existing.definition == frozen:
                return False
            raise errors.FlowValidationError(
                flow_id,
                [
                    errors.ValidationIssue(
                        "version",
                        f"version {version} of flow {flow_id} is already stored with a different "
                        "definition; versions are immutable, publish a new version",
                    )
                ],
            )
        self._flows[(flow_id, version)] = StoredFlow(
            flow_id=flow_id, version=version, definition=frozen, created_at=now
        )
        return True

    async def get_flow(self, flow_id: str, version: str | None = None) -> StoredFlow | None:
        """One version, or the latest by semver."""
        if version is not None:
            return self._flows.get((flow_id, version))
        versions = [v for (f, v) in self._flows if f == flow_id]
        if not versions:
            return None
        return self._flows[(flow_id, max(versions, key=semver_key))]

    async def list_flows(self) -> builtins.list[StoredFlow]:
        """Latest version of each flow, by id."""
        out = []
        for flow_id in sorted({f for f, _ in self._flows}):
            latest = await self.get_flow(flow_id)
            assert latest is not None
            out.append(latest)
        return out

    async def flow_versions(self, flow_id: str) -> builtins.list[str]:
        """Versions newest first."""
        return sorted((v for f, v in self._flows if f == flow_id), key=semver_key, reverse=True)
