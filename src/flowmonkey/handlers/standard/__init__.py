"""The standard handlers (``http``, ``transform``, ``set``, ``log``, ``email``,
``webhook``) and secrets.

``HandlerRegistry()`` registers them by default (``HandlerRegistry(standard=False)``
does not); a user handler of the same type replaces one, with a warning. See
docs/handlers/ for one page per handler.
"""

from __future__ import annotations

from flowmonkey.handlers.base import Handler
from flowmonkey.handlers.secrets import (
    DictSecretProvider,
    EnvSecretProvider,
    SecretNotFound,
    SecretProvider,
)
from flowmonkey.handlers.standard.email import EmailConfig, EmailHandler
from flowmonkey.handlers.standard.http import HttpConfig, HttpHandler
from flowmonkey.handlers.standard.log import LogConfig, LogHandler
from flowmonkey.handlers.standard.services import StandardServices
from flowmonkey.handlers.standard.set import SetConfig, SetHandler
from flowmonkey.handlers.standard.transform import TransformConfig, TransformHandler
from flowmonkey.handlers.standard.webhook import WebhookConfig, WebhookHandler

__all__ = [
    "STANDARD_TYPES",
    "DictSecretProvider",
    "EmailConfig",
    "EmailHandler",
    "EnvSecretProvider",
    "HttpConfig",
    "HttpHandler",
    "LogConfig",
    "LogHandler",
    "SecretNotFound",
    "SecretProvider",
    "SetConfig",
    "SetHandler",
    "StandardServices",
    "TransformConfig",
    "TransformHandler",
    "WebhookConfig",
    "WebhookHandler",
    "standard_handlers",
]

_CLASSES: tuple[type[Handler], ...] = (
    HttpHandler,
    TransformHandler,
    SetHandler,
    LogHandler,
    EmailHandler,
    WebhookHandler,
)
STANDARD_TYPES = tuple(cls.type for cls in _CLASSES)
"""The step types registered by default."""


def standard_handlers() -> list[Handler]:
    """A fresh instance of each standard handler (they keep per-registry caches)."""
    return [cls() for cls in _CLASSES]
