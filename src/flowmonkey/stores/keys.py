"""API-key storage of the three stores, one mixin per backend.

Each store class inherits its backend's mixin, so the key methods of the ``Store``
protocol live next to each other here rather than growing the execution stores. Scopes
are stored space-separated; a key row is never deleted (revoked keys stay listed).
"""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flowmonkey import errors
from flowmonkey.model.keys import ApiKey
from flowmonkey.stores import sqlite_queries as q

__all__ = ["MemoryKeys", "PostgresKeys", "SqliteKeys"]

_COLUMNS = "id, key_hash, name, tenant, scopes, created_at, expires_at, last_used_at, revoked_at"


def _from_parts(row: tuple[Any, ...], to_dt: Callable[[Any], datetime | None]) -> ApiKey:
    created = to_dt(row[5])
    assert created is not None
    return ApiKey(
        id=row[0],
        key_hash=row[1],
        name=row[2],
        tenant=row[3],
        scopes=tuple(row[4].split()),
        created_at=created,
        expires_at=to_dt(row[6]),
        last_used_at=to_dt(row[7]),
        revoked_at=to_dt(row[8]),
    )


class MemoryKeys:
    """API keys of ``MemoryStore``."""

    _api_keys: dict[str, ApiKey]

    async def create_api_key(self, key: ApiKey) -> None:
        """Store a new key (``StoreError`` if the id or hash exists)."""
        for other in self._api_keys.values():
            if other.id == key.id or other.key_hash == key.key_hash:
                raise errors.StoreError(f'API key "{key.id}" already exists')
        self._api_keys[key.id] = replace(key)

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        """One key by id."""
        found = self._api_keys.get(key_id)
        return None if found is None else replace(found)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """One key by the SHA-256 of its secret."""
        for key in self._api_keys.values():
            if key.key_hash == key_hash:
                return replace(key)
        return None

    async def list_api_keys(self) -> builtins.list[ApiKey]:
        """Every key, newest first."""
        keys = sorted(self._api_keys.values(), key=lambda k: (k.created_at, k.id), reverse=True)
        return [replace(k) for k in keys]

    async def revoke_api_key(self, key_id: str, *, now: datetime) -> ApiKey | None:
        """Revoke at ``now`` (a revoked key keeps its first ``revoked_at``)."""
        key = self._api_keys.get(key_id)
        if key is None:
            return None
        if key.revoked_at is None:
            key.revoked_at = now
        return replace(key)

    async def touch_api_key(self, key_id: str, *, now: datetime) -> None:
        """Set ``last_used_at``."""
        key = self._api_keys.get(key_id)
        if key is not None:
            key.last_used_at = now


# -- SQLite -------------------------------------------------------------------------------

_SQ_INSERT = f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SQ_BY_ID = f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?"
_SQ_BY_HASH = f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ?"
_SQ_LIST = f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at DESC, id DESC"
_SQ_REVOKE = "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?"
_SQ_TOUCH = "UPDATE api_keys SET last_used_at = ? WHERE id = ?"


def _sq_key(row: tuple[Any, ...]) -> ApiKey:
    return _from_parts(row, q.opt_dt)


def _sq_insert(conn: sqlite3.Connection, key: ApiKey) -> None:
    params = (
        key.id, key.key_hash, key.name, key.tenant, " ".join(key.scopes),
        q.to_us(key.created_at), q.opt_us(key.expires_at), q.opt_us(key.last_used_at),
        q.opt_us(key.revoked_at),
    )  # fmt: skip
    try:
        conn.execute(_SQ_INSERT, params)
    except sqlite3.IntegrityError as exc:
        raise errors.StoreError(f'API key "{key.id}" already exists') from exc


def _sq_one(conn: sqlite3.Connection, sql: str, value: str) -> ApiKey | None:
    row = conn.execute(sql, (value,)).fetchone()
    return None if row is None else _sq_key(row)


def _sq_list(conn: sqlite3.Connection) -> builtins.list[ApiKey]:
    return [_sq_key(row) for row in conn.execute(_SQ_LIST).fetchall()]


def _sq_update(conn: sqlite3.Connection, sql: str, key_id: str, now: datetime) -> ApiKey | None:
    conn.execute(sql, (q.to_us(now), key_id))
    return _sq_one(conn, _SQ_BY_ID, key_id)


_KEY_CACHE_CAP = 1_024
"""Verified keys remembered per store (cleared whole when full)."""


class _KeyCache:
    """Keys found by hash, valid while the database is unchanged by other connections.

    ``PRAGMA data_version`` changes whenever another connection (another process: a
    ``keys revoke`` from the CLI, another server) commits anything, so a key revoked
    anywhere is read again on the very next request. This connection's own key writes
    clear the cache directly (its own commits leave ``data_version`` as it is).
    """

    __slots__ = ("keys", "version")

    def __init__(self) -> None:
        self.keys: dict[str, ApiKey] = {}
        self.version: int | None = None

    def find(self, conn: sqlite3.Connection, key_hash: str) -> ApiKey | None:
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self.version:
            self.keys.clear()
            self.version = version
        found = self.keys.get(key_hash)
        if found is not None:
            return replace(found)
        conn.execute("BEGIN")
        try:
            found = _sq_one(conn, _SQ_BY_HASH, key_hash)
        finally:
            conn.execute("COMMIT")
        if found is not None:  # unknown hashes are not kept (anyone can send them)
            if len(self.keys) >= _KEY_CACHE_CAP:
                self.keys.clear()
            self.keys[key_hash] = replace(found)
        return found


class SqliteKeys:
    """API keys of ``SqliteStore`` (each call one transaction on the store's connection).

    ``find_api_key`` (every authenticated request) answers from ``_KeyCache`` while no
    other connection has written to the database since the key was read.
    """

    if TYPE_CHECKING:
        _tx: Callable[..., Awaitable[Any]]

    _key_cache: _KeyCache | None = None

    def _keys_changed(self) -> None:
        if self._key_cache is not None:
            self._key_cache.keys.clear()

    async def create_api_key(self, key: ApiKey) -> None:
        """Store a new key (``StoreError`` if the id or hash exists)."""
        self._keys_changed()
        await self._tx(True, _sq_insert, key)

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        """One key by id."""
        found: ApiKey | None = await self._tx(False, _sq_one, _SQ_BY_ID, key_id)
        return found

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """One key by the SHA-256 of its secret."""
        if self._key_cache is None:
            self._key_cache = _KeyCache()
        found: ApiKey | None = await self._tx(None, self._key_cache.find, key_hash)
        return found

    async def list_api_keys(self) -> builtins.list[ApiKey]:
        """Every key, newest first."""
        keys: builtins.list[ApiKey] = await self._tx(False, _sq_list)
        return keys

    async def revoke_api_key(self, key_id: str, *, now: datetime) -> ApiKey | None:
        """Revoke at ``now`` (a revoked key keeps its first ``revoked_at``)."""
        self._keys_changed()
        try:
            found: ApiKey | None = await self._tx(True, _sq_update, _SQ_REVOKE, key_id, now)
        finally:
            self._keys_changed()  # a find that raced the write re-reads
        return found

    async def touch_api_key(self, key_id: str, *, now: datetime) -> None:
        """Set ``last_used_at``."""
        await self._tx(True, _sq_update, _SQ_TOUCH, key_id, now)
        self._keys_changed()


# -- PostgreSQL ---------------------------------------------------------------------------

_PG_INSERT = (
    f"INSERT INTO api_keys ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING RETURNING id"
)
_PG_BY_ID = f"SELECT {_COLUMNS} FROM api_keys WHERE id = %s"
_PG_BY_HASH = f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = %s"
_PG_LIST = f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at DESC, id DESC"
_PG_REVOKE = (
    f"UPDATE api_keys SET revoked_at = COALESCE(revoked_at, %s) WHERE id = %s RETURNING {_COLUMNS}"
)
_PG_TOUCH = "UPDATE api_keys SET last_used_at = %s WHERE id = %s RETURNING id"


def _pg_dt(value: Any) -> datetime | None:
    return value if value is None else value.astimezone(UTC)


class PostgresKeys:
    """API keys of ``PostgresStore`` (single autocommit statements)."""

    if TYPE_CHECKING:

        async def _fetchall(self, query: str, params: Any = None) -> builtins.list[Any]: ...

    async def create_api_key(self, key: ApiKey) -> None:
        """Store a new key (``StoreError`` if the id or hash exists)."""
        params = [
            key.id, key.key_hash, key.name, key.tenant, " ".join(key.scopes),
            key.created_at, key.expires_at, key.last_used_at, key.revoked_at,
        ]  # fmt: skip
        if not await self._fetchall(_PG_INSERT, params):
            raise errors.StoreError(f'API key "{key.id}" already exists')

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        """One key by id."""
        rows = await self._fetchall(_PG_BY_ID, [key_id])
        return _from_parts(rows[0], _pg_dt) if rows else None

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """One key by the SHA-256 of its secret."""
        rows = await self._fetchall(_PG_BY_HASH, [key_hash])
        return _from_parts(rows[0], _pg_dt) if rows else None

    async def list_api_keys(self) -> builtins.list[ApiKey]:
        """Every key, newest first."""
        return [_from_parts(row, _pg_dt) for row in await self._fetchall(_PG_LIST)]

    async def revoke_api_key(self, key_id: str, *, now: datetime) -> ApiKey | None:
        """Revoke at ``now`` (a revoked key keeps its first ``revoked_at``)."""
        rows = await self._fetchall(_PG_REVOKE, [now, key_id])
        return _from_parts(rows[0], _pg_dt) if rows else None

    async def touch_api_key(self, key_id: str, *, now: datetime) -> None:
        """Set ``last_used_at``."""
        await self._fetchall(_PG_TOUCH, [now, key_id])
