"""``GET /api/v1/executions/{id}/events``: the event log, as JSON or a live SSE stream.

The stream sends every stored event after ``Last-Event-ID`` (or ``?after=``), then new
ones as they are committed, by this process or any other: it re-reads the store when
this process's engine emits an event for the execution and, for writers elsewhere (a
separate worker), at least every ``event_poll_interval`` seconds. It ends after the
execution's terminal event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import Response, StreamingResponse

from flowmonkey.api.auth import Principal, require
from flowmonkey.api.deps import json, state_of, visible_execution
from flowmonkey.api.problems import Problem
from flowmonkey.api.schemas import EventsOut
from flowmonkey.model.events import Event

__all__ = ["router", "stream_events"]

router = APIRouter(prefix="/api/v1", tags=["executions"])

TERMINAL_EVENTS = frozenset({"execution.completed", "execution.failed", "execution.cancelled"})
_KEEPALIVE = 15.0
"""Seconds between SSE comments on a quiet stream (keeps proxies from closing it)."""


def _sse(event: Event) -> bytes:
    data = orjson.dumps(event.to_dict())
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.sequence, event.type.encode(), data)


def _after(last_event_id: str | None, after: int) -> int:
    if last_event_id is None:
        return after
    try:
        value = int(last_event_id.strip())
    except ValueError:
        raise Problem(400, "Last-Event-ID must be an event sequence number.", code="BAD_REQUEST")
    if value < 0:
        raise Problem(400, "Last-Event-ID must be >= 0.", code="BAD_REQUEST")
    return value


@router.get(
    "/executions/{execution_id}/events",
    response_model=EventsOut,
    summary="Event log (JSON) or live stream (Accept: text/event-stream)",
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def get_events(
    execution_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("read"))],
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    accept: Annotated[str | None, Header()] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    """Events with ``sequence > after``, in order."""
    state = state_of(request)
    execution = await visible_execution(state, principal, execution_id, history=False)
    if accept is None or "text/event-stream" not in accept:
        events = await state.engine.events(execution_id, after=after)
        return json({"items": [e.to_dict() for e in events]})
    start = _after(last_event_id, after)
    ended = execution.status.is_terminal
    return StreamingResponse(
        _stream(request, execution_id, start, ended),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    request: Request, execution_id: str, after: int, ended: bool
) -> AsyncIterator[bytes]:
    state = state_of(request)
    engine = state.engine
    poke = asyncio.Event()

    def on_event(event: Event) -> None:
        if event.execution_id == execution_id:
            poke.set()

    unsubscribe = engine.on("*", on_event)
    waiters = state.event_waiters.setdefault(execution_id, set())
    waiters.add(poke)
    quiet = 0.0
    try:
        while True:
            poke.clear()
            events = await engine.events(execution_id, after=after)
            for event in events:
                after = event.sequence
                yield _sse(event)
                if event.type in TERMINAL_EVENTS:
                    return
            if ended and not events:
                return  # terminal before we started and nothing after the given id
            if state.stopping.is_set():  # a disconnect cancels this generator
                return
            interval = state.settings.event_poll_interval
            try:
                async with asyncio.timeout(interval):  # wait_for could eat a disconnect
                    await poke.wait()
                quiet = 0.0
            except TimeoutError:
                quiet += interval
                if quiet >= _KEEPALIVE:
                    quiet = 0.0
                    yield b": keep-alive\n\n"
    finally:
        unsubscribe()
        waiters.discard(poke)
        if not waiters:
            state.event_waiters.pop(execution_id, None)


stream_events = _stream
"""The live SSE body of one execution's events (the dashboard streams it too)."""
