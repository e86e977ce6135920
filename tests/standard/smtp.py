"""A real SMTP server for the email tests: aiosmtpd on 127.0.0.1 (plain, STARTTLS, TLS)."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "mailer", "s3cr3t-smtp-pass"


class Inbox:
    """aiosmtpd handler: keeps every message; refuses recipients by address."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address.startswith("reject"):
            return "550 5.1.1 no such user"
        if address.startswith("later"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 Message accepted"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


def make_cert(folder: Path) -> tuple[Path, Path]:
    key, cert = folder / "smtp-key.pem", folder / "smtp-cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def smtp_server(mode: str, cert: tuple[Path, Path] | None = None) -> Iterator[tuple[Inbox, int]]:
    """``mode``: ``none`` (plain, auth allowed without TLS), ``starttls`` or ``tls``."""
    inbox = Inbox()
    kwargs: dict[str, Any] = {"authenticator": _authenticator}
    if mode == "none":
        kwargs["auth_require_tls"] = False
    else:
        assert cert is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[1]), str(cert[0]))
        if mode == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        else:
            # Implicit TLS wraps the socket below aiosmtpd, which cannot see it: it
            # would refuse AUTH as "not over TLS".
            kwargs.update(ssl_context=context, auth_require_tls=False)
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port(), **kwargs)
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()
