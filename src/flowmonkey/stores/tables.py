"""Data tables of the three stores, one mixin per backend (like ``stores/keys.py``).

A table's definition is written once (``create_table``; the same definition again is a
no-op, another one is ``TableConflict``). Rows come from step commits
(``StepCommit.table_rows``, written by each store's ``commit`` in the same transaction)
or from ``insert_rows``. Rows are never updated or deleted, so keyset cursors over
``(value, seq)`` never skip or repeat a row.
"""

from __future__ import annotations

import builtins
import itertools
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import orjson

from flowmonkey.model.tables import (
    RowQuery,
    TableConflict,
    TableDef,
    TableNotFound,
    TableRow,
    check_query,
    decode_row_cursor,
    encode_row_cursor,
)
from flowmonkey.stores import sqlite_queries as q
from flowmonkey.stores import table_export, table_sql
from flowmonkey.stores.base import Page
from flowmonkey.stores.table_export import ExportFormat, python_export

__all__ = [
    "MemoryTables",
    "PostgresTables",
    "SqliteTables",
    "keyset_batches",
    "page_of",
    "pg_rows_json",
    "sqlite_insert_rows",
    "sqlite_move_shared_rows",
]

_dumps = orjson.dumps


def page_of(rows: builtins.list[TableRow], query: RowQuery) -> Page[TableRow]:
    """A page from ``limit + 1`` fetched rows (the extra one only says there is more)."""
    if len(rows) <= query.limit:
        return Page(items=rows)
    rows = rows[: query.limit]
    last = rows[-1]
    value = last.data.get(query.order_by) if query.order_by is not None else None
    return Page(items=rows, next_cursor=encode_row_cursor(value, last.seq))


async def keyset_batches(
    store: Any, table: TableDef, query: RowQuery
) -> AsyncIterator[builtins.list[TableRow]]:
    """Every row matching ``query`` in batches of ``query.limit``, page after page (each
    page its own read: rows are append-only, so the cursor never skips or repeats one)."""
    cursor = query.cursor
    while True:
        page = await store.query_rows(table, replace(query, cursor=cursor))
        if page.items:
            yield page.items
        cursor = page.next_cursor
        if cursor is None:
            return


def _check_new(existing: TableDef | None, table: TableDef) -> bool:
    """True when ``table`` must be written; False when identical; else ``TableConflict``."""
    if existing is None:
        return True
    if existing.same_definition(table):
        return False
    raise TableConflict(table.name)


class MemoryTables:
    """Tables of ``MemoryStore`` (rows in insertion order, one list per table)."""

    _tables: dict[str, TableDef]
    _table_rows: dict[str, builtins.list[TableRow]]
    _row_seq: int

    async def create_table(self, table: TableDef) -> tuple[TableDef, bool]:
        """Store a new table; ``(stored, created)``. Raises ``TableConflict``."""
        existing = self._tables.get(table.name)
        if not _check_new(existing, table):
            assert existing is not None
            return existing, False
        self._tables[table.name] = table
        self._table_rows.setdefault(table.name, [])
        return table, True

    async def get_table(self, name: str) -> TableDef | None:
        """One table, or ``None``."""
        return self._tables.get(name)

    async def list_tables(self) -> builtins.list[TableDef]:
        """Every table, by name."""
        return [self._tables[name] for name in sorted(self._tables)]

    def _check_tables(self, rows: Sequence[TableRow]) -> None:
        for row in rows:
            if row.table not in self._tables:
                raise TableNotFound(row.table)

    def _add_rows(self, rows: Sequence[TableRow]) -> None:
        for row in rows:
            self._row_seq += 1
            data = orjson.loads(_dumps(row.data))  # a deep copy, as JSON would store it
            stored = TableRow(
                id=row.id, table=row.table, data=data, tenant_id=row.tenant_id,
                execution_id=row.execution_id, step_id=row.step_id,
                created_at=row.created_at, seq=self._row_seq,
            )  # fmt: skip
            self._table_rows[row.table].append(stored)

    async def insert_rows(self, rows: Sequence[TableRow]) -> None:
        """Insert rows by hand (all or none). Raises ``TableNotFound``."""
        self._check_tables(rows)
        self._add_rows(rows)

    async def query_rows(self, table: TableDef, query: RowQuery) -> Page[TableRow]:
        """One page of rows (see ``RowQuery``)."""
        check_query(table, query)  # the same refusals as the SQL stores
        rows = self._table_rows.get(table.name, [])
        field = query.order_by
        found = [
            r
            for r in rows
            if (query.tenant_id is None or r.tenant_id == query.tenant_id)
            and all(table_sql.matches(r.data, f) for f in query.filters)
        ]
        found.sort(key=lambda r: table_sql.sort_key(r.data, r.seq, field), reverse=query.descending)
        if query.cursor is not None:
            value, seq = decode_row_cursor(query.cursor)
            after = table_sql.sort_key({field: value} if field else {}, seq, field)
            if query.descending:
                found = [r for r in found if table_sql.sort_key(r.data, r.seq, field) < after]
            else:
                found = [r for r in found if table_sql.sort_key(r.data, r.seq, field) > after]
        return page_of(found[: query.limit + 1], query)

    def export_rows(
        self, table: TableDef, query: RowQuery, format: ExportFormat
    ) -> AsyncIterator[bytes]:
        """Every matching row as JSON Lines or CSV (see ``Store.export_rows``)."""
        return python_export(keyset_batches(self, table, query), table, format)


# -- SQLite -------------------------------------------------------------------------------

_SQ_TABLE_COLUMNS = "name, definition, created_at"
_SQ_INSERT_TABLE = "INSERT INTO data_tables (name, definition, created_at) VALUES (?, ?, ?)"
_SQ_GET_TABLE = f"SELECT {_SQ_TABLE_COLUMNS} FROM data_tables WHERE name = ?"
_SQ_LIST_TABLES = f"SELECT {_SQ_TABLE_COLUMNS} FROM data_tables ORDER BY name"


def _sq_table(row: tuple[Any, ...]) -> TableDef:
    definition = orjson.loads(row[1])
    return TableDef(
        name=row[0],
        schema=definition["schema"],
        indexed=tuple(definition["indexed"]),
        created_at=q.from_us(row[2]),
    )


def sqlite_insert_rows(conn: sqlite3.Connection, rows: Sequence[TableRow]) -> None:
    """Insert rows, each into its table's SQLite table (``table_sql.sqlite_insert_row``),
    in order; the caller checked that the tables exist. The step commit calls this for
    its pipe rows, inside its transaction."""
    if len(rows) == 1:  # the usual case: one pipe
        conn.execute(table_sql.sqlite_insert_row(rows[0].table), _sq_params(rows[0]))
        return
    for name, group in itertools.groupby(rows, key=attrgetter("table")):
        conn.executemany(table_sql.sqlite_insert_row(name), [_sq_params(r) for r in group])


def _sq_params(row: TableRow) -> tuple[Any, ...]:
    return (
        row.id, row.tenant_id, row.execution_id, row.step_id, q.to_us(row.created_at),
        _dumps(row.data).decode(),
    )  # fmt: skip


def _sq_get(conn: sqlite3.Connection, name: str) -> TableDef | None:
    found = conn.execute(_SQ_GET_TABLE, (name,)).fetchone()
    return None if found is None else _sq_table(found)


def _sq_create(conn: sqlite3.Connection, table: TableDef) -> tuple[TableDef, bool]:
    existing = _sq_get(conn, table.name)
    if not _check_new(existing, table):
        assert existing is not None
        return existing, False
    assert table.created_at is not None
    definition = _dumps({"schema": table.schema, "indexed": list(table.indexed)}).decode()
    conn.execute(_SQ_INSERT_TABLE, (table.name, definition, q.to_us(table.created_at)))
    for statement in table_sql.sqlite_table_statements(table):
        conn.execute(statement)
    return table, True


def _sq_list(conn: sqlite3.Connection) -> builtins.list[TableDef]:
    return [_sq_table(row) for row in conn.execute(_SQ_LIST_TABLES).fetchall()]


def sqlite_move_shared_rows(conn: sqlite3.Connection) -> None:
    """Schema version 5 -> 6, in the migration's transaction: copy every table's rows
    from the shared ``table_rows`` into the table's own SQLite table, keeping ``seq``
    and flagged as indexed (``table_sql.sqlite_table_statements``). Migration 6 then
    drops ``table_rows`` and its indexes."""
    for table in _sq_list(conn):
        for statement in table_sql.sqlite_table_statements(table):
            conn.execute(statement)
        conn.execute(
            f"INSERT INTO {table_sql.sqlite_rows_table(table.name)} "
            "(seq, id, tenant_id, execution_id, step_id, created_at, data, indexed) "
            "SELECT seq, id, tenant_id, execution_id, step_id, created_at, data, 1 "
            "FROM table_rows WHERE table_name = ? ORDER BY seq",
            (table.name,),
        )


def _sq_insert(conn: sqlite3.Connection, rows: Sequence[TableRow]) -> None:
    for name in {row.table for row in rows}:
        if _sq_get(conn, name) is None:
            raise TableNotFound(name)
    sqlite_insert_rows(conn, rows)


def _sq_row(row: tuple[Any, ...]) -> TableRow:
    return TableRow(
        seq=row[0], id=row[1], table=row[2], tenant_id=row[3], execution_id=row[4],
        step_id=row[5], created_at=q.from_us(row[6]), data=orjson.loads(row[7]),
    )  # fmt: skip


def _sq_query(conn: sqlite3.Connection, table: TableDef, query: RowQuery) -> Page[TableRow]:
    sql, params = table_sql.row_query("sqlite", table, query)
    return page_of([_sq_row(r) for r in conn.execute(sql, params)], query)


class SqliteTables:
    """Tables of ``SqliteStore`` (each call one transaction on the store's connection)."""

    if TYPE_CHECKING:
        _tx: Callable[..., Awaitable[Any]]

    async def create_table(self, table: TableDef) -> tuple[TableDef, bool]:
        """Store a new table with its indexes; ``(stored, created)``."""
        result: tuple[TableDef, bool] = await self._tx(True, _sq_create, table)
        return result

    async def get_table(self, name: str) -> TableDef | None:
        """One table, or ``None``."""
        found: TableDef | None = await self._tx(False, _sq_get, name)
        return found

    async def list_tables(self) -> builtins.list[TableDef]:
        """Every table, by name."""
        tables: builtins.list[TableDef] = await self._tx(False, _sq_list)
        return tables

    async def insert_rows(self, rows: Sequence[TableRow]) -> None:
        """Insert rows by hand (all or none). Raises ``TableNotFound``."""
        await self._tx(True, _sq_insert, rows)

    async def query_rows(self, table: TableDef, query: RowQuery) -> Page[TableRow]:
        """One page of rows (see ``RowQuery``)."""
        page: Page[TableRow] = await self._tx(False, _sq_query, table, query)
        return page

    async def export_rows(
        self, table: TableDef, query: RowQuery, format: ExportFormat
    ) -> AsyncIterator[bytes]:
        """Every matching row as JSON Lines or CSV, formatted by SQLite, one keyset page
        (``query.limit`` rows) per short read transaction: a long export neither blocks
        the event loop nor holds SQLite's WAL back."""
        if format == "csv":
            yield table_export.csv_header(table)
            columns = table_export.sqlite_csv_columns(table)
        else:
            columns = table_export.sqlite_jsonl_column()
        sort = table_sql.field_expr("sqlite", table, query.order_by) if query.order_by else "NULL"
        cursor = query.cursor
        while True:
            page = replace(query, cursor=cursor)
            sql, params = table_sql.row_query(
                "sqlite", table, page, columns=f"seq, {sort}, {columns}"
            )
            found = await self._tx(False, ops_rows, sql, params)
            more = len(found) > query.limit
            found = found[: query.limit]
            if found:
                if format == "csv":
                    yield table_export.csv_chunk([r[2:] for r in found])
                else:
                    yield "\n".join([r[2] for r in found]).encode() + b"\n"
            if not more:
                return
            last = found[-1]
            cursor = encode_row_cursor(last[1], last[0])


def ops_rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> builtins.list[Any]:
    """All rows of one query."""
    return conn.execute(sql, params).fetchall()


# -- PostgreSQL ---------------------------------------------------------------------------

_COPY_CHUNK = 256 * 1024
"""Bytes of CSV collected from COPY before a chunk is handed on."""
_PG_TABLE_COLUMNS = "name, schema::text, indexed, created_at"
_PG_INSERT_TABLE = (
    "INSERT INTO data_tables (name, schema, indexed, created_at) "
    "VALUES (%s, %s::jsonb, %s::text[], %s) ON CONFLICT (name) DO NOTHING RETURNING name"
)
_PG_GET_TABLE = f"SELECT {_PG_TABLE_COLUMNS} FROM data_tables WHERE name = %s"
_PG_LIST_TABLES = f"SELECT {_PG_TABLE_COLUMNS} FROM data_tables ORDER BY name"
PG_INSERT_ROWS = """
INSERT INTO table_rows (id, table_name, tenant_id, execution_id, step_id, created_at, data)
SELECT r->>0, r->>1, r->>2, r->>3, r->>4, (r->>5)::timestamptz, (r->6)::jsonb
FROM json_array_elements(%s::json) WITH ORDINALITY AS t(r, n) ORDER BY n
"""


def pg_rows_json(rows: Sequence[TableRow]) -> str:
    """Rows as ONE json parameter, ``[[id, table, tenant, execution, step, at, data]]``
    (cheaper for psycopg than seven arrays, like the commit's events)."""
    return _dumps(
        [
            [r.id, r.table, r.tenant_id, r.execution_id, r.step_id, r.created_at, r.data]
            for r in rows
        ]
    ).decode()


def _pg_table(row: tuple[Any, ...]) -> TableDef:
    return TableDef(
        name=row[0], schema=orjson.loads(row[1]), indexed=tuple(row[2]),
        created_at=row[3].astimezone(UTC),
    )  # fmt: skip


def _pg_row(row: tuple[Any, ...]) -> TableRow:
    created: datetime = row[6]
    return TableRow(
        seq=row[0], id=row[1], table=row[2], tenant_id=row[3], execution_id=row[4],
        step_id=row[5], created_at=created.astimezone(UTC), data=orjson.loads(row[7]),
    )  # fmt: skip


class PostgresTables:
    """Tables of ``PostgresStore``."""

    if TYPE_CHECKING:

        async def _fetchall(self, query: str, params: Any = None) -> builtins.list[Any]: ...

        def _tx(self) -> Any: ...

        def _read(self) -> Any: ...

    async def create_table(self, table: TableDef) -> tuple[TableDef, bool]:
        """Store a new table with its indexes (one transaction); ``(stored, created)``."""
        existing = await self.get_table(table.name)
        if not _check_new(existing, table):
            assert existing is not None
            return existing, False
        params = [table.name, _dumps(table.schema).decode(), list(table.indexed), table.created_at]
        async with self._tx() as conn:
            cur = await conn.execute(_PG_INSERT_TABLE, params)
            inserted = await cur.fetchall()
            if inserted:
                for statement in table_sql.index_statements(table):
                    await conn.execute(statement)
        if inserted:
            return table, True
        # Another process created it between our read and our insert.
        return await self.create_table(table)

    async def get_table(self, name: str) -> TableDef | None:
        """One table, or ``None``."""
        rows = await self._fetchall(_PG_GET_TABLE, [name])
        return _pg_table(rows[0]) if rows else None

    async def list_tables(self) -> builtins.list[TableDef]:
        """Every table, by name."""
        return [_pg_table(row) for row in await self._fetchall(_PG_LIST_TABLES)]

    async def insert_rows(self, rows: Sequence[TableRow]) -> None:
        """Insert rows by hand (one statement: all or none). Raises ``TableNotFound``."""
        for name in {row.table for row in rows}:
            if await self.get_table(name) is None:
                raise TableNotFound(name)
        if rows:
            async with self._read() as conn:
                await conn.execute(PG_INSERT_ROWS, [pg_rows_json(rows)])

    async def query_rows(self, table: TableDef, query: RowQuery) -> Page[TableRow]:
        """One page of rows (see ``RowQuery``)."""
        sql, params = table_sql.row_query("postgres", table, query)
        sql = sql.replace(", data FROM", ", data::text FROM", 1)
        return page_of([_pg_row(r) for r in await self._fetchall(sql, params)], query)

    async def export_rows(
        self, table: TableDef, query: RowQuery, format: ExportFormat
    ) -> AsyncIterator[bytes]:
        """Every matching row as JSON Lines or CSV from ONE statement (one snapshot, one
        scan): CSV through ``COPY ... TO STDOUT``, JSON Lines through a server-side cursor
        read ``query.limit`` rows at a time. The server formats each row."""
        if format == "csv":
            columns = table_export.pg_csv_columns(table)
        else:
            columns = table_export.pg_jsonl_column()
        sql, params = table_sql.row_query("postgres", table, query, paged=False, columns=columns)
        if format == "csv":
            yield table_export.csv_header(table)
            async with self._read() as conn:
                cur = conn.cursor()
                async with cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
                    # COPY sends one message per row: hand them on in chunks.
                    buffer = bytearray()
                    async for data in copy:
                        buffer += data
                        if len(buffer) >= _COPY_CHUNK:
                            yield bytes(buffer)
                            buffer.clear()
                    if buffer:
                        yield bytes(buffer)
            return
        async with (
            self._read() as conn,
            conn.transaction(),
            conn.cursor(name="flowmonkey_export") as cur,
        ):
            await cur.execute(sql, params)
            while True:
                found = await cur.fetchmany(query.limit)
                if not found:
                    return
                yield "\n".join([r[0] for r in found]).encode() + b"\n"
