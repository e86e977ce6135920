"""Shared fixtures: real PostgreSQL and Redis, skipped locally when absent, FAILED in CI."""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_DSN = os.environ.get(
    "FLOWMONKEY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("FLOWMONKEY_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (locally) or fail (when CI is set) if the server does not answer."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of the test PostgreSQL server (FLOWMONKEY_TEST_POSTGRES)."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_DSN


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the test Redis server (FLOWMONKEY_TEST_REDIS)."""
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL
