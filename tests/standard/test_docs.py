"""The flows in docs/handlers/ are valid, and the self-contained ones run as shown."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from flowmonkey import HandlerRegistry
from flowmonkey.cli import cli
from flowmonkey.definitions.validate import validate_flow
from flowmonkey.model.flow import Flow

DOCS = Path(__file__).resolve().parents[2] / "docs" / "handlers"
PAGES = ["http", "transform", "set", "log", "email", "webhook"]


def flow_of(page: str) -> tuple[dict[str, Any], str]:
    text = (DOCS / f"{page}.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block is not None, f"{page}.md has no yaml example"
    return yaml.safe_load(block.group(1)), text


@pytest.mark.parametrize("page", PAGES)
def test_every_page_has_a_valid_flow(page: str) -> None:
    data, _ = flow_of(page)
    flow = Flow.from_dict(data)
    assert [i for i in validate_flow(flow) if i.severity == "error"] == []
    assert HandlerRegistry().check_flow_configs(flow) == []
    assert page in {s.type for s in flow.steps.values()}


@pytest.mark.parametrize("page", ["transform", "set", "log"])
def test_self_contained_examples_run_as_shown(page: str, tmp_path: Path) -> None:
    data, text = flow_of(page)
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(data))
    command = re.search(r"\$ flowmonkey run \S+ --input '(.*?)'\n", text)
    assert command is not None
    result = CliRunner().invoke(
        cli, ["--store", f"sqlite:///{tmp_path}/x.db", "--json", "run", str(path),
              "--input", command.group(1)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    context = json.loads(result.stdout)["context"]
    shown = {
        "transform": ("picked", {"order": 7, "skus": ["A"], "count": 2}),
        "set": (
            "card",
            {"name": "Ada Lovelace", "email": "ada@example.com", "tier": "gold", "tags": ["vip"]},
        ),
    }
    if page in shown:
        key, value = shown[page]
        assert context[key] == value
        assert json.dumps(value)[:20] in text
    else:
        assert context["line"]["message"] == "order A-1 shipped to Oslo"
        assert context["line"]["fields"] == {"carrier": "DHL"}
