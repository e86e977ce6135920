"""The ``webhook`` wait: callback_url while waiting, resume by token, timeout, announcement."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson

from flowmonkey import FlowBuilder
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine
from .servers import Served

BASE = "https://flows.example.com"


def webhook_flow(config: dict[str, Any] | None = None, **step: Any) -> Any:
    return (
        FlowBuilder("f")
        .step("hook", "webhook", config=config or {}, output_key="reply", **step)
        .step(
            "after",
            "set",
            config={"values": {"got": "${context.reply}"}},
            output_key="after",
            on_success=None,
        )
        .step("late", "set", config={"values": {"late": True}}, output_key="late", on_success=None)
        .build()
    )


def token_of(url: str) -> str:
    assert url.startswith(BASE + "/api/v1/resume/")
    return url.rsplit("/", 1)[1]


async def test_callback_url_then_resume_with_the_token(make: MakeEngine) -> None:
    engine = make([webhook_flow()], base_url=BASE + "/")
    async with engine:
        waiting = await engine.start("f", {})
        assert waiting.status is ExecutionStatus.WAITING
        url = waiting.context["reply"]["callback_url"]
        token = token_of(url)
        done = await engine.resume(waiting.execution.id, {"approved": True}, token=token)
        assert done.status is ExecutionStatus.COMPLETED, done.error
        assert done.context["reply"] == {"approved": True}  # the callback replaced it
        assert done.context["after"] == {"got": {"approved": True}}


async def test_resume_by_token_alone(make: MakeEngine) -> None:
    engine = make([webhook_flow()], base_url=BASE)
    async with engine:
        waiting = await engine.start("f", {})
        token = token_of(waiting.context["reply"]["callback_url"])
        done = await engine.resume_by_token(token, {"n": 1})
        assert done.status is ExecutionStatus.COMPLETED


async def test_timeout_follows_on_timeout(make: MakeEngine) -> None:
    clock = FakeClock()
    engine = make([webhook_flow({"timeout": "1h"}, on_timeout="late")], base_url=BASE, clock=clock)
    async with engine:
        waiting = await engine.start("f", {})
        assert waiting.status is ExecutionStatus.WAITING
        clock.advance(timedelta(hours=1, seconds=1))
        await engine.tick_timers()
        await engine.run_until_idle()
        final = await engine.get(waiting.execution.id)
        assert final is not None
        assert final.status is ExecutionStatus.COMPLETED
        assert final.context["late"] == {"late": True}


async def test_timeout_without_on_timeout_fails(make: MakeEngine) -> None:
    clock = FakeClock()
    engine = make([webhook_flow({"timeout": "10m"})], base_url=BASE, clock=clock)
    async with engine:
        waiting = await engine.start("f", {})
        clock.advance(timedelta(minutes=11))
        await engine.tick_timers()
        await engine.run_until_idle()
        final = await engine.get(waiting.execution.id)
        assert final is not None and final.status is ExecutionStatus.FAILED
        assert final.last_error is not None and final.last_error.code == "TIMEOUT"


async def test_announces_the_callback_url(make: MakeEngine, server: Served) -> None:
    config = {
        "url": server.url("/echo"),
        "headers": {"X-Id": "${context.id}"},
        "json": {"order": "${context.id}"},
    }
    engine = make([webhook_flow(config)], base_url=BASE)
    async with engine:
        waiting = await engine.start("f", {"id": "A-1"})
        assert waiting.status is ExecutionStatus.WAITING, waiting.error
    seen = server.app.requests[-1]
    assert seen["method"] == "POST"
    assert seen["headers"]["x-id"] == "A-1"
    body = orjson.loads(seen["body"])
    assert body["callback_url"] == waiting.context["reply"]["callback_url"]
    assert body["order"] == "A-1"
    assert body["step_id"] == "hook"


async def test_announcement_failures_fail_the_step(make: MakeEngine, server: Served) -> None:
    engine = make([webhook_flow({"url": server.url("/status/500")})], base_url=BASE)
    async with engine:
        result = await engine.start("f", {})
        assert result.error.code == "HTTP_STATUS"
    blocked = make([webhook_flow({"url": server.url("/echo")})], base_url=BASE, http_allow=())
    async with blocked:
        result = await blocked.start("f", {})
        assert result.error.code == "HTTP_BLOCKED"


async def test_no_base_url_is_a_clear_error(make: MakeEngine) -> None:
    engine = make([webhook_flow()])
    async with engine:
        result = await engine.start("f", {})
        assert result.error.code == "WEBHOOK_NO_BASE_URL"


async def test_ends_the_flow_without_on_success(make: MakeEngine) -> None:
    flow = FlowBuilder("g").step("hook", "webhook", output_key="reply", on_success=None).build()
    engine = make([flow], base_url=BASE)
    async with engine:
        waiting = await engine.start("g", {})
        token = token_of(waiting.context["reply"]["callback_url"])
        done = await engine.resume_by_token(token, {"ok": 1})
        assert done.status is ExecutionStatus.COMPLETED
        assert done.context["reply"] == {"ok": 1}
