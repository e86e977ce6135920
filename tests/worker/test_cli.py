"""``flowmonkey worker`` / ``flowmonkey migrate`` (click commands in ``cli/worker.py``)."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import click
import orjson
import pytest
from click.testing import CliRunner

from flowmonkey.cli.worker import JsonFormatter, migrate_command, register, worker_command
from worker.support import drop_schema, new_schema, postgres_url

APP = str(Path(__file__).parents[1] / "crash" / "worker_app.py")


def test_check_fails_without_a_worker() -> None:
    result = CliRunner().invoke(worker_command, ["--check", "--health-port", "1"])
    assert result.exit_code == 1
    assert "NOT healthy" in result.output


def test_worker_needs_a_store() -> None:
    result = CliRunner().invoke(worker_command, [], env={"FLOWMONKEY_STORE": None})
    assert result.exit_code == 2
    assert "--store" in result.output


def test_bad_handlers_module_is_a_configuration_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        worker_command,
        ["--store", f"sqlite:///{tmp_path / 'w.db'}", "--handlers", "no_such_module_xyz"],
    )
    assert result.exit_code == 2
    assert "no_such_module_xyz" in result.output


def test_migrate_sqlite_then_a_newer_schema_refuses_to_start(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    result = CliRunner().invoke(migrate_command, ["--store", f"sqlite:///{db}"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (9999, 'future', 'x')"
        )
    result = CliRunner().invoke(worker_command, ["--store", f"sqlite:///{db}", "--handlers", APP])
    assert result.exit_code == 2
    result = CliRunner().invoke(migrate_command, ["--store", f"sqlite:///{db}"])
    assert result.exit_code == 2
    assert "9999" in result.output


@pytest.mark.postgres
def test_migrate_postgres(postgres_dsn: str) -> None:
    schema = new_schema()
    try:
        url = postgres_url(postgres_dsn, schema)
        result = CliRunner().invoke(migrate_command, ["--store", url])
        assert result.exit_code == 0, result.output
        assert "schema is at version" in result.output
    finally:
        drop_schema(postgres_dsn, schema)


def test_json_log_lines_carry_the_extra_fields() -> None:
    record = logging.LogRecord("flowmonkey.worker", logging.INFO, __file__, 1, "hi %s", ("x",),
                               None)  # fmt: skip
    record.worker_id = "w"
    record.execution_id = "e"
    line = orjson.loads(JsonFormatter().format(record))
    assert line["message"] == "hi x" and line["level"] == "info"
    assert line["worker_id"] == "w" and line["execution_id"] == "e"


def test_unreachable_database_is_retried_and_sigterm_exits_0(tmp_path: Path) -> None:
    """One readable line naming the URL (password hidden); retries; a clean exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowmonkey.cli.worker", "--store",
         "postgresql://fm:hunter2@127.0.0.1:1/db", "--handlers", APP],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 20
    while sum("store unavailable" in line for line in lines) < 2:
        assert time.monotonic() < deadline, lines
        lines.append(proc.stderr.readline())
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=20) == 0
    text = "".join(lines) + rest
    assert "hunter2" not in text
    [first] = [line for line in lines if "store unavailable" in line][:1]
    assert "postgresql://fm:***@127.0.0.1:1/db" in first and "retrying in" in first
    assert "stopped" in rest


def test_register_adds_both_commands_and_they_use_the_groups_store(tmp_path: Path) -> None:
    @click.group()
    @click.option("--store")
    @click.pass_context
    def group(ctx: click.Context, store: str) -> None:
        ctx.obj = SimpleNamespace(store_url=store)

    register(group)
    assert {"worker", "migrate"} <= set(group.commands)
    db = tmp_path / "g.db"
    result = CliRunner().invoke(group, ["--store", f"sqlite:///{db}", "migrate"])
    assert result.exit_code == 0, result.output
    assert db.exists()
