"""``email``: send one message over SMTP with aiosmtplib (TLS, STARTTLS or plain).

``password`` (and usually ``username``) come from ``{{ secrets.NAME }}``. A refusal by
the server (5xx, bad credentials) is ``EMAIL_REJECTED`` and final; a server that cannot
be reached, times out or answers 4xx is ``EMAIL_UNAVAILABLE`` and retryable.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, ClassVar

from flowmonkey.handlers.context import HandlerContext
from flowmonkey.handlers.standard.common import (
    DURATION_SCHEMA,
    INPUT_ERROR,
    StandardHandler,
    duration_problems,
    render,
    seconds,
)
from flowmonkey.model.result import Result

__all__ = ["EMAIL_REJECTED", "EMAIL_UNAVAILABLE", "EmailConfig", "EmailHandler"]

EMAIL_REJECTED = "EMAIL_REJECTED"
EMAIL_UNAVAILABLE = "EMAIL_UNAVAILABLE"
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}

_ADDRESSES = {
    "oneOf": [
        {"type": "string", "minLength": 3},
        {"type": "array", "items": {"type": "string", "minLength": 3}, "minItems": 1},
    ]
}


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailConfig:
    """The config of an ``email`` step (``from`` is ``sender`` here)."""

    host: str
    sender: str
    to: tuple[str, ...]
    subject: str
    port: int | None = None
    tls: str = "starttls"
    username: str | None = None
    password: str | None = None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: str | None = None
    text: str | None = None
    html: str | None = None
    timeout: float = 30.0
    verify: bool = True
    ca_file: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], ctx: HandlerContext) -> EmailConfig:
        """Build from a (schema-checked) config mapping, rendering the templates.

        Raises:
            ValueError: ``timeout`` is not a duration.
        """

        def addresses(value: Any) -> tuple[str, ...]:
            rendered = render(value, ctx)
            if rendered is None:
                return ()
            items = [rendered] if isinstance(rendered, str) else list(rendered)
            return tuple(str(a) for a in items)

        def text(key: str) -> str | None:
            value = config.get(key)
            return None if value is None else str(render(value, ctx))

        tls = config.get("tls", "starttls")
        return cls(
            host=str(render(config["host"], ctx)),
            port=config.get("port"),
            tls=tls,
            username=text("username"),
            password=text("password"),
            sender=str(render(config["from"], ctx)),
            to=addresses(config["to"]),
            cc=addresses(config.get("cc")),
            bcc=addresses(config.get("bcc")),
            reply_to=text("reply_to"),
            subject=str(render(config["subject"], ctx)),
            text=text("text"),
            html=text("html"),
            timeout=seconds(config.get("timeout"), 30.0),
            verify=bool(config.get("verify", True)),
            ca_file=config.get("ca_file"),
            headers={k: str(render(v, ctx)) for k, v in (config.get("headers") or {}).items()},
        )


def build_message(cfg: EmailConfig) -> EmailMessage:
    """The MIME message (text and/or HTML alternative).

    Raises:
        ValueError: a header holds a line break (header injection) or is malformed.
    """
    message = EmailMessage()
    message["From"] = cfg.sender
    message["To"] = ", ".join(cfg.to)
    if cfg.cc:
        message["Cc"] = ", ".join(cfg.cc)
    if cfg.reply_to:
        message["Reply-To"] = cfg.reply_to
    message["Subject"] = cfg.subject
    domain = cfg.sender.rpartition("@")[2].strip("> ") or None
    message["Message-ID"] = email.utils.make_msgid(domain=domain)
    message["Date"] = email.utils.formatdate(localtime=False)
    for name, value in cfg.headers.items():
        message[name] = value
    message.set_content(cfg.text if cfg.text is not None else "")
    if cfg.html is not None:
        message.add_alternative(cfg.html, subtype="html")
    for name, value in message.items():
        if any(c in str(value) for c in "\r\n"):
            raise ValueError(f"header {name} holds a line break")
    return message


class EmailHandler(StandardHandler):
    """Send an email through an SMTP server (aiosmtplib)."""

    type = "email"
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "host": {"type": "string", "minLength": 1},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "tls": {"enum": ["starttls", "tls", "none"]},
            "username": {"type": "string"},
            "password": {"type": "string"},
            "from": {"type": "string", "minLength": 3},
            "to": _ADDRESSES,
            "cc": _ADDRESSES,
            "bcc": _ADDRESSES,
            "reply_to": {"type": "string"},
            "subject": {"type": "string"},
            "text": {"type": "string"},
            "html": {"type": "string"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "timeout": DURATION_SCHEMA,
            "verify": {"type": "boolean"},
            "ca_file": {"type": "string"},
        },
        "required": ["host", "from", "to", "subject"],
        "anyOf": [{"required": ["text"]}, {"required": ["html"]}],
        "additionalProperties": False,
    }

    def validate_config(self, config: Mapping[str, Any]) -> list[str]:
        """Durations; a password needs a username."""
        problems = duration_problems(config, "timeout")
        if "password" in config and "username" not in config:
            problems.append("password: needs a username")
        return problems

    async def execute(self, ctx: HandlerContext) -> Result:
        """Build and send the message; map SMTP outcomes to codes."""
        import aiosmtplib

        try:
            cfg = EmailConfig.from_config(ctx.config, ctx)
            message = build_message(cfg)
        except (ValueError, TypeError) as exc:
            return Result.failure(INPUT_ERROR, f"cannot build the message: {exc}", retryable=False)
        recipients = [*cfg.to, *cfg.cc, *cfg.bcc]
        try:
            refused, _reply = await aiosmtplib.send(
                message,
                sender=email.utils.parseaddr(cfg.sender)[1] or cfg.sender,
                recipients=[email.utils.parseaddr(r)[1] or r for r in recipients],
                hostname=cfg.host,
                port=cfg.port or DEFAULT_PORTS[cfg.tls],
                username=cfg.username,
                password=cfg.password,
                use_tls=cfg.tls == "tls",
                start_tls=cfg.tls == "starttls" if cfg.tls != "tls" else None,
                validate_certs=cfg.verify,
                cert_bundle=cfg.ca_file,
                timeout=cfg.timeout,
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            return _rejected(f"authentication failed: {exc.code} {exc.message}")
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            message_text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            if all(code >= 500 for code in codes):
                return _rejected(f"every recipient refused: {message_text}")
            return _unavailable(f"recipients refused for now: {message_text}")
        except aiosmtplib.SMTPResponseException as exc:
            text = f"{exc.code} {exc.message}"
            return _rejected(text) if exc.code >= 500 else _unavailable(text)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return _unavailable(f"{type(exc).__name__}: {exc}")
        accepted = [r for r in recipients if _bare(r) not in refused]
        return Result.success({"message_id": message["Message-ID"], "accepted": accepted})


def _bare(address: str) -> str:
    return email.utils.parseaddr(address)[1] or address


def _rejected(message: str) -> Result:
    return Result.failure(EMAIL_REJECTED, message, retryable=False)


def _unavailable(message: str) -> Result:
    return Result.failure(EMAIL_UNAVAILABLE, message)
