"""The data-table definitions one engine process has seen, with compiled validators.

A table's definition never changes once created (docs/tables.md), so the cache keeps
what it has seen for good: only the first pipe into a table costs a store read.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

import orjson

from flowmonkey.engine.fastpaths import compile_schema
from flowmonkey.errors import FlowValidationError, ValidationIssue
from flowmonkey.handlers.schema import SchemaValidator
from flowmonkey.model.tables import InvalidTable, TableDef

if TYPE_CHECKING:
    from flowmonkey.model.flow import Flow
    from flowmonkey.stores.base import Store

__all__ = ["CompiledTable", "TableCache", "check_row"]


class CompiledTable:
    """A table definition with its compiled row validator."""

    __slots__ = ("fast", "table", "validator")

    def __init__(self, table: TableDef) -> None:
        self.table = table
        self.validator = SchemaValidator(table.schema)
        self.fast = compile_schema(table.schema)
        """A plain-Python check for simple schemas (True: valid for sure)."""

    def problems(self, data: Any) -> list[dict[str, str]]:
        """``[{"path", "message"}]`` for a row's data (empty when it is valid)."""
        fast = self.fast
        if fast is not None and fast(data):
            return []
        return self.validator.errors(data)


class TableCache:
    """Definitions seen by this process (tables never change, so no expiry)."""

    __slots__ = ("_checked", "_tables", "expressions", "store")

    def __init__(self, store: Store) -> None:
        self.store = store
        self._tables: dict[str, CompiledTable] = {}
        self._checked: set[str] = set()
        self.expressions: dict[str, Any] = {}
        """``(evaluator, scope entries it reads)`` of each pipe map, by expression
        (``pipes._evaluator``)."""

    def remember(self, table: TableDef) -> CompiledTable:
        """Cache a definition just read or written."""
        compiled = self._tables.get(table.name)
        if compiled is None:
            compiled = self._tables[table.name] = CompiledTable(table)
        return compiled

    def cached(self, name: str) -> CompiledTable | None:
        """The table if this process has seen it (no store read, no await)."""
        return self._tables.get(name)

    async def get(self, name: str) -> CompiledTable | None:
        """The table (from the cache, else the store), or ``None`` if it does not exist."""
        compiled = self._tables.get(name)
        if compiled is not None:
            return compiled
        table = await self.store.get_table(name)
        return None if table is None else self.remember(table)

    async def missing(self, flow: Flow) -> builtins.list[ValidationIssue]:
        """One ``Table "x" not found`` issue per pipe of ``flow`` into a missing table."""
        issues = []
        for key, step in flow.steps.items():
            for i, pipe in enumerate(step.pipes):
                table: Any = pipe.table  # typed str, but parsed from files
                if isinstance(table, str) and await self.get(table) is None:
                    issues.append(
                        ValidationIssue(
                            f"steps.{key}.pipes[{i}].table", f'Table "{pipe.table}" not found'
                        )
                    )
        return issues

    async def check_flow(self, flow: Flow) -> None:
        """Refuse a flow whose pipes name a missing table (checked once per flow version
        and process: tables are never dropped).

        Raises:
            FlowValidationError: one ``Table "x" not found`` issue per such pipe.
        """
        if flow.key in self._checked:
            return
        issues = await self.missing(flow)
        if issues:
            raise FlowValidationError(flow.id, issues)
        self._checked.add(flow.key)


def check_row(
    compiled: CompiledTable, data: Any, max_bytes: int, *, code: str = "ROW_INVALID"
) -> bytes:
    """Validate a row against its table (schema, JSON-serialisable, size); returns its
    JSON. Raises ``InvalidTable`` with ``code`` and every problem listed."""
    name = compiled.table.name
    try:
        encoded = orjson.dumps(data)
    except TypeError as exc:
        raise InvalidTable(
            f'The row for table "{name}" is not JSON-serialisable: {exc}',
            [ValidationIssue("$", str(exc))],
            code=code,
        )
    if len(encoded) > max_bytes:
        raise InvalidTable(
            f'The row for table "{name}" is {len(encoded)} bytes; the limit is {max_bytes}',
            [ValidationIssue("$", f"{len(encoded)} bytes > {max_bytes}")],
            code=code,
        )
    problems = compiled.problems(data)
    if problems:
        issues = [ValidationIssue(p["path"], p["message"]) for p in problems]
        listed = "; ".join(f"{i.path}: {i.message}" for i in issues)
        raise InvalidTable(
            f'The row does not match the schema of table "{name}": {listed}', issues, code=code
        )
    return encoded
