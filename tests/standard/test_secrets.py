"""Secrets: resolved at run time, redacted from everything the engine records.

The last tests run every standard handler with a secret and grep the store's raw rows
(SQLite file and PostgreSQL tables) for its value: there must be no hit.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from flowmonkey import Flow, FlowBuilder, handler
from flowmonkey.engine.engine import Engine
from flowmonkey.engine.options import EngineOptions
from flowmonkey.handlers.secrets import (
    DictSecretProvider,
    EnvSecretProvider,
    redact,
    resolve_secrets,
)
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.stores.sqlite import SqliteStore
from flowmonkey.testing import make_engine

from .conftest import MakeEngine
from .servers import Served
from .smtp import PASSWORD, USER, smtp_server

TOKEN = "tok-9f8e7d6c5b4a"
SECRETS = DictSecretProvider({"API_TOKEN": TOKEN, "SMTP_USER": USER, "SMTP_PASSWORD": PASSWORD})
LEAKS = (TOKEN, PASSWORD)


async def test_resolve_and_redact_units(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"a": "Bearer {{ secrets.API_TOKEN }}", "b": ["{{secrets.api_token}}", 3]}
    resolved, values = await resolve_secrets(config, DictSecretProvider({"API_TOKEN": "v"}))
    assert resolved == {"a": "Bearer v", "b": ["v", 3]}
    assert values == ["v"]
    assert redact({"k": "xvx", "v": ["v"]}, ["v"]) == {"k": "x***x", "***": ["***"]}
    assert redact("ab abc", ["ab", "abc"]) == "*** ***"  # the longer secret first
    monkeypatch.setenv("FLOWMONKEY_SECRET_API_TOKEN", "from-env")
    assert await EnvSecretProvider().get_secret("api_token") == "from-env"
    assert await EnvSecretProvider().get_secret("missing") is None


def test_dict_provider_from_files(tmp_path: Path) -> None:
    env = tmp_path / "secrets.env"
    env.write_text("# comment\nAPI_TOKEN = abc\n\nOTHER=x=y\n")
    provider = DictSecretProvider.from_file(env)
    assert "abc" not in repr(provider)
    js = tmp_path / "secrets.json"
    js.write_text('{"API_TOKEN": "abc"}')
    assert DictSecretProvider.from_file(js)._values == {"API_TOKEN": "abc"}
    bad = tmp_path / "bad.env"
    bad.write_text("no equals sign\n")
    with pytest.raises(ValueError, match="NAME=value"):
        DictSecretProvider.from_file(bad)


async def test_env_provider_is_the_default(
    make: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWMONKEY_SECRET_GREETING", "hush")
    flow = (
        FlowBuilder("f")
        .step(
            "s",
            "set",
            config={"values": {"g": "{{ secrets.GREETING }}!", "n": 1}},
            output_key="out",
        )
        .build()
    )
    seen: list[Any] = []

    @handler("spy")
    async def spy(ctx: Any) -> Any:
        seen.append(ctx.config)
        return None

    spy_flow = FlowBuilder("spy").step("s", "spy", config={"k": "{{ secrets.GREETING }}"}).build()
    engine = make([flow, spy_flow], [spy])
    async with engine:
        result = await engine.start("f", {})
        assert result.context["out"] == {"g": "***!", "n": 1}
        await engine.start("spy", {})
    assert seen == [{"k": "hush"}]  # user handlers get the value, at run time only
    assert engine.flows.get("spy").steps["s"].config == {"k": "{{ secrets.GREETING }}"}


async def test_unknown_secret_fails_without_running_the_handler(make: MakeEngine) -> None:
    calls: list[Any] = []

    @handler("spy")
    async def spy(ctx: Any) -> Any:
        calls.append(ctx)

    flow = (
        FlowBuilder("f")
        .step("s", "spy", config={"k": "{{ secrets.NOPE }}"}, retry={"maxAttempts": 3})
        .build()
    )
    engine = make([flow], [spy], secrets=DictSecretProvider({}))
    async with engine:
        result = await engine.start("f", {})
    assert result.error.code == "SECRET_NOT_FOUND"
    assert result.error.message == 'secret "NOPE" is not defined'
    assert result.execution.history[-1].error["retryable"] is False
    assert calls == []


async def test_user_handler_leaks_are_redacted(make: MakeEngine) -> None:
    @handler("leaky")
    async def leaky(ctx: Any) -> Any:
        ctx.set("copied", {"token": ctx.config["token"]})
        if ctx.attempt == 1:
            raise RuntimeError(f"could not use {ctx.config['token']}")
        return {"echo": ctx.config["token"]}

    flow = (
        FlowBuilder("f")
        .step(
            "s",
            "leaky",
            config={"token": "{{ secrets.API_TOKEN }}"},
            output_key="out",
            retry={"maxAttempts": 1},
        )
        .build()
    )
    engine = make([flow], [leaky], secrets=SECRETS)
    async with engine:
        result = await engine.start("f", {})
        events = await engine.events(result.execution.id)
    assert result.status is ExecutionStatus.COMPLETED
    assert result.context["out"] == {"echo": "***"}
    assert result.context["copied"] == {"token": "***"}
    assert result.execution.history[0].error["message"] == "could not use ***"
    dumped = repr(result.execution) + repr(events)
    assert TOKEN not in dumped


# -- every standard handler with a secret, then grep the raw rows -----------------------


def all_handlers_flow(server: Served, smtp_port: int) -> Flow:
    auth = "Bearer {{ secrets.API_TOKEN }}"
    return (
        FlowBuilder("leak")
        .step("set", "set", config={"values": {"t": "{{ secrets.API_TOKEN }}"}}, output_key="set")
        .step("call", "http", output_key="call",
              config={"method": "POST", "url": server.url("/echo?key={{ secrets.API_TOKEN }}"),
                      "headers": {"Authorization": auth},
                      "json": {"token": "{{ secrets.API_TOKEN }}"}})
        .step("fail", "http", output_key="fail", on_failure="transform",
              config={"url": server.url("/status/404?key={{ secrets.API_TOKEN }}"),
                      "headers": {"Authorization": auth}})
        .step("transform", "transform", output_key="transform",
              config={"expression": "join('-', ['{{ secrets.API_TOKEN }}', input.x || 'y'])"})
        .step("log", "log", output_key="log",
              config={"message": "using {{ secrets.API_TOKEN }}",
                      "fields": {"auth": auth}})
        .step("mail", "email", output_key="mail",
              config={"host": "127.0.0.1", "port": smtp_port, "tls": "none",
                      "username": "{{ secrets.SMTP_USER }}",
                      "password": "{{ secrets.SMTP_PASSWORD }}",
                      "from": "f@example.com", "to": "to@example.com",
                      "subject": "token {{ secrets.API_TOKEN }}", "text": "body"})
        .step("hook", "webhook", output_key="hook", on_success=None,
              config={"url": server.url("/echo"), "headers": {"Authorization": auth},
                      "json": {"token": "{{ secrets.API_TOKEN }}"}})
        .build()
    )  # fmt: skip


async def run_leaky_flow(engine: Engine, caplog: pytest.LogCaptureFixture) -> str:
    async with engine:
        with caplog.at_level(logging.DEBUG, logger="flowmonkey"):
            waiting = await engine.start("leak", {})
        assert waiting.status is ExecutionStatus.WAITING, waiting.error
        ctx = waiting.context
        assert ctx["set"] == {"t": "***"}
        assert ctx["call"]["body"]["headers"]["authorization"] == "Bearer ***"
        assert ctx["call"]["body"]["body"] == '{"token":"***"}'
        assert ctx["transform"] == "***-y"
        assert ctx["log"]["message"] == "using ***"
        assert ctx["mail"]["accepted"] == ["to@example.com"]
        fail = next(r for r in waiting.execution.history if r.step_id == "fail")
        assert "key=***" in fail.error["message"]
        token = ctx["hook"]["callback_url"].rsplit("/", 1)[1]
        done = await engine.resume_by_token(token, {"ok": True})
        assert done.status is ExecutionStatus.COMPLETED
        # Everything the API would show: the execution, its events.
        shown = repr(done.execution) + repr(await engine.events(done.execution.id))
    for leak in LEAKS:
        assert leak not in shown
        assert leak not in caplog.text
    return shown


async def test_no_secret_in_sqlite_rows(
    tmp_path: Path, server: Served, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "leak.db"
    with smtp_server("none") as (inbox, port):
        engine = make_engine(
            [],
            [all_handlers_flow(server, port)],
            store=SqliteStore(db),
            options=EngineOptions(http_allow=("127.0.0.1",), base_url="http://x", secrets=SECRETS),
        )
        await run_leaky_flow(engine, caplog)
        assert inbox.messages[0][1]["Subject"] == f"token {TOKEN}"  # the secret did go out
    # The server really received the secret (it was used, not just hidden).
    assert any(TOKEN in r["headers"].get("authorization", "") for r in server.app.requests)
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = 0
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                rows += 1
                text = repr(row)
                for leak in LEAKS:
                    assert leak not in text, f"{table}: {text[:300]}"
        assert rows > 10  # the grep looked at real data
    finally:
        conn.close()
    for file in tmp_path.glob("leak.db*"):  # noqa: ASYNC240 - the file and its WAL, raw
        for leak in LEAKS:
            assert leak.encode() not in file.read_bytes()


@pytest.mark.postgres
async def test_no_secret_in_postgres_rows(
    postgres_dsn: str, server: Served, caplog: pytest.LogCaptureFixture
) -> None:
    from flowmonkey.stores.postgres import PostgresStore

    schema = f"fm_leak_{uuid.uuid4().hex[:12]}"
    try:
        with smtp_server("none") as (_inbox, port):
            engine = make_engine(
                [], [all_handlers_flow(server, port)],
                store=PostgresStore(postgres_dsn, schema=schema, min_size=1, max_size=2),
                options=EngineOptions(http_allow=("127.0.0.1",), base_url="http://x",
                                      secrets=SECRETS),
            )  # fmt: skip
            await run_leaky_flow(engine, caplog)
        async with await psycopg.AsyncConnection.connect(postgres_dsn) as conn:
            cur = await conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
            tables = [r[0] for r in await cur.fetchall()]
            rows = 0
            for table in tables:
                query = sql.SQL("SELECT t::text FROM {}.{} t").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
                for (text,) in await (await conn.execute(query)).fetchall():
                    rows += 1
                    for leak in LEAKS:
                        assert leak not in text, f"{table}: {text[:300]}"
            assert rows > 10
    finally:
        async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


async def test_log_line_is_redacted(make: MakeEngine, caplog: pytest.LogCaptureFixture) -> None:
    flow = (
        FlowBuilder("f")
        .step(
            "s",
            "log",
            config={
                "message": "t={{ secrets.API_TOKEN }}",
                "level": "warning",
                "fields": {"k": "{{ secrets.API_TOKEN }}"},
            },
        )
        .build()
    )
    engine = make([flow], secrets=SECRETS)
    async with engine:
        with caplog.at_level(logging.INFO, logger="flowmonkey"):
            await engine.start("f", {})
    (record,) = [r for r in caplog.records if r.name == "flowmonkey.steps"]
    assert record.getMessage() == "t=***"
    assert record.levelno == logging.WARNING
    assert record.fields == {"k": "***"}  # type: ignore[attr-defined]


async def test_library_logs_are_redacted(
    make: MakeEngine, server: Served, caplog: pytest.LogCaptureFixture
) -> None:
    # httpx logs every request URL at INFO: a secret in the query must not show there.
    flow = (
        FlowBuilder("f")
        .step("s", "http", config={"url": server.url("/json?key={{ secrets.API_TOKEN }}")})
        .build()
    )
    engine = make([flow], secrets=SECRETS)
    async with engine:
        with caplog.at_level(logging.DEBUG):
            result = await engine.start("f", {})
    assert result.status is ExecutionStatus.COMPLETED
    assert server.app.requests[-1]["query"] == {"key": TOKEN}  # it was sent
    assert any("key=***" in r.getMessage() for r in caplog.records if r.name == "httpx")
    assert TOKEN not in caplog.text
    assert not engine.services.log_filter.live  # nothing stays live after the step


def test_cli_output_never_shows_a_secret(tmp_path: Path) -> None:
    import yaml
    from click.testing import CliRunner

    from flowmonkey.cli import cli

    flow = {"id": "s", "version": "1.0.0", "initialStepId": "a", "steps": {
        "a": {"type": "set", "config": {"values": {"t": "{{ secrets.CLI_TOKEN }}"}},
              "outputKey": "out", "transitions": {"onSuccess": "b"}},
        "b": {"type": "log", "config": {"message": "t={{ secrets.CLI_TOKEN }}"},
              "transitions": {"onSuccess": None}}}}  # fmt: skip
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(flow))
    env = {"FLOWMONKEY_SECRET_CLI_TOKEN": "cli-s3cret-value"}
    store = f"sqlite:///{tmp_path}/x.db"
    runner = CliRunner()
    for args in (["run", str(path)], ["--json", "run", str(path)]):
        result = runner.invoke(cli, ["--store", store, *args], env=env)
        assert result.exit_code == 0, result.output
        assert "cli-s3cret-value" not in result.output + result.stderr
        assert "***" in result.output
    listed = runner.invoke(cli, ["--store", store, "--json", "list"], env=env)
    execution_id = json.loads(listed.stdout)["items"][0]["id"]
    for args in (["status", execution_id], ["events", execution_id], ["history", execution_id]):
        shown = runner.invoke(cli, ["--store", store, "--json", *args], env=env)
        assert "cli-s3cret-value" not in shown.output + shown.stderr, args
