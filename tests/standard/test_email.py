"""The ``email`` handler against aiosmtpd: plain, STARTTLS and TLS, refusals, timeouts."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from flowmonkey import FlowBuilder
from flowmonkey.handlers.secrets import DictSecretProvider
from flowmonkey.model.execution import ExecutionStatus

from .conftest import MakeEngine
from .smtp import PASSWORD, USER, make_cert, smtp_server

SECRETS = DictSecretProvider({"SMTP_USER": USER, "SMTP_PASSWORD": PASSWORD})


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("smtp"))


def mail_config(port: int, **extra: Any) -> dict[str, Any]:
    config = {
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "username": "{{ secrets.SMTP_USER }}",
        "password": "{{ secrets.SMTP_PASSWORD }}",
        "from": "Flow <flows@example.com>",
        "to": ["ann@example.com", "${context.customer.email}"],
        "subject": "Order ${context.order_id}",
        "text": "Hello ${context.customer.name}",
        "html": "<p>Hello <b>${context.customer.name}</b></p>",
    }
    config.update(extra)
    return config


async def send(make: MakeEngine, config: dict[str, Any], **step: Any) -> Any:
    flow = FlowBuilder("f").step("mail", "email", config=config, output_key="sent", **step).build()
    engine = make([flow], secrets=SECRETS)
    async with engine:
        context = {"order_id": "A-1", "customer": {"email": "bob@example.com", "name": "Bob"}}
        return await engine.start("f", context)


@pytest.mark.parametrize("mode", ["none", "starttls", "tls"])
async def test_sends_with_each_tls_mode(
    make: MakeEngine, cert: tuple[Path, Path], mode: str
) -> None:
    with smtp_server(mode, cert) as (inbox, port):
        extra: dict[str, Any] = {"tls": mode}
        if mode != "none":
            extra["ca_file"] = str(cert[1])
            extra["host"] = "localhost"
        result = await send(make, mail_config(port, **extra))
        assert result.status is ExecutionStatus.COMPLETED, result.error
        sent = result.context["sent"]
        assert sent["accepted"] == ["ann@example.com", "bob@example.com"]
        assert sent["message_id"].startswith("<") and sent["message_id"].endswith("@example.com>")
        ((rcpts, message),) = inbox.messages
        assert rcpts == ["ann@example.com", "bob@example.com"]
        assert message["Subject"] == "Order A-1"
        assert message["Message-ID"] == sent["message_id"]
        parts = {
            p.get_content_type(): p.get_payload(decode=True).decode()
            for p in message.walk()
            if not p.is_multipart()
        }
        assert parts["text/plain"].strip() == "Hello Bob"
        assert "<b>Bob</b>" in parts["text/html"]


async def test_unverified_certificate_is_unavailable(
    make: MakeEngine, cert: tuple[Path, Path]
) -> None:
    with smtp_server("starttls", cert) as (_inbox, port):
        result = await send(make, mail_config(port, tls="starttls", host="localhost"))
        assert result.error.code == "EMAIL_UNAVAILABLE"


async def test_bad_credentials_are_rejected(make: MakeEngine) -> None:
    with smtp_server("none") as (inbox, port):
        result = await send(make, mail_config(port, password="wrong"))
        assert result.error.code == "EMAIL_REJECTED"
        assert result.execution.history[-1].error["retryable"] is False
        assert inbox.messages == []


async def test_refused_recipients(make: MakeEngine) -> None:
    with smtp_server("none") as (_inbox, port):
        every = await send(make, mail_config(port, to="reject@example.com"))
        assert every.error.code == "EMAIL_REJECTED"
        later = await send(make, mail_config(port, to="later@example.com"))
        assert later.error.code == "EMAIL_UNAVAILABLE"
        assert later.execution.history[-1].error.get("retryable", True) is True
        some = await send(make, mail_config(port, to=["ann@example.com", "reject@example.com"]))
        assert some.status is ExecutionStatus.COMPLETED
        assert some.context["sent"]["accepted"] == ["ann@example.com"]


async def test_unreachable_server_is_retryable(make: MakeEngine) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await send(make, mail_config(port))
    assert result.error.code == "EMAIL_UNAVAILABLE"
    assert result.execution.history[-1].error.get("retryable", True) is True


async def test_silent_server_times_out(make: MakeEngine) -> None:
    # Accepts the connection and never greets: the handler's timeout ends it.
    server = await asyncio.start_server(lambda r, w: asyncio.sleep(30), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await send(make, mail_config(port, timeout="300ms"))
    assert result.error.code == "EMAIL_UNAVAILABLE"


async def test_header_injection_is_refused(make: MakeEngine) -> None:
    with smtp_server("none") as (inbox, port):
        config = mail_config(port, subject="Hi ${context.customer.name}")
        flow = FlowBuilder("f").step("mail", "email", config=config).build()
        engine = make([flow], secrets=SECRETS)
        async with engine:
            result = await engine.start(
                "f", {"customer": {"name": "Bob\r\nBcc: victim@example.com"}}
            )
        assert result.error.code == "INPUT_ERROR"
        assert inbox.messages == []


async def test_password_is_not_in_the_error(make: MakeEngine) -> None:
    with smtp_server("none") as (_inbox, port):
        result = await send(make, mail_config(port, password="{{ secrets.SMTP_PASSWORD }}x"))
        assert result.error.code == "EMAIL_REJECTED"
        assert PASSWORD not in repr(result.execution)


async def test_step_timeout_follows_on_timeout(make: MakeEngine) -> None:
    # The server never answers; the step's own timeout (shorter than the SMTP timeout)
    # cancels the send and the flow follows onTimeout.
    server = await asyncio.start_server(lambda r, w: asyncio.sleep(30), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    flow = (
        FlowBuilder("f")
        .step("mail", "email", config=mail_config(port, timeout="30s"), output_key="sent",
              timeout="300ms", on_timeout="fallback")
        .step("fallback", "set", config={"values": {"queued": True}}, output_key="fallback",
              on_success=None)
        .build()
    )  # fmt: skip
    engine = make([flow], secrets=SECRETS)
    async with server, engine:
        result = await engine.start("f", {"customer": {"email": "b@example.com", "name": "B"}})
    assert result.status is ExecutionStatus.COMPLETED, result.error
    assert result.context["fallback"] == {"queued": True}
    assert result.execution.history[0].error["code"] == "TIMEOUT"
