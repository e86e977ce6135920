"""Registration of the standard handlers, transform/set/log, config validation, CLI options."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from flowmonkey import FlowBuilder, HandlerRegistry, handler
from flowmonkey.cli import cli
from flowmonkey.handlers.standard import STANDARD_TYPES

from .conftest import MakeEngine
from .servers import Served

# -- registration -------------------------------------------------------------------------


def test_registered_by_default_and_opt_out() -> None:
    assert STANDARD_TYPES == ("http", "transform", "set", "log", "email", "webhook")
    registry = HandlerRegistry()
    assert registry.types() == list(STANDARD_TYPES)
    assert all(registry.is_standard(t) for t in STANDARD_TYPES)
    assert HandlerRegistry(standard=False).types() == []
    for t in STANDARD_TYPES:
        meta = registry.metadata(t)
        assert meta is not None and meta.config_schema is not None and meta.description


def test_a_user_handler_of_the_same_type_wins_with_a_warning() -> None:
    @handler("http")
    async def my_http(ctx: Any) -> Any:
        return "mine"

    registry = HandlerRegistry()
    with pytest.warns(UserWarning, match='"http" replaces the standard handler'):
        registry.register(my_http)
    assert registry.get("http").fn is my_http  # type: ignore[union-attr]
    assert not registry.is_standard("http")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(my_http)  # the user's own handler is not replaced silently
    with pytest.warns(UserWarning):
        HandlerRegistry([my_http])


# -- transform, set, log --------------------------------------------------------------------


def one(step_type: str, config: dict[str, Any], **step: Any) -> Any:
    return FlowBuilder("f").step("s", step_type, config=config, output_key="out", **step).build()


async def test_transform(make: MakeEngine) -> None:
    flow = one(
        "transform",
        {"expression": "{skus: input[?qty > `1`].sku, id: context.id}"},
        input={"type": "key", "key": "items"},
    )
    engine = make([flow])
    async with engine:
        items = [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}, {"sku": "C", "qty": 5}]
        result = await engine.start("f", {"items": items, "id": 7})
    assert result.context["out"] == {"skus": ["A", "C"], "id": 7}


async def test_transform_runtime_error(make: MakeEngine) -> None:
    engine = make([one("transform", {"expression": "abs(context.name)"})])
    async with engine:
        result = await engine.start("f", {"name": "not a number"})
    assert result.error.code == "TRANSFORM_ERROR"
    assert result.execution.history[-1].error["retryable"] is False


async def test_set_renders_values(make: MakeEngine) -> None:
    config = {
        "values": {
            "name": "${context.user.name}",
            "const": 42,
            "list": ["${context.n}"],
            "text": "hi ${context.user.name}",
        }
    }
    engine = make([one("set", config)])
    async with engine:
        result = await engine.start("f", {"user": {"name": "Ann"}, "n": 3})
    assert result.context["out"] == {"name": "Ann", "const": 42, "list": [3], "text": "hi Ann"}


async def test_log_writes_a_structured_line(
    make: MakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make([one("log", {"message": "order ${context.id}", "fields": {"n": "${context.n}"}})])
    async with engine:
        with caplog.at_level(logging.INFO, logger="flowmonkey"):
            result = await engine.start("f", {"id": "A-1", "n": 2})
    line = result.context["out"]
    assert line["message"] == "order A-1"
    assert line["fields"] == {"n": 2}
    assert line["level"] == "info"
    assert line["execution_id"] == result.execution.id
    (record,) = [r for r in caplog.records if r.name == "flowmonkey.steps"]
    assert record.getMessage() == "order A-1"
    assert record.step_id == "s"  # type: ignore[attr-defined]


# -- config validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step_type", "config", "fragment"),
    [
        ("http", {}, "url"),
        ("http", {"url": "http://x", "method": "FETCH"}, "method"),
        ("http", {"url": "http://x", "timeout": "soon"}, "timeout"),
        ("http", {"url": "http://x", "json": {}, "body": "x"}, "json/body"),
        ("http", {"url": "gopher://x"}, "only http and https"),
        ("http", {"url": "http://x", "expect": [999]}, "expect"),
        ("http", {"url": "http://x", "surprise": 1}, "surprise"),
        ("transform", {"expression": "foo[?"}, "invalid JMESPath"),
        ("transform", {}, "expression"),
        ("set", {"values": 3}, "values"),
        ("log", {"message": "m", "level": "loud"}, "level"),
        ("email", {"host": "h", "from": "a@b", "to": "c@d", "subject": "s"}, "text"),
        (
            "email",
            {"host": "h", "from": "a@b", "to": "c@d", "subject": "s", "text": "t", "tls": "ssl"},
            "tls",
        ),
        ("webhook", {"timeout": "eventually"}, "timeout"),
    ],
)
def test_bad_configs_are_rejected_by_validate(
    tmp_path: Path, step_type: str, config: dict[str, Any], fragment: str
) -> None:
    flow = {
        "id": "bad",
        "version": "1.0.0",
        "initialStepId": "s",
        "steps": {"s": {"type": step_type, "config": config}},
    }
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(flow))
    result = CliRunner().invoke(cli, ["--json", "validate", str(path)])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    issues = doc["files"][0]["issues"]
    assert any(fragment in i["path"] + i["message"] for i in issues), issues
    assert all(i["path"].startswith("steps.s.config") for i in issues), issues


def test_good_configs_pass_validate(tmp_path: Path) -> None:
    flow = {"id": "good", "version": "1.0.0", "initialStepId": "a", "steps": {
        "a": {"type": "http", "config": {"url": "https://api.example.com/${context.id}",
                                          "timeout": "5s", "expect": [200, 404]},
              "transitions": {"onSuccess": "b"}},
        "b": {"type": "transform", "config": {"expression": "input.body"},
              "transitions": {"onSuccess": "c"}},
        "c": {"type": "log", "config": {"message": "done"}, "transitions": {"onSuccess": None}},
    }}  # fmt: skip
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(flow))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output


# -- CLI: --http-allow / FLOWMONKEY_HTTP_ALLOW --------------------------------------------------


def write_http_flow(tmp_path: Path, server: Served) -> Path:
    flow = {"id": "call", "version": "1.0.0", "initialStepId": "get", "steps": {
        "get": {"type": "http", "config": {"url": server.url("/json")}, "outputKey": "resp",
                "transitions": {"onSuccess": None}}}}  # fmt: skip
    path = tmp_path / "call.yaml"
    path.write_text(yaml.safe_dump(flow))
    return path


@pytest.mark.parametrize("how", ["none", "option", "env"])
def test_cli_run_http_allow(tmp_path: Path, server: Served, how: str) -> None:
    path = write_http_flow(tmp_path, server)
    args = ["--store", f"sqlite:///{tmp_path}/x.db", "--json", "run", str(path)]
    env = {}
    if how == "option":
        args += ["--http-allow", "10.0.0.0/8", "--http-allow", "127.0.0.1"]
    elif how == "env":
        env["FLOWMONKEY_HTTP_ALLOW"] = "api.internal, 127.0.0.0/8"
    result = CliRunner().invoke(cli, args, env=env)
    doc = json.loads(result.stdout)
    if how == "none":
        assert doc["status"] == "failed", doc
        assert doc["error"]["code"] == "HTTP_BLOCKED"
    else:
        assert doc["status"] == "completed", doc
        assert doc["context"]["resp"]["body"]["hello"] == "world"


def test_worker_accepts_http_allow_and_base_url() -> None:
    result = CliRunner().invoke(cli, ["worker", "--help"])
    assert "--http-allow" in result.output and "--base-url" in result.output
    assert "FLOWMONKEY_HTTP_ALLOW" in result.output


def test_cli_run_refuses_a_bad_config_before_running(tmp_path: Path) -> None:
    flow = {
        "id": "bad",
        "version": "1.0.0",
        "initialStepId": "s",
        "steps": {"s": {"type": "transform", "config": {"expression": "a[?"}}},
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(flow))
    result = CliRunner().invoke(cli, ["--store", f"sqlite:///{tmp_path}/x.db", "run", str(path)])
    assert result.exit_code == 2, result.output
    assert "steps.s.config.expression" in result.stderr
    assert "invalid JMESPath" in result.stderr


def test_cli_run_base_url_for_webhooks(tmp_path: Path) -> None:
    flow = {"id": "hook", "version": "1.0.0", "initialStepId": "w",
            "steps": {"w": {"type": "webhook", "outputKey": "reply",
                            "transitions": {"onSuccess": None}}}}  # fmt: skip
    path = tmp_path / "hook.yaml"
    path.write_text(yaml.safe_dump(flow))
    args = ["--store", f"sqlite:///{tmp_path}/x.db", "--json", "run", str(path)]
    result = CliRunner().invoke(cli, [*args, "--base-url", "https://flows.example.com/"])
    assert result.exit_code == 3, result.output
    url = json.loads(result.stdout)["context"]["reply"]["callback_url"]
    assert url.startswith("https://flows.example.com/api/v1/resume/")
    env = {"FLOWMONKEY_BASE_URL": "https://env.example.com"}
    result = CliRunner().invoke(cli, args, env=env)
    assert json.loads(result.stdout)["context"]["reply"]["callback_url"].startswith(
        "https://env.example.com/api/v1/resume/"
    )


def test_standard_schemas_are_valid_json_schemas() -> None:
    # The registry compiles them without the metaschema check (see HandlerRegistry).
    import jsonschema

    for t in STANDARD_TYPES:
        meta = HandlerRegistry().metadata(t)
        assert meta is not None and meta.config_schema is not None
        jsonschema.Draft202012Validator.check_schema(meta.config_schema)
