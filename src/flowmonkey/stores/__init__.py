"""Stores: where executions live. ``open_store(url)`` picks one from a URL.

``memory://`` (tests), ``sqlite:///path.db`` (the embedded default) and
``postgresql://user@host/db`` (several processes and machines; needs the ``postgres``
extra, imported only when asked for).
"""

from __future__ import annotations

from typing import Any

from flowmonkey import errors
from flowmonkey.stores.base import Store
from flowmonkey.stores.memory import MemoryStore

__all__ = ["MemoryStore", "Store", "open_store", "redact_url"]


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and logs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def open_store(url: str, **options: Any) -> Store:
    """Build (not open) the store a URL names; ``await store.initialize()`` opens it.

    Raises:
        StoreError: unknown scheme, or the backend's extra is not installed.
    """
    scheme = url.split(":", 1)[0].lower()
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite":
        from flowmonkey.stores.sqlite import SqliteStore

        return SqliteStore.from_url(url, **options)
    if scheme in ("postgres", "postgresql"):
        try:
            from flowmonkey.stores.postgres import PostgresStore
        except ImportError as exc:
            raise errors.StoreError(
                "PostgreSQL support needs the postgres extra: pip install 'flowmonkey[postgres]'"
            ) from exc
        return PostgresStore.from_url(url, **options)
    raise errors.StoreError(
        f"unknown store URL {redact_url(url)!r}: use sqlite:///path.db, "
        "postgresql://user@host/db or memory://"
    )
