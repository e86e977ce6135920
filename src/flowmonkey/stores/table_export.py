"""Exports of a table's rows as JSON Lines or CSV, streamed in chunks of bytes.

One shape everywhere: a JSON line is ``TableRow.to_dict()`` (``id, data, tenant_id,
execution_id, step_id, created_at``); a CSV has a header ``id, tenant_id, execution_id,
step_id, created_at`` then one column per property of the table's schema (objects and
arrays as JSON, booleans ``true``/``false``, missing values empty; fields outside the
schema's ``properties`` are only in JSON Lines). ``created_at`` is ISO 8601 in UTC with
microseconds.

The SQL stores have the database format each row (``json_object`` / ``json_build_object``,
PostgreSQL's ``COPY ... CSV``) so a million rows never become a million Python objects;
the memory store formats in Python. Memory stays at one batch either way.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import orjson

from flowmonkey.model.tables import TableDef, TableRow, field_type

__all__ = [
    "ExportFormat",
    "csv_chunk",
    "csv_header",
    "pg_csv_columns",
    "pg_jsonl_column",
    "python_export",
    "safe_name",
    "sqlite_csv_columns",
    "sqlite_jsonl_column",
]

ExportFormat = Literal["jsonl", "csv"]

_META = ["id", "tenant_id", "execution_id", "step_id", "created_at"]


def fields_of(table: TableDef) -> list[str]:
    """The CSV's data columns: the schema's top-level properties, in order."""
    props = table.schema.get("properties")
    return [str(name) for name in props] if isinstance(props, dict) else []


def csv_header(table: TableDef) -> bytes:
    """The CSV header line."""
    return csv_chunk([[*_META, *fields_of(table)]])


def csv_chunk(rows: Sequence[Sequence[Any]]) -> bytes:
    """CSV lines (``\\n`` endings; ``None`` is an empty cell)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def _iso(row: TableRow) -> str:
    return row.created_at.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


async def python_export(
    batches: AsyncIterator[list[TableRow]], table: TableDef, format: ExportFormat
) -> AsyncIterator[bytes]:
    """Format batches of rows in Python (the memory store)."""
    fields = fields_of(table)
    if format == "csv":
        yield csv_header(table)
    async for batch in batches:
        if format == "csv":
            yield csv_chunk(
                [
                    [
                        r.id,
                        r.tenant_id,
                        r.execution_id,
                        r.step_id,
                        _iso(r),
                        *[_cell(r.data.get(f)) if safe_name(f) else None for f in fields],
                    ]
                    for r in batch
                ]
            )
        else:
            yield b"".join(
                orjson.dumps(
                    {**r.to_dict(), "created_at": _iso(r)}, option=orjson.OPT_APPEND_NEWLINE
                )
                for r in batch
            )


# -- SQLite: values formatted by SQLite's JSON functions ------------------------------------

_SQ_ISO = (
    "strftime('%Y-%m-%dT%H:%M:%S', created_at / 1000000, 'unixepoch') "
    "|| printf('.%06d+00:00', created_at % 1000000)"
)


def sqlite_jsonl_column() -> str:
    """One JSON document per row (the API's row shape)."""
    return (
        "json_object('id', id, 'data', json(data), 'tenant_id', tenant_id, "
        f"'execution_id', execution_id, 'step_id', step_id, 'created_at', {_SQ_ISO})"
    )


def sqlite_csv_columns(table: TableDef) -> str:
    """The CSV's columns as SQL values (booleans spelled as in JSON)."""
    cols = ["id", "tenant_id", "execution_id", "step_id", _SQ_ISO]
    for name in fields_of(table):
        if not safe_name(name):
            cols.append("NULL")
            continue
        path = f"'$.{name}'"
        if field_type(table, name) in ("string", "number", "integer", "object", "array"):
            # Rows were validated: no boolean here, so one JSON lookup is enough.
            cols.append(f"json_extract(data, {path})")
            continue
        cols.append(
            f"CASE json_type(data, {path}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
            f"ELSE json_extract(data, {path}) END"
        )
    return ", ".join(cols)


# -- PostgreSQL ------------------------------------------------------------------------------

_PG_ISO = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"


def pg_jsonl_column() -> str:
    """One JSON document per row (the API's row shape), as text."""
    return (
        "json_build_object('id', id, 'data', data, 'tenant_id', tenant_id, "
        f"'execution_id', execution_id, 'step_id', step_id, 'created_at', {_PG_ISO})::text"
    )


def pg_csv_columns(table: TableDef) -> str:
    """The CSV's columns (``->>`` gives JSON text for objects, ``true``/``false``)."""
    cols = ["id", "tenant_id", "execution_id", "step_id", _PG_ISO]
    cols += [f"data->>'{name}'" if safe_name(name) else "NULL" for name in fields_of(table)]
    return ", ".join(cols)


_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def safe_name(name: str) -> bool:
    """Whether a property can be a CSV column: its name goes into SQL text and a JSON
    path, so only letters, digits and ``_`` (other properties get an empty column)."""
    return bool(name) and _SAFE.issuperset(name)
