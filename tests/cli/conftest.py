"""Fixtures for the CLI tests: a runner bound to a fresh SQLite file per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from clitools import Invoke

from flowmonkey.cli import cli


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A SQLite store in the test's temp dir."""
    return f"sqlite:///{tmp_path}/x.db"


@pytest.fixture
def invoke(store_url: str) -> Invoke:
    """Run ``flowmonkey --store <tmp> ARGS...``. Exceptions are not swallowed, so a crash
    fails the test with its traceback instead of hiding behind an exit code."""
    runner = CliRunner()

    def run(*args: str, store: bool = True, input: str | None = None) -> Result:
        argv = (["--store", store_url] if store else []) + list(args)
        result = runner.invoke(cli, argv, input=input, catch_exceptions=False)
        assert "Traceback" not in result.output
        return result

    return run
