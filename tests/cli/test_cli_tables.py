"""``flowmonkey tables create|list|rows|export``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from clitools import Invoke

SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {"order_id": {"type": "string"}, "total": {"type": "number"}},
        "required": ["order_id"],
    }
)


def _create(invoke: Invoke) -> None:
    result = invoke("tables", "create", "orders", "--schema", SCHEMA, "--index", "total")
    assert result.exit_code == 0, result.output
    assert 'table "orders" created' in result.output


async def _insert(store_url: str, rows: list[tuple[str, float, str]]) -> None:
    from flowmonkey.engine.engine import Engine
    from flowmonkey.stores import open_store

    async with Engine(open_store(store_url)) as engine:
        for oid, total, tenant in rows:
            await engine.tables.insert("orders", {"order_id": oid, "total": total},
                                       tenant_id=tenant)  # fmt: skip


def test_create_list_and_a_refused_change(invoke: Invoke) -> None:
    _create(invoke)
    again = invoke("tables", "create", "orders", "--schema", SCHEMA, "--index", "total")
    assert again.exit_code == 0 and "already exists" in again.output
    changed = invoke("tables", "create", "orders", "--schema", SCHEMA)
    assert changed.exit_code == 2 and "never changes" in changed.output
    listed = invoke("tables", "list", "--json")
    assert [t["name"] for t in json.loads(listed.output)["items"]] == ["orders"]
    bad = invoke("tables", "create", "x", "--schema", '{"type": "object"}', "--index", "nope")
    assert bad.exit_code == 2 and "indexed[0]" in bad.output


def test_rows_filters_and_export(invoke: Invoke, store_url: str, tmp_path: Path) -> None:
    import asyncio

    _create(invoke)
    asyncio.run(_insert(store_url, [("a", 10, "acme"), ("b", 20, "acme"), ("c", 30, "globex")]))
    page = invoke("tables", "rows", "orders", "--where", "total:gt:10", "--json")
    assert [r["data"]["order_id"] for r in json.loads(page.output)["items"]] == ["c", "b"]
    mine = invoke("tables", "rows", "orders", "--tenant", "acme", "--order", "total", "--json")
    assert [r["data"]["order_id"] for r in json.loads(mine.output)["items"]] == ["a", "b"]
    human = invoke("tables", "rows", "orders", "--limit", "1")
    assert "next cursor:" in human.output
    out = tmp_path / "orders.csv"
    exported = invoke("tables", "export", "orders", "--format", "csv", "-o", str(out))
    assert exported.exit_code == 0, exported.output
    table = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["order_id"], r["total"], r["tenant_id"]) for r in table] == [
        ("a", "10", "acme"), ("b", "20", "acme"), ("c", "30", "globex"),
    ]  # fmt: skip
    lines = invoke("tables", "export", "orders", "--where", "order_id:b")
    assert [json.loads(x)["data"]["order_id"] for x in lines.output.splitlines()] == ["b"]
    missing = invoke("tables", "rows", "nope")
    assert missing.exit_code == 2 and 'Table "nope" not found' in missing.output
