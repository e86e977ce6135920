"""``flowmonkey.client``: a typed async client of the flowmonkey HTTP API (httpx).

It answers with the engine's own types (``Execution``, ``Event``, ``StepRecord``,
``Page``, ``RunResult``, ``CancelResult``) and raises the engine's errors where the
server names one (``ExecutionNotFound``, ``ExecutionNotWaiting``, ``InvalidSignal``,
``ExecutionNotFailed``, ...); anything else is an ``ApiError`` carrying the problem.

    async with Client("http://127.0.0.1:8080", api_key="fmk_...") as client:
        execution = await client.start("order", {"id": 7}, wait=5)
"""

from __future__ import annotations

import builtins
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import httpx
import orjson

from flowmonkey import errors
from flowmonkey.engine.results import CancelResult, RunResult
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus, StepRecord
from flowmonkey.stores.base import Page

__all__ = ["ApiError", "Client"]


class ApiError(errors.FlowMonkeyError):
    """An error answer without an engine error of its own (401, 403, 413, 429, ...)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.errors: list[dict[str, str]] = list(problem.get("errors") or [])
        detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        super().__init__(detail, code=str(problem.get("code") or f"HTTP_{status}"))


def _error(status: int, problem: dict[str, Any]) -> errors.FlowMonkeyError:
    """The engine error a problem stands for (the message is the server's)."""
    code = problem.get("code")
    detail = str(problem.get("detail") or "")
    simple: dict[str, type[errors.FlowMonkeyError]] = {
        "INVALID_SIGNAL": errors.InvalidSignal,
    }
    exc: errors.FlowMonkeyError
    if code == "EXECUTION_NOT_FOUND":
        exc = errors.ExecutionNotFound(_quoted(detail))
    elif code == "FLOW_NOT_FOUND":
        exc = errors.FlowNotFound(_quoted(detail))
    elif code == "TASK_NOT_FOUND":
        exc = errors.TaskNotFound(_quoted(detail))
    elif code == "EXECUTION_NOT_WAITING":
        exc = errors.ExecutionNotWaiting(_quoted(detail), _status_in(detail))
    elif code == "EXECUTION_TERMINAL":
        exc = errors.ExecutionTerminal(_quoted(detail), _status_in(detail))
    elif code == "EXECUTION_NOT_FAILED":
        exc = errors.ExecutionNotFailed(_quoted(detail), _status_in(detail))
    elif code == "RESUME_TOKEN_EXPIRED":
        exc = errors.ResumeTokenExpired()
    elif code == "INVALID_RESUME_TOKEN":
        exc = errors.InvalidResumeToken(detail)
    elif code in simple:
        exc = simple[code](detail)
    else:
        return ApiError(status, problem)
    exc.message = detail or exc.message
    exc.args = (exc.message,)
    return exc


def _quoted(detail: str) -> str:
    parts = detail.split('"')
    return parts[1] if len(parts) >= 3 else detail


def _status_in(detail: str) -> str:
    """The status an engine message names (``status: X`` / ``is already X``)."""
    match = re.search(r"(?:status: |is already )(\w+)", detail)
    return match.group(1) if match else "unknown"


def execution_from_json(data: dict[str, Any]) -> Execution:
    """Rebuild an ``Execution`` from its API JSON (``to_dict`` or a listing row)."""
    history = [StepRecord.from_dict(r) for r in data.get("history") or []]
    return Execution.from_header(data, context=data.get("context") or {}, history=history)


def event_from_json(data: dict[str, Any]) -> Event:
    """Rebuild an ``Event`` from its flattened JSON."""
    from datetime import datetime

    payload = {
        k: v for k, v in data.items() if k not in ("type", "timestamp", "sequence", "tenant_id")
    }
    return Event(
        data["type"],
        data.get("execution_id"),
        datetime.fromisoformat(data["timestamp"]),
        payload,
        int(data.get("sequence", 0)),
        data.get("tenant_id"),
    )


class Client:
    """Async client of one flowmonkey server. Use as ``async with``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 70.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        content = None if json is None else orjson.dumps(json)
        send_headers = dict(headers or {})
        if content is not None:
            send_headers["Content-Type"] = "application/json"
        try:
            response = await self._http.request(
                method, path, content=content, params=params, headers=send_headers
            )
        except httpx.HTTPError as exc:
            raise errors.StoreUnavailable(f"cannot reach the server: {exc}") from exc
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:200]}
            if not isinstance(problem, dict):
                problem = {"detail": str(problem)}
            raise _error(response.status_code, problem)
        return response

    # -- executions --------------------------------------------------------------------

    async def start(
        self,
        flow_id: str,
        input: Mapping[str, Any] | None = None,
        *,
        version: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        tenant_id: str | None = None,
        idempotency_key: str | None = None,
        wait: float = 0,
    ) -> Execution:
        """Start an execution; with ``wait``, its state after up to that many seconds."""
        body: dict[str, Any] = {"flow_id": flow_id, "wait": wait}
        for name, value in (
            ("version", version),
            ("input", input),
            ("metadata", metadata),
            ("correlation_id", correlation_id),
            ("tenant_id", tenant_id),
        ):
            if value is not None:
                body[name] = value
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self._call("POST", "/api/v1/executions", json=body, headers=headers)
        return execution_from_json(response.json())

    async def get(self, execution_id: str) -> Execution | None:
        """The execution, or ``None`` (as ``Engine.get``)."""
        try:
            response = await self._call("GET", f"/api/v1/executions/{execution_id}")
        except errors.ExecutionNotFound:
            return None
        return execution_from_json(response.json())

    async def list(
        self,
        *,
        status: ExecutionStatus | str | Iterable[ExecutionStatus | str] | None = None,
        flow_id: str | None = None,
        tenant_id: str | None = None,
        correlation_id: str | None = None,
        parent_execution_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Execution]:
        """A page of executions (no context or history), newest first."""
        params: builtins.list[tuple[str, str]] = [("limit", str(min(max(limit, 1), 500)))]
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            params += [("status", str(s)) for s in statuses]
        for name, value in (
            ("flow_id", flow_id),
            ("tenant_id", tenant_id),
            ("correlation_id", correlation_id),
            ("parent_execution_id", parent_execution_id),
            ("cursor", cursor),
        ):
            if value is not None:
                params.append((name, value))
        body = (await self._call("GET", "/api/v1/executions", params=params)).json()
        return Page(
            items=[execution_from_json(e) for e in body["items"]],
            next_cursor=body.get("next_cursor"),
        )

    async def history(self, execution_id: str) -> builtins.list[StepRecord]:
        """The step records of an execution."""
        body = (await self._call("GET", f"/api/v1/executions/{execution_id}/history")).json()
        return [StepRecord.from_dict(r) for r in body["items"]]

    async def events(self, execution_id: str, *, after: int = 0) -> builtins.list[Event]:
        """The persisted events with ``sequence > after``."""
        response = await self._call(
            "GET", f"/api/v1/executions/{execution_id}/events", params={"after": after}
        )
        return [event_from_json(e) for e in response.json()["items"]]

    async def stream_events(self, execution_id: str, *, after: int = 0) -> AsyncIterator[Event]:
        """Live events (SSE) from ``after`` on; ends after the terminal event."""
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after)}
        url = f"/api/v1/executions/{execution_id}/events"
        async with self._http.stream("GET", url, headers=headers, timeout=None) as response:
            if response.status_code >= 400:
                await response.aread()
                raise _error(response.status_code, response.json())
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    yield event_from_json(orjson.loads(line[6:]))

    async def resume(
        self, execution_id: str, data: Any = None, *, token: str | None = None
    ) -> RunResult:
        """Resume a waiting execution (its steps go on on the server)."""
        body: dict[str, Any] = {"data": data}
        if token is not None:
            body["token"] = token
        url = f"/api/v1/executions/{execution_id}/resume"
        return RunResult.of(execution_from_json((await self._call("POST", url, json=body)).json()))

    async def resume_by_token(self, token: str, data: Any = None) -> dict[str, Any]:
        """Resume by a resume token: ``{"execution_id", "status"}``."""
        response = await self._call("POST", f"/api/v1/resume/{token}", json={"data": data})
        result: dict[str, Any] = response.json()
        return result

    async def signal(
        self, execution_id: str, step_id: str, port: str | None = None, payload: Any = None
    ) -> RunResult:
        """Signal the step the execution waits at."""
        body = {"step_id": step_id, "port": port, "payload": payload}
        url = f"/api/v1/executions/{execution_id}/signal"
        return RunResult.of(execution_from_json((await self._call("POST", url, json=body)).json()))

    async def cancel(
        self, execution_id: str, source: str = "user", reason: str | None = None
    ) -> CancelResult:
        """Cancel; an already finished execution gives ``cancelled=False`` (as the engine)."""
        url = f"/api/v1/executions/{execution_id}/cancel"
        try:
            body = (await self._call("POST", url, json={"reason": reason})).json()
        except errors.ExecutionTerminal as exc:
            found = await self.get(execution_id)
            return CancelResult(
                cancelled=False,
                execution=found,
                previous_status=found.status if found else None,
                error=f"execution is already {exc.status}",
            )
        execution = execution_from_json(body["execution"])
        return CancelResult(cancelled=True, execution=execution)

    async def retry(self, execution_id: str) -> RunResult:
        """Retry a failed execution from its failed step."""
        url = f"/api/v1/executions/{execution_id}/retry"
        return RunResult.of(execution_from_json((await self._call("POST", url)).json()))

    async def bulk(
        self,
        action: str,
        *,
        ids: Iterable[str] | None = None,
        filter: Mapping[str, Any] | None = None,
        reason: str | None = None,
        dry_run: bool = False,
        tenant_id: str | None = None,
    ) -> dict[str, Any]:
        """Cancel or retry many executions: ``{"matched", "succeeded", "failed"}``."""
        body: dict[str, Any] = {"action": action, "dry_run": dry_run}
        if tenant_id is not None:
            body["tenant_id"] = tenant_id
        if ids is not None:
            body["ids"] = list(ids)
        if filter is not None:
            body["filter"] = dict(filter)
        if reason is not None:
            body["reason"] = reason
        result: dict[str, Any] = (
            await self._call("POST", "/api/v1/executions/bulk", json=body)
        ).json()
        return result

    # -- flows and tasks ---------------------------------------------------------------

    async def flows(self) -> builtins.list[dict[str, Any]]:
        """``[{"id", "versions", "latest"}]``."""
        items: builtins.list[dict[str, Any]] = (await self._call("GET", "/api/v1/flows")).json()[
            "items"
        ]
        return items

    async def get_flow(self, flow_id: str, version: str | None = None) -> dict[str, Any]:
        """A flow definition (file shape)."""
        params = {"version": version} if version else None
        flow: dict[str, Any] = (
            await self._call("GET", f"/api/v1/flows/{flow_id}", params=params)
        ).json()
        return flow

    async def save_flow(self, definition: Mapping[str, Any]) -> bool:
        """Save a definition (admin); ``False`` when that version was already identical."""
        response = await self._call("POST", "/api/v1/flows", json=dict(definition))
        return response.status_code == 201

    async def tasks(self, *, status: str = "pending", limit: int = 50) -> builtins.list[Any]:
        """Tasks as JSON objects."""
        params = {"status": status, "limit": limit}
        items: builtins.list[Any] = (
            await self._call("GET", "/api/v1/tasks", params=params)
        ).json()["items"]
        return items

    async def complete_task(self, task_id: str, data: Any, port: str | None = None) -> Execution:
        """Complete a pending task."""
        url = f"/api/v1/tasks/{task_id}/complete"
        body = {"data": data, "port": port}
        return execution_from_json((await self._call("POST", url, json=body)).json())
