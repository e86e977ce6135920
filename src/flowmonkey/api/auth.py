"""Who is calling: API keys checked per request, scopes, and tenancy rules.

One dependency (``authenticate``) resolves the caller to a ``Principal``; routes ask for a
scope with ``require("read")`` etc. Tenancy helpers decide what a principal may see:
a tenant key sees only its tenant (anything else answers 404, as if it did not exist),
a ``*`` key sees every tenant.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import Request

from flowmonkey.api.problems import Problem
from flowmonkey.model.keys import ALL_TENANTS, KEY_PREFIX, SCOPES, ApiKey, hash_key

if TYPE_CHECKING:
    from flowmonkey.api.ratelimit import RateLimiter

__all__ = [
    "DEV_PRINCIPAL",
    "Principal",
    "authenticate",
    "caller",
    "check_scope",
    "check_visible",
    "create_tenant",
    "list_tenant",
    "require",
]

TOUCH_EVERY = timedelta(seconds=60)
"""``last_used_at`` is written at most this often per key and process (a write per
request would cost more than the request)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    key_id: str | None
    tenant: str
    scopes: frozenset[str]

    @property
    def all_tenants(self) -> bool:
        """True for a ``*`` key (and ``--dev``)."""
        return self.tenant == ALL_TENANTS

    def has(self, scope: str) -> bool:
        """Whether the caller holds ``scope``."""
        return scope in self.scopes


DEV_PRINCIPAL = Principal(key_id=None, tenant=ALL_TENANTS, scopes=frozenset(SCOPES))
"""The caller of an app built with ``auth=False`` (``serve --dev``)."""


def _bearer(header: str | None) -> str:
    if not header:
        raise Problem(
            401, "Missing API key: send Authorization: Bearer <key>.", code="UNAUTHORIZED"
        )
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise Problem(401, "Use Authorization: Bearer <key>.", code="UNAUTHORIZED")
    return value


class KeyChecker:
    """Looks a key up in the store on every request (so a revocation is seen at once)."""

    def __init__(self, store: Any, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now
        self._touched: dict[str, datetime] = {}
        self._pending: set[asyncio.Task[None]] = set()

    async def principal(self, request: Request) -> Principal:
        """The caller of ``request`` (401 for a missing, unknown, revoked or expired key)."""
        return await self.check(_bearer(request.headers.get("authorization")))

    async def check(self, secret: str) -> Principal:
        """The holder of ``secret`` (401 for an unknown, revoked or expired key); the
        dashboard checks its session's key with this on every page and action."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
            raise Problem(401, "Unknown API key.", code="UNAUTHORIZED")
        digest = hash_key(secret)
        record: ApiKey | None = await self._store.find_api_key(digest)
        # The lookup is by hash (the secret never meets a database index); the digest
        # comparison below is constant-time all the same.
        if record is None or not hmac.compare_digest(record.key_hash, digest):
            raise Problem(401, "Unknown API key.", code="UNAUTHORIZED")
        now = self._now()
        if record.revoked_at is not None:
            raise Problem(401, "This API key was revoked.", code="UNAUTHORIZED")
        if record.expires_at is not None and now >= record.expires_at:
            raise Problem(401, "This API key expired.", code="UNAUTHORIZED")
        self._touch(record.id, now)
        return Principal(key_id=record.id, tenant=record.tenant, scopes=frozenset(record.scopes))

    def _touch(self, key_id: str, now: datetime) -> None:
        last = self._touched.get(key_id)
        if last is not None and now - last < TOUCH_EVERY:
            return
        self._touched[key_id] = now
        task = asyncio.get_running_loop().create_task(self._write_touch(key_id, now))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write_touch(self, key_id: str, now: datetime) -> None:
        try:
            await self._store.touch_api_key(key_id, now=now)
        except Exception:  # a failed bookkeeping write never fails a request
            self._touched.pop(key_id, None)

    async def drain(self) -> None:
        """Wait for outstanding ``last_used_at`` writes (at shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


async def authenticate(request: Request) -> Principal:
    """The caller, as the app's auth settings decide (``DEV_PRINCIPAL`` without auth)."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    state = request.app.state.flowmonkey
    principal = await caller(state.keys, state.limiter, request.headers.get("authorization"))
    request.state.principal = principal
    return principal


async def caller(
    checker: KeyChecker | None, limiter: RateLimiter | None, authorization: str | None
) -> Principal:
    """The caller with this ``Authorization`` header value (``checker`` ``None``: no
    auth), rate-limited per key: what ``authenticate`` resolves (the lean routes of
    ``fastpath`` call it directly)."""
    principal = DEV_PRINCIPAL if checker is None else await checker.check(_bearer(authorization))
    if limiter is not None:
        limiter.check(f"key:{principal.key_id or 'dev'}")
    return principal


def check_scope(principal: Principal, scope: str) -> Principal:
    """``principal`` if it holds ``scope``, else the 403 ``require`` answers."""
    if not principal.has(scope):
        raise Problem(403, f'This API key lacks the "{scope}" scope.', code="FORBIDDEN")
    return principal


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller, who must hold ``scope`` (else 403)."""

    async def dependency(request: Request) -> Principal:
        return check_scope(await authenticate(request), scope)

    dependency.__name__ = f"require_{scope}"
    return dependency


def check_visible(principal: Principal, tenant_id: str | None, what: Problem) -> None:
    """Raise ``what`` (a 404) unless the caller may see a resource of ``tenant_id``."""
    if principal.all_tenants:
        return
    if tenant_id != principal.tenant:
        raise what


def create_tenant(principal: Principal, requested: str | None) -> str | None:
    """The tenant of something the caller creates.

    A tenant key's own tenant is forced (another one is 403); a ``*`` key creates
    tenant-less records unless it names a tenant, which needs the admin scope.
    """
    if not principal.all_tenants:
        if requested is not None and requested != principal.tenant:
            raise Problem(403, "This API key cannot act for another tenant.", code="FORBIDDEN")
        return principal.tenant
    if requested is not None and not principal.has("admin"):
        raise Problem(403, 'Naming a tenant_id needs the "admin" scope.', code="FORBIDDEN")
    return requested


def list_tenant(principal: Principal, requested: str | None) -> str | None:
    """The tenant filter of a listing: a tenant key's own; a ``*`` key's choice (None: all)."""
    if not principal.all_tenants:
        if requested is not None and requested != principal.tenant:
            raise Problem(403, "This API key cannot read another tenant.", code="FORBIDDEN")
        return principal.tenant
    return requested
