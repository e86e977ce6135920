"""``/api/v1/tasks``: user tasks (inbox), one task with its form, completing a task."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from flowmonkey.api.auth import Principal, check_visible, list_tenant, require
from flowmonkey.api.deps import check_id, json, not_found, state_of
from flowmonkey.api.paging import before_time, page_by_time
from flowmonkey.api.problems import Problem
from flowmonkey.api.routes_executions import execution_json
from flowmonkey.api.running import settle
from flowmonkey.api.schemas import CompleteTaskBody, ExecutionOut, TaskOut, TaskPage
from flowmonkey.model.records import Task
from flowmonkey.stores.base import TaskQuery

__all__ = ["router", "task_json"]

router = APIRouter(prefix="/api/v1", tags=["tasks"])


def task_json(task: Task) -> dict[str, Any]:
    """A task as JSON (times ISO 8601)."""
    return dataclasses.asdict(task)


@router.get("/tasks", response_model=TaskPage, summary="List user tasks (newest first)")
async def list_tasks(
    request: Request,
    principal: Annotated[Principal, Depends(require("read"))],
    status: Annotated[
        Literal["pending", "completed", "cancelled", "expired"] | None, Query()
    ] = "pending",
    assignee: Annotated[str | None, Query(max_length=200)] = None,
    role: Annotated[str | None, Query(max_length=200)] = None,
    tenant_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """A page of tasks by status (default ``pending``), assignee and role."""
    after = before_time(cursor, "tasks")
    found = await state_of(request).engine.store.list_tasks(
        TaskQuery(
            status=status,
            assignee=assignee,
            role=role,
            tenant_id=list_tenant(principal, tenant_id),
            limit=limit + 1,
            newest_first=True,
            after=after,
        )
    )
    tasks, next_cursor = page_by_time(found, limit, "tasks", lambda t: (t.created_at, t.id))
    return json({"items": [task_json(t) for t in tasks], "next_cursor": next_cursor})


async def _visible_task(request: Request, principal: Principal, task_id: str) -> Task:
    check_id(task_id, "task")
    task = await state_of(request).engine.store.get_task(task_id)
    missing = not_found("task", task_id)
    if task is None:
        raise missing
    check_visible(principal, task.tenant_id, missing)
    return task


@router.get("/tasks/{task_id}", response_model=TaskOut, summary="One task with its form")
async def get_task(
    task_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("read"))],
) -> Response:
    """The task; ``form`` is the JSON Schema its completion data must match."""
    return json(task_json(await _visible_task(request, principal, task_id)))


@router.post(
    "/tasks/{task_id}/complete",
    response_model=ExecutionOut,
    summary="Complete a pending task",
)
async def complete_task(
    task_id: str,
    body: CompleteTaskBody,
    request: Request,
    principal: Annotated[Principal, Depends(require("write"))],
) -> Response:
    """Validate ``data`` against the form (422 per field), continue the execution
    (409 when the task is not pending)."""
    await _visible_task(request, principal, task_id)
    state = state_of(request)
    try:
        result = await state.engine.complete_task(
            task_id, body.port, body.data, principal.key_id, run_next=False
        )
    except ValueError as exc:
        raise Problem(422, str(exc), code="INVALID_INPUT")
    execution = await settle(state, result.execution, 0)
    return json(execution_json(execution))
