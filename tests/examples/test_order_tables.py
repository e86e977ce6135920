"""examples/order_tables end to end: the CLI commands of docs/tables.md, then the API."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from flowmonkey import Engine, open_store
from flowmonkey.api import create_app
from flowmonkey.cli import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FOLDER = "examples/order_tables"


def _cli(runner: CliRunner, *args: str) -> Result:
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def _run(runner: CliRunner, store: str, name: str) -> Result:
    return _cli(runner, "--store", store, "run", f"{FOLDER}/flow.yaml",
                "--handlers", f"{FOLDER}/handlers.py", "--input", f"@{FOLDER}/{name}")  # fmt: skip


def test_orders_flow_fills_the_orders_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(EXAMPLES.parent)
    store = f"sqlite:///{tmp_path}/shop.db"
    runner = CliRunner()
    missing = _run(runner, store, "input.json")
    assert missing.exit_code == 2 and 'Table "orders" not found' in missing.output
    created = _cli(runner, "--store", store, "tables", "create", "orders",
                   "--schema", f"@{FOLDER}/orders-table.json",
                   "--index", "total", "--index", "status")  # fmt: skip
    assert created.exit_code == 0, created.output
    assert _run(runner, store, "input.json").exit_code == 0
    assert _run(runner, store, "input-declined.json").exit_code == 1

    paid = _cli(runner, "--store", store, "tables", "rows", "orders", "--where", "status:paid",
                "--where", "total:gt:20", "--json")  # fmt: skip
    (row,) = json.loads(paid.stdout)["items"]
    assert row["data"] == {"order_id": "A-1001", "customer": "ada@example.com", "total": 28.0,
                           "status": "paid", "payment_id": "pay-A-1001"}  # fmt: skip
    exported = _cli(runner, "--store", store, "tables", "export", "orders", "--format", "csv")
    table = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["order_id"], r["status"], r["error"]) for r in table] == [
        ("A-1001", "paid", ""), ("A-1002", "declined", "CARD_DECLINED"),
    ]  # fmt: skip

    asyncio.run(_query_through_the_api(store))


async def _query_through_the_api(store: str) -> None:
    app = create_app(Engine(open_store(store)), auth=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            found = await client.get(
                "/api/v1/tables/orders/rows", params={"where": "status:declined"}
            )
            assert [r["data"]["order_id"] for r in found.json()["items"]] == ["A-1002"]
            as_csv = await client.get(
                "/api/v1/tables/orders/rows", params={"order": "-total"},
                headers={"Accept": "text/csv"},
            )  # fmt: skip
            assert [r["order_id"] for r in csv.DictReader(io.StringIO(as_csv.text))] == [
                "A-1002", "A-1001",
            ]  # fmt: skip
