"""``/api/v1/tables``: admin-defined tables, tenant-scoped rows, queries and exports."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from .conftest import Api

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "total": {"type": "number"}},
    "required": ["order_id", "total"],
}


async def _orders(api: Api) -> None:
    response = await api["admin"].post(
        "/api/v1/tables", json={"name": "orders", "schema": SCHEMA, "indexed": ["total"]}
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/v1/tables/orders"


async def test_only_admin_keys_define_tables_and_definitions_never_change(api: Api) -> None:
    body = {"name": "orders", "schema": SCHEMA}
    assert (await api["acme"].post("/api/v1/tables", json=body)).status_code == 403
    await _orders(api)
    again = await api["admin"].post("/api/v1/tables", json={**body, "indexed": ["total"]})
    assert again.status_code == 200
    changed = await api["admin"].post("/api/v1/tables", json=body)
    assert changed.status_code == 409 and changed.json()["code"] == "TABLE_CONFLICT"
    bad = await api["admin"].post(
        "/api/v1/tables", json={"name": "Bad Name", "schema": {"type": "array"}, "indexed": ["x"]}
    )
    assert bad.status_code == 422
    assert {e["path"] for e in bad.json()["errors"]} == {"name", "schema.type", "indexed[0]"}
    listed = await api["reader"].get("/api/v1/tables")
    assert [t["name"] for t in listed.json()["items"]] == ["orders"]
    one = await api["reader"].get("/api/v1/tables/orders")
    assert one.json()["indexed"] == ["total"]
    missing = await api["reader"].get("/api/v1/tables/nope")
    assert missing.status_code == 404 and missing.json()["code"] == "TABLE_NOT_FOUND"


async def test_rows_are_validated_stamped_and_seen_only_by_their_tenant(api: Api) -> None:
    await _orders(api)
    for who, oid, total in (("acme", "a1", 5), ("acme", "a2", 50), ("globex", "g1", 7)):
        response = await api[who].post(
            "/api/v1/tables/orders/rows", json={"data": {"order_id": oid, "total": total}}
        )
        assert response.status_code == 201, response.text
        assert response.json()["tenant_id"] == who
    bad = await api["acme"].post("/api/v1/tables/orders/rows", json={"data": {"total": "x"}})
    assert bad.status_code == 422 and bad.json()["code"] == "ROW_INVALID"
    assert {e["path"] for e in bad.json()["errors"]} == {"order_id", "total"}
    assert (
        await api["reader"].post("/api/v1/tables/orders/rows", json={"data": {}})
    ).status_code == 403
    other = await api["acme"].post(
        "/api/v1/tables/orders/rows",
        json={"data": {"order_id": "x", "total": 1}, "tenant_id": "globex"},
    )
    assert other.status_code == 403

    acme = (await api["acme"].get("/api/v1/tables/orders/rows")).json()
    assert [r["data"]["order_id"] for r in acme["items"]] == ["a2", "a1"]
    assert (await api["acme"].get("/api/v1/tables/orders/rows?tenant_id=globex")).status_code == 403
    every = (await api["admin"].get("/api/v1/tables/orders/rows")).json()
    assert len(every["items"]) == 3
    globex = (await api["admin"].get("/api/v1/tables/orders/rows?tenant_id=globex")).json()
    assert [r["data"]["order_id"] for r in globex["items"]] == ["g1"]


async def test_filters_order_and_cursor_pages(api: Api) -> None:
    await _orders(api)
    for i in range(7):
        await api["acme"].post(
            "/api/v1/tables/orders/rows", json={"data": {"order_id": f"o{i}", "total": i * 10}}
        )
    client = api["acme"]
    found = await client.get(
        "/api/v1/tables/orders/rows",
        params={"where": ["total:gte:20", "total:lt:60"], "order": "-total"},
    )
    assert [r["data"]["total"] for r in found.json()["items"]] == [50, 40, 30, 20]
    exact = await client.get("/api/v1/tables/orders/rows", params={"where": "order_id:o3"})
    assert [r["data"]["total"] for r in exact.json()["items"]] == [30]
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"order": "total", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/tables/orders/rows", params=params)).json()
        seen += [r["data"]["total"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [0, 10, 20, 30, 40, 50, 60]
    not_indexed = await client.get("/api/v1/tables/orders/rows", params={"where": "order_id:gt:a"})
    assert not_indexed.status_code == 422
    bad_cursor = await client.get("/api/v1/tables/orders/rows", params={"cursor": "zzz"})
    assert bad_cursor.status_code == 400 and bad_cursor.json()["code"] == "BAD_CURSOR"


async def test_csv_and_json_lines_exports_stream_the_tenants_rows(api: Api) -> None:
    await _orders(api)
    for who, oid in (("acme", "a1"), ("globex", "g1"), ("acme", "a2")):
        await api[who].post(
            "/api/v1/tables/orders/rows", json={"data": {"order_id": oid, "total": 1}}
        )
    as_csv = await api["acme"].get("/api/v1/tables/orders/rows", headers={"Accept": "text/csv"})
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["order_id"] for r in table] == ["a1", "a2"]
    assert {r["tenant_id"] for r in table} == {"acme"}
    lines = await api["admin"].get(
        "/api/v1/tables/orders/rows", headers={"Accept": "application/x-ndjson"}
    )
    rows = [orjson.loads(line) for line in lines.text.splitlines()]
    assert [r["data"]["order_id"] for r in rows] == ["a1", "g1", "a2"]
