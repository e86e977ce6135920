"""The ``http`` handler against a real local server (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from flowmonkey import FlowBuilder
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine
from .servers import Served


def http_flow(config: dict[str, Any], *, flow_id: str = "f", **step: Any) -> Any:
    step.setdefault("output_key", "resp")
    return FlowBuilder(flow_id).step("call", "http", config=config, **step).build()


ENGINE_OPTIONS = ("http_allow", "http_resolver", "base_url", "secrets")


async def run_one(make: MakeEngine, config: dict[str, Any], context: Any = None, **kw: Any) -> Any:
    """Run a one-step http flow; engine options and step fields may both be given."""
    options = {k: kw.pop(k) for k in ENGINE_OPTIONS if k in kw}
    engine = make([http_flow(config, **kw)], **options)
    async with engine:
        return await engine.start("f", context or {})


async def test_get_json_is_parsed(make: MakeEngine, server: Served) -> None:
    result = await run_one(make, {"url": server.url("/json")})
    assert result.status is ExecutionStatus.COMPLETED
    resp = result.context["resp"]
    assert resp["status"] == 200
    assert resp["body"] == {"hello": "world", "items": [1, 2, 3]}
    assert resp["headers"]["content-type"] == "application/json"


async def test_text_body_is_decoded(make: MakeEngine, server: Served) -> None:
    result = await run_one(make, {"url": server.url("/text")})
    assert result.context["resp"]["body"] == "plain text é"


async def test_templates_in_url_headers_query_and_json(make: MakeEngine, server: Served) -> None:
    config = {
        "method": "post",
        "url": server.url("/echo/${context.order.id}"),
        "headers": {"X-Order": "${context.order.id}", "X-N": "${context.n}"},
        "query": {"q": "${context.order.id}", "many": ["a", "b"]},
        "json": {"order": "${context.order}", "note": "n=${context.n}"},
    }
    result = await run_one(make, config, {"order": {"id": "A-1", "qty": 2}, "n": 3})
    assert result.status is ExecutionStatus.COMPLETED, result.error
    seen = server.app.requests[-1]
    assert seen["path"] == "/echo/A-1"
    assert seen["method"] == "POST"
    assert seen["headers"]["x-order"] == "A-1"
    assert seen["headers"]["x-n"] == "3"
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["query"] == {"q": "A-1", "many": "b"}
    import orjson

    assert orjson.loads(seen["body"]) == {"order": {"id": "A-1", "qty": 2}, "note": "n=3"}


async def test_text_body_is_sent_as_is(make: MakeEngine, server: Served) -> None:
    result = await run_one(
        make, {"method": "PUT", "url": server.url("/echo"), "body": "raw ${context.x}"}, {"x": 1}
    )
    assert result.context["resp"]["body"]["body"] == "raw 1"  # not JSON-quoted


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(404, False), (400, False), (408, True), (429, True), (500, True), (503, True)],
)
async def test_status_errors_and_retryability(
    make: MakeEngine, server: Served, status: int, retryable: bool
) -> None:
    result = await run_one(make, {"url": server.url(f"/status/{status}")})
    assert result.status is ExecutionStatus.FAILED
    error = result.error
    assert error.code == "HTTP_STATUS"
    assert error.details["status"] == status
    assert error.details["body"] == '{"error": "nope"}'
    record = result.execution.history[-1]
    assert record.error.get("retryable", True) is retryable


async def test_expect_makes_a_status_a_success(make: MakeEngine, server: Served) -> None:
    result = await run_one(make, {"url": server.url("/status/404"), "expect": [200, 404]})
    assert result.status is ExecutionStatus.COMPLETED
    assert result.context["resp"]["status"] == 404
    # ... and 200 is no longer a success when it is not listed
    result = await run_one(make, {"url": server.url("/json"), "expect": [201]})
    assert result.error.code == "HTTP_STATUS"


async def test_5xx_is_retried_by_the_step_policy(make: MakeEngine, server: Served) -> None:
    retry = {"maxAttempts": 3, "backoffMs": 0}
    result = await run_one(make, {"url": server.url("/flaky?fail=2")}, retry=retry)
    assert result.status is ExecutionStatus.COMPLETED
    assert result.context["resp"]["body"] == {"ok": True}
    assert server.app.hits["/flaky"] == 3


async def test_4xx_is_not_retried(make: MakeEngine, server: Served) -> None:
    retry = {"maxAttempts": 3, "backoffMs": 0}
    result = await run_one(make, {"url": server.url("/status/404")}, retry=retry)
    assert result.status is ExecutionStatus.FAILED
    assert server.app.hits["/status/404"] == 1


async def test_retry_after_is_the_next_backoff(make: MakeEngine, server: Served) -> None:
    clock = FakeClock()
    engine = make(
        [
            http_flow(
                {"url": server.url("/status/429?retry_after=7")},
                retry={"maxAttempts": 2, "backoffMs": 100},
            )
        ],
        clock=clock,
    )
    async with engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.WAITING
        assert result.wake_at == clock.now() + timedelta(seconds=7)  # not the policy's 100 ms


async def test_retry_after_is_capped_by_the_policy(make: MakeEngine, server: Served) -> None:
    clock = FakeClock()
    engine = make(
        [
            http_flow(
                {"url": server.url("/status/503?retry_after=3600")},
                retry={"maxAttempts": 2, "backoffMs": 100, "maxBackoffMs": 2000},
            )
        ],
        clock=clock,
    )
    async with engine:
        result = await engine.start("f", {})
        assert result.wake_at == clock.now() + timedelta(seconds=2)


async def test_request_timeout(make: MakeEngine, server: Served) -> None:
    result = await run_one(make, {"url": server.url("/slow?delay=10"), "timeout": "200ms"})
    assert result.error.code == "HTTP_TIMEOUT"
    assert result.execution.history[-1].error.get("retryable", True) is True


async def test_step_timeout_cancels_the_request_mid_flight(
    make: MakeEngine, server: Served
) -> None:
    result = await run_one(
        make, {"url": server.url("/slow?delay=10"), "timeout": "30s"}, timeout="300ms"
    )
    assert result.error.code == "TIMEOUT"
    # The server saw the connection go away (the request was really cancelled).
    assert await asyncio.to_thread(server.app.disconnected.wait, 5)


async def test_cancel_mid_request(make: MakeEngine, server: Served) -> None:
    engine = make([http_flow({"url": server.url("/slow?delay=10")})])
    async with engine:
        created = await engine.create("f", {})
        running = asyncio.create_task(engine.run(created.execution.id))
        await asyncio.to_thread(server.app.slow_started.wait, 5)
        await engine.cancel(created.execution.id, reason="stop")
        await asyncio.wait_for(running, 5)
        assert (await engine.get(created.execution.id)).status is ExecutionStatus.CANCELLED
    assert await asyncio.to_thread(server.app.disconnected.wait, 5)


async def test_size_cap_on_a_streamed_body(make: MakeEngine, server: Served) -> None:
    # 10 chunks of 1 KiB without Content-Length; the cap is 4 KiB.
    url = server.url("/stream?chunks=10&size=1024")
    result = await run_one(make, {"url": url, "max_response_bytes": 4096})
    assert result.error.code == "HTTP_TOO_LARGE"
    ok = await run_one(make, {"url": url, "max_response_bytes": 10240})
    assert ok.context["resp"]["body"] == "x" * 10240


async def test_size_cap_from_content_length(make: MakeEngine, server: Served) -> None:
    result = await run_one(make, {"url": server.url("/big?size=5000"), "max_response_bytes": 100})
    assert result.error.code == "HTTP_TOO_LARGE"
    assert result.execution.history[-1].error["retryable"] is False


async def test_binary_and_bad_json_and_bad_text(make: MakeEngine, server: Served) -> None:
    assert (await run_one(make, {"url": server.url("/binary")})).error.code == "HTTP_BINARY"
    bad = await run_one(make, {"url": server.url("/badjson")})
    assert bad.error.code == "HTTP_INVALID_JSON"
    latin = await run_one(make, {"url": server.url("/latin")})
    assert latin.error.code == "HTTP_BINARY"
    forced = await run_one(make, {"url": server.url("/text"), "response": "json"})
    assert forced.error.code == "HTTP_INVALID_JSON"


async def test_redirects_are_not_followed_by_default(make: MakeEngine, server: Served) -> None:
    target = server.url("/json")
    result = await run_one(make, {"url": server.url(f"/redirect?to={target}")})
    assert result.error.code == "HTTP_STATUS"
    assert result.error.details["status"] == 302
    followed = await run_one(
        make, {"url": server.url(f"/redirect?to={target}"), "follow_redirects": True}
    )
    assert followed.context["resp"]["body"]["hello"] == "world"


async def test_connect_error(make: MakeEngine) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    result = await run_one(make, {"url": f"http://127.0.0.1:{port}/"})
    assert result.error.code == "HTTP_CONNECT"


@pytest.mark.parametrize(
    ("config", "code", "needle"),
    [
        ({"url": "${context.u}"}, "INPUT_ERROR", "url must render to a string"),
        ({"url": "http://exa mple.com:99999/"}, "INPUT_ERROR", "invalid URL"),
        ({"url": "ftp://example.com/x"}, "HTTP_BLOCKED", "only http and https"),
        ({"url": "file:///etc/passwd"}, "HTTP_BLOCKED", "only http and https"),
        (
            {"url": "http://127.0.0.1/", "headers": {"X-A": "a\r\nX-Injected: 1"}},
            "INPUT_ERROR",
            "line break",
        ),
        (
            {"url": "http://127.0.0.1/", "headers": {"X-A": "${context.evil}"}},
            "INPUT_ERROR",
            "line break",
        ),
    ],
)
async def test_bad_input_fails_the_step_cleanly(
    make: MakeEngine, config: dict[str, Any], code: str, needle: str
) -> None:
    result = await run_one(make, config, {"u": 5, "evil": "x\nSet-Cookie: a=b"})
    assert result.status is ExecutionStatus.FAILED
    assert result.error.code == code
    assert needle in result.error.message
    assert result.execution.history[-1].error["retryable"] is False


async def test_one_shared_client_closed_with_the_engine(make: MakeEngine, server: Served) -> None:
    engine = make([http_flow({"url": server.url("/json")})])
    async with engine:
        await engine.start("f", {})
        client = engine.services.http_client
        await engine.start("f", {})
        assert engine.services.http_client is client
        assert not client.is_closed
    assert client.is_closed
    assert not engine.services.has_client


def test_retry_after_forms() -> None:
    from datetime import UTC, datetime
    from email.utils import format_datetime

    from flowmonkey.handlers.standard.http import _retry_after

    assert _retry_after("7") == timedelta(seconds=7)
    assert _retry_after(None) is None
    assert _retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    delay = _retry_after(later)
    assert delay is not None and timedelta(seconds=100) < delay <= timedelta(seconds=120)
    past = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)
    assert _retry_after(past) == timedelta(0)


async def test_too_many_redirects(make: MakeEngine, server: Served) -> None:
    loop = server.url("/redirect?to=" + server.url("/redirect?to=" + server.url("/json")))
    result = await run_one(make, {"url": loop, "follow_redirects": True, "max_redirects": 1})
    assert result.error.code == "HTTP_STATUS"
    assert "more than 1 redirects" in result.error.message
    ok = await run_one(make, {"url": loop, "follow_redirects": True, "max_redirects": 2})
    assert ok.context["resp"]["body"]["hello"] == "world"


async def test_missing_values_leave_headers_and_query_out(make: MakeEngine, server: Served) -> None:
    config = {
        "url": server.url("/echo"),
        "headers": {"X-Present": "${context.a}", "X-Missing": "${context.nope}"},
        "query": {"a": "${context.a}", "gone": "${context.nope}", "flag": True},
    }
    result = await run_one(make, config, {"a": "1"})
    seen = server.app.requests[-1]
    assert seen["headers"]["x-present"] == "1" and "x-missing" not in seen["headers"]
    assert seen["query"] == {"a": "1", "flag": "true"}
    bad = await run_one(
        make, {"url": server.url("/echo"), "query": {"q": "${context.o}"}}, {"o": {"nested": 1}}
    )
    assert bad.error.code == "INPUT_ERROR"
    assert result.status is ExecutionStatus.COMPLETED
