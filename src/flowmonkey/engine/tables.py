"""``engine.tables``: data tables from Python (create, list, insert, query, export).

A table's definition never changes once created (docs/tables.md), so each process keeps
the definitions it has seen, with their compiled JSON Schema validators, for good: only
the first pipe into a table costs a store read.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from flowmonkey.engine.table_cache import TableCache, check_row
from flowmonkey.errors import ValidationIssue
from flowmonkey.handlers.schema import SchemaValidator
from flowmonkey.model.tables import (
    InvalidTable,
    RowFilter,
    RowQuery,
    TableDef,
    TableNotFound,
    TableRow,
    check_query,
    parse_order,
    parse_where,
)
from flowmonkey.stores.base import Page

if TYPE_CHECKING:
    from flowmonkey.engine.runtime import Runtime

__all__ = ["Tables"]

EXPORT_BATCH = 5000
"""Rows read per store query while exporting (memory stays flat at one batch)."""


class Tables:
    """Data tables of an engine's store: ``engine.tables``."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    @property
    def _cache(self) -> TableCache:
        return self._runtime.tables

    async def create(
        self, name: str, schema: Mapping[str, Any], indexed: Sequence[str] = ()
    ) -> tuple[TableDef, bool]:
        """Create a table; returns ``(table, created)`` (``False``: it already existed
        with this very definition).

        Raises:
            InvalidTable: a bad name, schema or indexed field (every problem listed).
            TableConflict: the table exists with another schema or indexed fields.
        """
        table = TableDef(
            name=name, schema=schema, indexed=tuple(indexed), created_at=self._runtime.clock.now()
        )
        issues = table.problems()
        if isinstance(schema, Mapping):
            try:
                SchemaValidator(schema)
            except ValueError as exc:
                issues.append(ValidationIssue("schema", str(exc)))
        if issues:
            listed = "; ".join(f"{i.path}: {i.message}" for i in issues)
            raise InvalidTable(f'Table "{name}" is invalid: {listed}', issues)
        stored, created = await self._runtime.store.create_table(table)
        self._cache.remember(stored)
        return stored, created

    async def get(self, name: str) -> TableDef:
        """One table.

        Raises:
            TableNotFound: no such table.
        """
        compiled = await self._cache.get(name)
        if compiled is None:
            raise TableNotFound(name)
        return compiled.table

    async def list(self) -> builtins.list[TableDef]:
        """Every table, by name."""
        return await self._runtime.store.list_tables()

    async def insert(
        self, name: str, data: Mapping[str, Any], *, tenant_id: str | None = None
    ) -> TableRow:
        """Insert one row by hand (validated against the table's schema).

        Raises:
            TableNotFound: no such table.
            InvalidTable: the row breaks the schema (code ``ROW_INVALID``, every problem
                in ``issues``) or the context's value-size limit.
        """
        compiled = await self._cache.get(name)
        if compiled is None:
            raise TableNotFound(name)
        check_row(compiled, data, self._runtime.options.context_limits.max_value_bytes)
        row = TableRow(
            table=name, data=data, tenant_id=tenant_id, created_at=self._runtime.clock.now()
        )
        await self._runtime.store.insert_rows([row])
        return row

    async def rows(
        self,
        name: str,
        *,
        where: Sequence[str | RowFilter] = (),
        order: str | None = None,
        tenant_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[TableRow]:
        """One page of rows, newest first unless ``order`` says otherwise.

        Args:
            where: ``"field:value"`` / ``"field:op:value"`` strings (op: eq, ne, gt, gte,
                lt, lte; comparisons need an indexed field) or ``RowFilter``s; ANDed.
            order: ``"field"``/``"-field"`` of an indexed field, or ``created_at`` /
                ``-created_at`` (the default).
            tenant_id: only this tenant's rows (``None``: every tenant's).
            cursor: the previous page's ``next_cursor``.

        Raises:
            TableNotFound, InvalidTable (a bad filter, order or cursor).
        """
        table = await self.get(name)
        return await self._runtime.store.query_rows(
            table, self.query(table, where, order, tenant_id, limit, cursor)
        )

    @staticmethod
    def query(
        table: TableDef,
        where: Sequence[str | RowFilter] = (),
        order: str | None = None,
        tenant_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> RowQuery:
        """The ``RowQuery`` of :meth:`rows` (parses ``where`` and ``order``)."""
        texts = [w for w in where if isinstance(w, str)]
        filters = [w for w in where if isinstance(w, RowFilter)] + parse_where(table, texts)
        order_by, descending = parse_order(table, order)
        query = RowQuery(
            table=table.name, tenant_id=tenant_id, filters=filters, order_by=order_by,
            descending=descending, limit=limit, cursor=cursor,
        )  # fmt: skip
        check_query(table, query)
        return query

    async def export(
        self,
        name: str,
        format: Literal["jsonl", "csv"] = "jsonl",
        *,
        where: Sequence[str | RowFilter] = (),
        order: str | None = "created_at",
        tenant_id: str | None = None,
    ) -> AsyncIterator[bytes]:
        """Stream every matching row (oldest first by default) as JSON Lines (one
        ``TableRow.to_dict()`` per line) or CSV (``id, tenant_id, execution_id, step_id,
        created_at`` then one column per schema property; see ``stores/table_export.py``).
        Reads ``EXPORT_BATCH`` rows at a time, so memory stays flat however many rows
        there are.

        Raises:
            TableNotFound, InvalidTable: before the first chunk.
        """
        table = await self.get(name)
        query = self.query(table, where, order, tenant_id, EXPORT_BATCH)
        return self._runtime.store.export_rows(table, query, format)
