"""SQL of the data tables, for both SQL dialects (pure: text and parameters, no I/O).

Table and field names reach the SQL text only after ``TableDef.problems`` /
``parse_where`` accepted them (``[a-z][a-z0-9_]*`` and ``[A-Za-z_][A-Za-z0-9_]*``), so
they need no quoting; every value is a bound parameter.

Ordering treats a missing value as the smallest (SQLite's rule; PostgreSQL is told
``NULLS FIRST`` ascending and ``NULLS LAST`` descending), then insertion order, so a
cursor ``(value, seq)`` continues exactly after the last row of the previous page. The
memory store sorts the same way (``sort_key``).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from typing import Any, Literal

import orjson

from flowmonkey.model.tables import (
    RowFilter,
    RowQuery,
    TableDef,
    check_query,
    decode_row_cursor,
    field_type,
)

__all__ = [
    "SQLITE_INDEX_BATCH",
    "Dialect",
    "index_statements",
    "sqlite_insert_row",
    "sqlite_rows_table",
    "sqlite_table_statements",
    "matches",
    "row_query",
    "sort_key",
]

Dialect = Literal["sqlite", "postgres"]

_PG_CASTS = {"number": "numeric", "integer": "numeric", "boolean": "boolean", "string": "text"}
_SQL_OPS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
ROW_COLUMNS = "seq, id, table_name, tenant_id, execution_id, step_id, created_at, data"
_SQLITE_COLUMNS = "seq, id, tenant_id, execution_id, step_id, created_at, data"
SQLITE_INDEX_BATCH = 128
"""SQLite writes field-index entries for this many rows of a table at once (its batch
trigger): a row above the table's last multiple of it is not in the field indexes yet
(``indexed = 0``), and queries read those rows, at most ``SQLITE_INDEX_BATCH - 1``, with a
bounded scan of the primary key."""
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


def _index_name(*parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]
    return f"table_rows_f_{digest}"


def field_expr(dialect: Dialect, table: TableDef, name: str) -> str:
    """The SQL of a field's value: the exact expression its index is built on."""
    if dialect == "sqlite":
        return f"json_extract(data, '$.{name}')"
    if name in table.indexed:
        cast = _PG_CASTS[field_type(table, name) or "string"]
        return f"((data->>'{name}')::{cast})" if cast != "text" else f"(data->>'{name}')"
    return f"(data->'{name}')"


def _param(dialect: Dialect, table: TableDef, name: str) -> str:
    if dialect == "sqlite":
        return "?"
    if name in table.indexed:
        return f"%s::{_PG_CASTS[field_type(table, name) or 'string']}"
    return "%s::jsonb"


def _value(dialect: Dialect, table: TableDef, name: str, value: Any) -> Any:
    if dialect == "postgres" and name not in table.indexed:
        return orjson.dumps(value).decode()  # compared as jsonb (typed equality)
    return value


def index_statements(table: TableDef) -> list[str]:
    """PostgreSQL's ``CREATE INDEX`` statements for the table's indexed fields.

    Partial indexes, one per table and field on the typed expression, plus one led by
    ``tenant_id``. Rows of other tables never touch them. (SQLite: see
    ``sqlite_table_statements``.)
    """
    out = []
    for name in table.indexed:
        expr = field_expr("postgres", table, name)
        index = _index_name("postgres", table.name, name)
        out.append(
            f"CREATE INDEX IF NOT EXISTS {index} ON table_rows ({expr} NULLS FIRST, seq) "
            f"WHERE table_name = '{table.name}'"
        )
        out.append(
            f"CREATE INDEX IF NOT EXISTS {index}_t ON table_rows "
            f"(tenant_id, {expr} NULLS FIRST, seq) "
            f"WHERE table_name = '{table.name}' AND tenant_id IS NOT NULL"
        )
    return out


# -- SQLite: one rowid table per data table ----------------------------------------------


def sqlite_rows_table(name: str) -> str:
    """The SQLite table holding the rows of data table ``name`` (``rows_<name>``).

    Raises ``ValueError`` for a name that is not a table name (it goes into SQL text).
    """
    if _NAME.fullmatch(name) is None:
        raise ValueError(f"not a table name: {name!r}")
    return f"rows_{name}"


def sqlite_table_statements(table: TableDef) -> list[str]:
    """The SQLite schema of one data table's rows (``IF NOT EXISTS``: idempotent).

    A rowid table of its own, ``seq`` being the rowid: a new row is the table's largest
    key, which SQLite appends to the last leaf page without rebalancing its neighbours
    (a WITHOUT ROWID table shared by all tables, clustered by ``(table_name, seq)``,
    rewrote 1.7 pages per appended row on average; this is 1.1). ``seq`` is the largest
    rowid plus one (rows are never deleted), so it is contiguous from 1.

    Field indexes are partial on ``indexed = 1``: a row is inserted with 0, outside them,
    and the insert of every SQLITE_INDEX_BATCH-th row (the trigger) flags the batch up to
    it, in the same transaction, which writes their index entries together: a few index
    pages per batch instead of one per row. So the rows with ``indexed = 0`` are exactly
    those above ``MAX(seq) / SQLITE_INDEX_BATCH * SQLITE_INDEX_BATCH``.
    """
    rows = sqlite_rows_table(table.name)
    out = [
        f"CREATE TABLE IF NOT EXISTS {rows} (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, "
        "tenant_id TEXT, execution_id TEXT, step_id TEXT, created_at INTEGER NOT NULL, "
        "data TEXT NOT NULL, indexed INTEGER NOT NULL DEFAULT 0)",
        # Partial: tenant-less rows (the usual embedded case) cost no index write.
        f"CREATE INDEX IF NOT EXISTS {_index_name('sqlite-tenant', table.name)} "
        f"ON {rows} (tenant_id, seq) WHERE tenant_id IS NOT NULL",
    ]
    for name in table.indexed:
        out.append(
            f"CREATE INDEX IF NOT EXISTS {_index_name('sqlite-batched', table.name, name)} "
            f"ON {rows} ({field_expr('sqlite', table, name)}, seq) WHERE indexed = 1"
        )
    if table.indexed:
        batch = SQLITE_INDEX_BATCH
        out.append(
            f"CREATE TRIGGER IF NOT EXISTS {_index_name('sqlite-batch', table.name)} "
            f"AFTER INSERT ON {rows} WHEN NEW.seq % {batch} = 0 BEGIN "
            f"UPDATE {rows} SET indexed = 1 WHERE seq > NEW.seq - {batch} AND seq <= NEW.seq "
            "AND indexed = 0; END"
        )
    return out


@functools.cache
def sqlite_insert_row(name: str) -> str:
    """``INSERT`` of one row into table ``name`` (parameters: id, tenant_id,
    execution_id, step_id, created_at, data); its ``seq`` is the next rowid."""
    return (
        f"INSERT INTO {sqlite_rows_table(name)} "
        "(id, tenant_id, execution_id, step_id, created_at, data) VALUES (?, ?, ?, ?, ?, ?)"
    )


def row_query(
    dialect: Dialect,
    table: TableDef,
    query: RowQuery,
    *,
    paged: bool = True,
    columns: str | None = None,
) -> tuple[str, list[Any]]:
    """``SELECT`` of one page (``limit + 1`` rows: the extra one says a next page exists),
    or of every matching row when not ``paged`` (an export's cursor). ``columns``: what
    to select, by default ``ROW_COLUMNS`` (``table_name`` is a literal on SQLite).

    Raises:
        InvalidTable: the cursor is malformed (BAD_CURSOR), or the query names a field
            or operator it may not (see ``check_query``).
    """
    check_query(table, query)  # names below go into the SQL text
    ph = "?" if dialect == "sqlite" else "%s"
    params: list[Any] = []
    if dialect == "sqlite":
        source = sqlite_rows_table(table.name)
        columns = columns or ROW_COLUMNS.replace("table_name", f"'{table.name}' AS table_name")
        where = []
    else:
        source, columns = "table_rows", columns or ROW_COLUMNS
        # The table's name is written out (it is a checked name): the planner can only
        # match a partial index's ``WHERE table_name = '...'`` against a literal.
        where = [f"table_name = '{table.name}'"]
    if query.tenant_id is not None:
        where.append(f"tenant_id = {ph}")
        params.append(query.tenant_id)
    for flt in query.filters:
        where.append(
            f"{field_expr(dialect, table, flt.field)} {_SQL_OPS[flt.op]} "
            f"{_param(dialect, table, flt.field)}"
        )
        params.append(_value(dialect, table, flt.field, flt.value))
    desc = query.descending
    if query.order_by is None:
        order = "seq DESC" if desc else "seq"
        if query.cursor is not None:
            _, seq = decode_row_cursor(query.cursor)
            where.append(f"seq {'<' if desc else '>'} {ph}")
            params.append(seq)
    else:
        expr = field_expr(dialect, table, query.order_by)
        vp = _param(dialect, table, query.order_by)
        if dialect == "postgres":
            order = f"{expr} DESC NULLS LAST, seq DESC" if desc else f"{expr} NULLS FIRST, seq"
        else:
            order = f"{expr} DESC, seq DESC" if desc else f"{expr}, seq"
        if query.cursor is not None:
            value, seq = decode_row_cursor(query.cursor)
            if value is None and desc:
                where.append(f"({expr} IS NULL AND seq < {ph})")
                params.append(seq)
            elif value is None:
                where.append(f"(({expr} IS NULL AND seq > {ph}) OR {expr} IS NOT NULL)")
                params.append(seq)
            else:
                cmp = "<" if desc else ">"
                tail = f" OR {expr} IS NULL" if desc else ""
                where.append(f"({expr} {cmp} {vp} OR ({expr} = {vp} AND seq {cmp} {ph}){tail})")
                params += [value, value, seq]
    if dialect == "sqlite" and _uses_field_index(table, query):
        return _sqlite_batched(
            source, where, params, order, columns, query.limit + 1 if paged else None
        )
    cond = f" WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT {columns} FROM {source}{cond} ORDER BY {order}"
    if paged:
        sql += f" LIMIT {ph}"
        params.append(query.limit + 1)
    return sql, params


def _uses_field_index(table: TableDef, query: RowQuery) -> bool:
    return query.order_by is not None or any(f.field in table.indexed for f in query.filters)


def _sqlite_batched(
    source: str,
    where: list[str],
    params: list[Any],
    order: str,
    columns: str,
    limit: int | None,
) -> tuple[str, list[Any]]:
    """A SQLite query that may use a field index, in two exact halves: the rows already
    in the field indexes (``indexed = 1``: the partial indexes apply, as before batching),
    and the rows of the current batch (``indexed = 0``: all above the table's last
    multiple of SQLITE_INDEX_BATCH, so a range of fewer than SQLITE_INDEX_BATCH rows of
    the primary key). Each half is ordered and cut to the page on its own, so the outer
    sort sees at most two pages."""
    cut = "" if limit is None else " LIMIT ?"
    cond = "".join(f"{w} AND " for w in where)
    batch = SQLITE_INDEX_BATCH
    tail = f"seq > (SELECT MAX(seq) FROM {source}) / {batch} * {batch}"
    indexed = (
        f"SELECT {_SQLITE_COLUMNS} FROM {source} WHERE {cond}indexed = 1 ORDER BY {order}{cut}"
    )
    recent = (
        f"SELECT {_SQLITE_COLUMNS} FROM {source} WHERE {cond}indexed = 0 AND {tail} "
        f"ORDER BY {order}{cut}"
    )
    sql = (
        f"SELECT {columns} FROM (SELECT * FROM ({indexed}) UNION ALL SELECT * FROM ({recent})) "
        f"ORDER BY {order}{cut}"
    )
    half = params + ([limit] if limit is not None else [])
    return sql, half + half + ([limit] if limit is not None else [])


# -- the same semantics in Python (memory store) -----------------------------------------


def matches(data: Mapping[str, Any], flt: RowFilter) -> bool:
    """Whether a row's ``data`` passes one filter (a missing value never does, as NULL)."""
    value = data.get(flt.field)
    if value is None:
        return False
    target = flt.value
    if isinstance(value, bool) != isinstance(target, bool):
        return False
    try:
        if flt.op == "eq":
            return bool(value == target)
        if flt.op == "ne":
            return bool(value != target)
        if flt.op == "gt":
            return bool(value > target)
        if flt.op == "gte":
            return bool(value >= target)
        if flt.op == "lt":
            return bool(value < target)
        return bool(value <= target)
    except TypeError:
        return False


def sort_key(data: Mapping[str, Any], seq: int, field: str | None) -> tuple[Any, ...]:
    """Sort key of a row: missing values first, then by value, then insertion order."""
    if field is None:
        return (seq,)
    value = data.get(field)
    return (value is not None, value if value is not None else 0, seq)
