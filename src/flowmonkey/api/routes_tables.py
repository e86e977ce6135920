"""``/api/v1/tables``: data tables (admin defines them), their rows (tenant-scoped),
queried page by page or exported as CSV / JSON Lines (streamed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response, StreamingResponse

from flowmonkey.api.auth import Principal, create_tenant, list_tenant, require
from flowmonkey.api.deps import json, state_of
from flowmonkey.api.paging import after_id, page_by_id
from flowmonkey.api.problems import Problem
from flowmonkey.errors import FlowMonkeyError
from flowmonkey.model.tables import TableDef

__all__ = ["router", "table_call"]

router = APIRouter(prefix="/api/v1", tags=["tables"])

T = TypeVar("T")

_STATUS = {"TABLE_NOT_FOUND": 404, "TABLE_CONFLICT": 409, "BAD_CURSOR": 400}


async def _call(awaitable: Awaitable[T]) -> T:
    """Await an engine call; table errors become their HTTP status (others: the app's
    usual mapping)."""
    try:
        return await awaitable
    except FlowMonkeyError as exc:
        status = _STATUS.get(exc.code)
        if status is None:
            raise
        raise Problem(status, exc.message, code=exc.code)


class TableIn(BaseModel):
    """A new table."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63, description="[a-z][a-z0-9_]*")
    schema_: dict[str, Any] = Field(alias="schema", description="JSON Schema of a row")
    indexed: list[str] = Field(default_factory=list, max_length=32)


class TableOut(BaseModel):
    """A table."""

    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    indexed: list[str]
    created_at: str | None


class TablePage(BaseModel):
    """Every table."""

    items: list[TableOut]
    next_cursor: str | None = None


class RowIn(BaseModel):
    """A row inserted by hand (validated against the table's schema)."""

    model_config = ConfigDict(extra="forbid")

    data: dict[str, Any]
    tenant_id: str | None = Field(default=None, min_length=1, max_length=200)


class RowOut(BaseModel):
    """A row."""

    id: str
    data: dict[str, Any]
    tenant_id: str | None
    execution_id: str | None = None
    step_id: str | None = None
    created_at: str


class RowPage(BaseModel):
    """One page of rows."""

    items: list[RowOut]
    next_cursor: str | None


def _table_json(table: TableDef) -> dict[str, Any]:
    return table.to_dict()


@router.get("/tables", response_model=TablePage, summary="List the data tables")
async def list_tables(
    request: Request,
    principal: Annotated[Principal, Depends(require("read"))],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """Tables by name, a page at a time (tables are shared by all tenants; their rows
    are not). Tables are few (definitions, not data): the page is cut from the list."""
    after = after_id(cursor, "tables")
    found = await _call(state_of(request).engine.tables.list())
    # Sorted here, by code point: the order "after" compares in, whatever the store's collation.
    rest = sorted((t for t in found if after is None or t.name > after), key=lambda t: t.name)
    items, next_cursor = page_by_id(rest, limit, "tables", lambda t: t.name)
    return json({"items": [_table_json(t) for t in items], "next_cursor": next_cursor})


@router.post(
    "/tables",
    status_code=201,
    response_model=TableOut,
    summary="Create a data table (admin)",
    responses={200: {"description": "The same table already exists"}},
)
async def create_table(
    body: TableIn, request: Request, principal: Annotated[Principal, Depends(require("admin"))]
) -> Response:
    """201 when created, 200 when the identical table exists, 409 when a table of that
    name has another definition (a definition never changes), 422 for a bad one."""
    table, created = await _call(
        state_of(request).engine.tables.create(body.name, body.schema_, body.indexed)
    )
    return json(
        _table_json(table),
        201 if created else 200,
        {"Location": f"/api/v1/tables/{table.name}"} if created else None,
    )


@router.get("/tables/{name}", response_model=TableOut, summary="One data table")
async def get_table(
    name: str, request: Request, principal: Annotated[Principal, Depends(require("read"))]
) -> Response:
    """The table's schema and indexed fields."""
    return json(_table_json(await _call(state_of(request).engine.tables.get(name))))


_EXPORTS: dict[str, Literal["csv", "jsonl"]] = {
    "text/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
}


@router.get(
    "/tables/{name}/rows",
    response_model=RowPage,
    summary="Query rows (Accept: text/csv or application/x-ndjson exports them all)",
    responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
)
async def list_rows(
    name: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("read"))],
    where: Annotated[
        list[str],
        Query(
            max_length=20,
            description="field:value or field:op:value (op: eq ne gt gte lt lte; comparisons "
            "need an indexed field); repeatable, all must match",
        ),
    ] = [],  # noqa: B006 - FastAPI reads the default, it is never mutated
    order: Annotated[
        str | None, Query(max_length=70, description="field, -field, created_at, -created_at")
    ] = None,
    tenant_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """A page of the caller's tenant's rows, newest first unless ``order`` says
    otherwise. With ``Accept: text/csv`` (or ``application/x-ndjson``) every matching row
    is streamed instead (oldest first by default; constant memory)."""
    tables = state_of(request).engine.tables
    tenant = list_tenant(principal, tenant_id)
    accept = request.headers.get("accept", "").split(",")[0].split(";")[0].strip().lower()
    export = _EXPORTS.get(accept)
    if export is not None:
        chunks = await _call(
            tables.export(
                name,
                export,
                where=where,
                order=order or "created_at",
                tenant_id=tenant,
            )
        )
        media = "text/csv; charset=utf-8" if export == "csv" else "application/x-ndjson"
        return StreamingResponse(_guarded(chunks), media_type=media)
    page = await _call(
        tables.rows(name, where=where, order=order, tenant_id=tenant, limit=limit, cursor=cursor)
    )
    return json({"items": [r.to_dict() for r in page.items], "next_cursor": page.next_cursor})


async def _guarded(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        if chunk:
            yield chunk


@router.post("/tables/{name}/rows", status_code=201, response_model=RowOut, summary="Insert a row")
async def insert_row(
    name: str,
    body: RowIn,
    request: Request,
    principal: Annotated[Principal, Depends(require("write"))],
) -> Response:
    """Insert one row by hand: validated against the table's schema (422 with every
    problem); stamped with the caller's tenant."""
    tenant = create_tenant(principal, body.tenant_id)
    row = await _call(state_of(request).engine.tables.insert(name, body.data, tenant_id=tenant))
    return json(row.to_dict(), 201)


table_call = _call
"""Await a tables call with table errors as their HTTP problems (the dashboard uses it)."""
