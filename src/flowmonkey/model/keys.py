"""API keys of the HTTP service: the stored record and how a key is made and hashed.

A key is ``fmk_`` + 43 URL-safe characters (32 random bytes). Only its SHA-256 hex digest
is stored; the key itself is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "ALL_TENANTS",
    "KEY_PREFIX",
    "SCOPES",
    "ApiKey",
    "generate_key",
    "hash_key",
    "matches",
    "new_api_key",
]

KEY_PREFIX = "fmk_"
SCOPES = ("read", "write", "admin")
"""Every scope, weakest first."""
ALL_TENANTS = "*"


def generate_key() -> tuple[str, str]:
    """A new random key and its SHA-256 hex digest: ``(key, key_hash)``."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_key(key)


def hash_key(key: str) -> str:
    """The SHA-256 hex digest a key is stored (and looked up) as."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def matches(record_hash: str, key: str) -> bool:
    """True when ``key`` hashes to ``record_hash``, compared in constant time."""
    return hmac.compare_digest(record_hash, hash_key(key))


@dataclass(slots=True, kw_only=True)
class ApiKey:
    """A stored API key (never the key itself: ``key_hash`` is its SHA-256)."""

    id: str = field(default_factory=lambda: "key_" + uuid.uuid4().hex[:16])
    name: str
    tenant: str
    """A tenant id, or ``*`` for a key that acts on every tenant."""
    scopes: tuple[str, ...]
    key_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def __post_init__(self) -> None:
        unknown = [s for s in self.scopes if s not in SCOPES]
        if unknown:
            raise ValueError(f"unknown scope(s) {unknown}; scopes are {', '.join(SCOPES)}")
        if not self.scopes:
            raise ValueError("an API key needs at least one scope")
        if not self.tenant:
            raise ValueError("an API key needs a tenant (a tenant id, or * for all)")
        self.scopes = tuple(s for s in SCOPES if s in self.scopes)

    @property
    def all_tenants(self) -> bool:
        """True for a ``*`` key."""
        return self.tenant == ALL_TENANTS

    def usable(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now``."""
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, without the hash."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "name": self.name,
            "tenant": self.tenant,
            "scopes": list(self.scopes),
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "last_used_at": iso(self.last_used_at),
            "revoked_at": iso(self.revoked_at),
        }


def new_api_key(
    *,
    name: str,
    tenant: str,
    scopes: tuple[str, ...] | list[str],
    now: datetime,
    expires_in: timedelta | None = None,
) -> tuple[str, ApiKey]:
    """A fresh key and its record (store the record; show the key once)."""
    if not name or len(name) > 200:
        raise ValueError("a key name must be 1-200 characters")
    if expires_in is not None and expires_in <= timedelta(0):
        raise ValueError("a key's expiry must be in the future")
    secret, digest = generate_key()
    record = ApiKey(
        name=name,
        tenant=tenant,
        scopes=tuple(scopes),
        key_hash=digest,
        created_at=now,
        expires_at=None if expires_in is None else now + expires_in,
    )
    return secret, record
