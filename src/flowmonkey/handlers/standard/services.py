"""``StandardServices``: what the standard handlers of one engine share.

One per ``Engine`` (``engine.services``), created with it and closed by
``Engine.close()``: the one httpx ``AsyncClient`` (HTTP/1.1 keep-alive, behind the SSRF
guard), the secret provider, the allowlist and the public base URL for callbacks.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flowmonkey.handlers.secrets import EnvSecretProvider, SecretProvider, redact
from flowmonkey.handlers.standard.ssrf import (
    HttpAllow,
    Resolver,
    guarded_transport,
    parse_http_allow,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["LIBRARY_LOGGERS", "SecretLogFilter", "StandardServices"]

LIBRARY_LOGGERS = ("httpx", "httpcore", "aiosmtplib")
"""Loggers of the libraries the handlers use; they log URLs and SMTP exchanges, so the
values of the secrets in use are redacted from their records."""


class SecretLogFilter(logging.Filter):
    """Redacts the secret values currently in use from library log records."""

    def __init__(self) -> None:
        super().__init__()
        self.live: Counter[str] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message when it holds a live secret; never drops one."""
        if self.live:
            message = record.getMessage()
            cleaned = redact(message, list(self.live))
            if cleaned != message:
                record.msg, record.args = cleaned, ()
        return True


class StandardServices:
    """Engine-wide resources of the standard handlers; the HTTP client is made lazily."""

    def __init__(
        self,
        *,
        http_allow: Iterable[str] = (),
        base_url: str | None = None,
        secrets: SecretProvider | None = None,
        resolver: Resolver | None = None,
        max_connections: int = 100,
    ) -> None:
        self.allow: HttpAllow = parse_http_allow(http_allow)
        self.base_url = base_url.rstrip("/") if base_url else None
        self.secrets: SecretProvider = secrets if secrets is not None else EnvSecretProvider()
        self.resolver = resolver
        self.max_connections = max_connections
        self._client: httpx.AsyncClient | None = None
        self._closed = False
        self._urls: dict[str, Any] = {}
        self.log_filter = SecretLogFilter()
        self._filtering = False

    def parsed_url(self, url: str, parse: Callable[[str], Any]) -> Any:
        """``parse(url)``, remembered: most steps call the same few URLs."""
        found = self._urls.get(url)
        if found is None:
            found = parse(url)
            if len(self._urls) >= 1024:
                self._urls.clear()
            self._urls[url] = found
        return found

    def secrets_in_use(self, values: Iterable[str]) -> None:
        """The engine resolved ``values`` for a running step: redact them from logs."""
        if not self._filtering:
            for name in LIBRARY_LOGGERS:
                logging.getLogger(name).addFilter(self.log_filter)
            self._filtering = True
        self.log_filter.live.update(values)

    def secrets_done(self, values: Iterable[str]) -> None:
        """The step that used ``values`` finished."""
        self.log_filter.live.subtract(values)
        self.log_filter.live = +self.log_filter.live  # drop the zero counts

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The shared ``AsyncClient`` (needs the ``http`` extra: ``pip install
        flowmonkey[http]``). Redirects are followed by the handler, not the client,
        so each hop is checked."""
        if self._client is None:
            if self._closed:
                raise RuntimeError("the engine is closed")
            import httpx

            self._client = httpx.AsyncClient(
                transport=guarded_transport(self.allow, self.resolver),
                limits=httpx.Limits(
                    max_connections=self.max_connections,
                    max_keepalive_connections=self.max_connections,
                ),
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    @property
    def has_client(self) -> bool:
        """True once the HTTP client exists (tests check that close releases it)."""
        return self._client is not None

    async def aclose(self) -> None:
        """Close the HTTP client (its keep-alive connections)."""
        client, self._client = self._client, None
        self._closed = True
        if self._filtering:
            for name in LIBRARY_LOGGERS:
                logging.getLogger(name).removeFilter(self.log_filter)
            self._filtering = False
        if client is not None:
            await client.aclose()

    def reopen(self) -> None:
        """Allow a new client after ``aclose`` (an engine can be initialized again)."""
        self._closed = False

    def __repr__(self) -> str:
        return f"StandardServices(base_url={self.base_url!r}, secrets={self.secrets!r})"
