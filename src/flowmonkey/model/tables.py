"""Data tables: a table's definition, its rows, and the queries over them (pure data).

A table has a name, a JSON Schema its rows must match and optional *indexed* fields.
Rows are written by pipes (in the commit of the step that produced them) or by hand;
each row carries the tenant of whoever wrote it. A table's definition never changes once
created (see docs/tables.md, "Schema changes"): every process may cache it for good.

Names are restricted so that the stores can put them into SQL text (index expressions,
JSON paths) without quoting rules to get wrong: a table name is ``[a-z][a-z0-9_]*`` (at
most 63 characters), a field name ``[A-Za-z_][A-Za-z0-9_]*`` (at most 63).
"""

from __future__ import annotations

import base64
import os
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from flowmonkey.errors import FlowMonkeyError, ValidationIssue

__all__ = [
    "INDEX_TYPES",
    "OPERATORS",
    "InvalidTable",
    "RowFilter",
    "RowQuery",
    "TableConflict",
    "TableDef",
    "TableNotFound",
    "TableRow",
    "check_query",
    "decode_row_cursor",
    "encode_row_cursor",
    "field_type",
    "new_row_id",
    "parse_order",
    "parse_where",
]

_TABLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

INDEX_TYPES = ("string", "number", "integer", "boolean")
"""JSON Schema types an indexed field may declare (scalars the stores can index)."""

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte")
"""Filter operators; only ``eq`` works on fields that are not indexed."""

Operator = Literal["eq", "ne", "gt", "gte", "lt", "lte"]


class TableNotFound(FlowMonkeyError):
    """No table with this name."""

    code = "TABLE_NOT_FOUND"

    def __init__(self, name: str) -> None:
        super().__init__(f'Table "{name}" not found', details={"table": name})
        self.table = name


class TableConflict(FlowMonkeyError):
    """A table with this name exists with another definition (tables never change)."""

    code = "TABLE_CONFLICT"

    def __init__(self, name: str) -> None:
        super().__init__(
            f'Table "{name}" already exists with a different schema or indexed fields; a '
            "table's definition never changes: create a new table (e.g. "
            f'"{name}_v2") and point the flow\'s pipes at it',
            details={"table": name},
        )
        self.table = name


class InvalidTable(FlowMonkeyError):
    """A bad table definition, row, filter, order or cursor; ``issues`` lists each problem."""

    code = "INVALID_TABLE"

    def __init__(
        self, message: str, issues: Sequence[ValidationIssue] = (), *, code: str | None = None
    ) -> None:
        super().__init__(
            message, code=code, details=[{"path": i.path, "message": i.message} for i in issues]
        )
        self.issues = list(issues)


@dataclass(frozen=True, slots=True, kw_only=True)
class TableDef:
    """A table: its name, the JSON Schema of a row and the fields the stores index."""

    name: str
    schema: Mapping[str, Any]
    indexed: tuple[str, ...] = ()
    created_at: datetime | None = None

    def problems(self) -> list[ValidationIssue]:
        """What is wrong with this definition (the schema's own validity is checked by
        the engine, which owns a JSON Schema validator)."""
        issues: list[ValidationIssue] = []
        # Typed, but built from API bodies and files: check the types too.
        name: Any = self.name
        schema: Any = self.schema
        indexed: Any = self.indexed
        if not isinstance(name, str) or not _TABLE_NAME.fullmatch(name):
            issues.append(
                ValidationIssue(
                    "name",
                    "must be 1-63 characters of a-z, 0-9 and _, starting with a letter",
                )
            )
        if not isinstance(schema, Mapping):
            issues.append(ValidationIssue("schema", "must be a JSON Schema object"))
            return issues
        if schema.get("type", "object") != "object":
            issues.append(ValidationIssue("schema.type", 'a row schema must have type "object"'))
        if not isinstance(indexed, tuple | list):
            issues.append(ValidationIssue("indexed", "must be a list of field names"))
            return issues
        if len(set(map(str, indexed))) != len(indexed):
            issues.append(ValidationIssue("indexed", "lists a field twice"))
        for i, fname in enumerate(indexed):
            path = f"indexed[{i}]"
            if not isinstance(fname, str) or not _FIELD_NAME.fullmatch(fname):
                issues.append(ValidationIssue(path, f"{fname!r} is not a valid field name"))
            elif field_type(self, fname) not in INDEX_TYPES:
                issues.append(
                    ValidationIssue(
                        path,
                        f'field "{fname}" must be declared in schema.properties with type '
                        f"{', '.join(INDEX_TYPES)} to be indexed",
                    )
                )
        return issues

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (API, CLI ``--json``)."""
        return {
            "name": self.name,
            "schema": dict(self.schema),
            "indexed": list(self.indexed),
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }

    def same_definition(self, other: TableDef) -> bool:
        """True when ``other`` defines the same table (creation time aside)."""
        return (
            self.name == other.name
            and orjson.dumps(self.schema, option=orjson.OPT_SORT_KEYS)
            == orjson.dumps(other.schema, option=orjson.OPT_SORT_KEYS)
            and tuple(self.indexed) == tuple(other.indexed)
        )


def field_type(table: TableDef, name: str) -> str | None:
    """The JSON Schema ``type`` the table declares for a top-level field (a single type
    name; ``None`` when undeclared or a union)."""
    schema: Any = table.schema
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(props, Mapping):
        return None
    spec = props.get(name)
    if not isinstance(spec, Mapping):
        return None
    kind = spec.get("type")
    return kind if isinstance(kind, str) else None


_ID_BATCH = 256
_row_ids: deque[str] = deque()
# A child process must not hand out the ids its parent already drew.
os.register_at_fork(after_in_child=_row_ids.clear)


def new_row_id() -> str:
    """A fresh row id: ``row_`` and 128 random bits in hex.

    The bits come from ``os.urandom``, drawn for ``_ID_BATCH`` ids at once: one system
    call per 256 rows instead of one per row (a piped step makes one row). ``popleft``
    and ``extend`` are atomic, so threads never share an id."""
    try:
        return _row_ids.popleft()
    except IndexError:
        bits = os.urandom(16 * _ID_BATCH).hex()
        _row_ids.extend(["row_" + bits[i : i + 32] for i in range(0, 32 * _ID_BATCH, 32)])
        return _row_ids.popleft()


@dataclass(slots=True, kw_only=True)
class TableRow:
    """One row: ``data`` matches its table's schema; ``tenant_id`` is who owns it.

    Not frozen: an export builds a million of these, and a frozen dataclass's
    ``__init__`` costs several times more. Treat rows as read-only."""

    id: str = field(default_factory=new_row_id)
    table: str
    data: Mapping[str, Any]
    tenant_id: str | None = None
    execution_id: str | None = None
    """The execution whose step wrote it (pipe rows only)."""
    step_id: str | None = None
    created_at: datetime
    seq: int = 0
    """Insertion order in the store (assigned by the store; 0 before insertion)."""

    def to_dict(self) -> dict[str, Any]:
        """The API shape: ``{"id", "data", "tenant_id", "execution_id", "step_id",
        "created_at"}``."""
        return {
            "id": self.id,
            "data": dict(self.data),
            "tenant_id": self.tenant_id,
            "execution_id": self.execution_id,
            "step_id": self.step_id,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RowFilter:
    """``field op value``; ``value`` already has the JSON type the schema declares."""

    field: str
    op: Operator = "eq"
    value: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RowQuery:
    """A page of one table's rows.

    Rows come in insertion order, newest first, unless ``order_by`` names an indexed
    field (then by that field, missing values first when ascending, then insertion order).
    ``tenant_id=None`` lists every tenant's rows (admin); the API always sets it for a
    tenant's key.
    """

    table: str
    tenant_id: str | None = None
    filters: Sequence[RowFilter] = ()
    order_by: str | None = None
    descending: bool = True
    limit: int = 100
    cursor: str | None = None
    """Opaque; the ``next_cursor`` of the previous page (same query)."""


def encode_row_cursor(value: Any, seq: int) -> str:
    """Cursor after a row whose sort value is ``value`` and insertion number ``seq``."""
    return base64.urlsafe_b64encode(orjson.dumps([value, seq])).decode()


def decode_row_cursor(cursor: str) -> tuple[Any, int]:
    """Inverse of ``encode_row_cursor``; ``InvalidTable`` (BAD_CURSOR) when malformed."""
    try:
        value, seq = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(seq, int) or isinstance(value, dict | list):
            raise ValueError(cursor)
        return value, seq
    except Exception:
        raise InvalidTable("The cursor is not one this store produced.", code="BAD_CURSOR")


def _coerce(table: TableDef, name: str, raw: str) -> Any:
    kind = field_type(table, name)
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            number = float(raw)
            return int(number) if number.is_integer() and "." not in raw else number
        if kind == "boolean":
            if raw not in ("true", "false"):
                raise ValueError(raw)
            return raw == "true"
    except ValueError:
        raise InvalidTable(
            f'"{raw}" is not a valid {kind} for field "{name}"',
            [ValidationIssue(name, f"expected {kind}, got {raw!r}")],
        )
    return raw


def parse_where(table: TableDef, clauses: Sequence[str]) -> list[RowFilter]:
    """Parse ``field:value`` / ``field:op:value`` clauses (``op`` one of ``OPERATORS``).

    The value is read as the type the schema declares for the field (an undeclared field
    is compared as a string). Comparisons other than ``eq`` need an indexed field.

    Raises:
        InvalidTable: every bad clause is listed.
    """
    out: list[RowFilter] = []
    issues: list[ValidationIssue] = []
    for i, clause in enumerate(clauses):
        name, sep, rest = clause.partition(":")
        if not sep or not _FIELD_NAME.fullmatch(name):
            issues.append(
                ValidationIssue(f"where[{i}]", f"{clause!r} is not field:value or field:op:value")
            )
            continue
        op, sep, value = rest.partition(":")
        if not sep or op not in OPERATORS:
            op, value = "eq", rest
        if op != "eq" and name not in table.indexed:
            issues.append(
                ValidationIssue(
                    f"where[{i}]",
                    f'"{op}" needs an indexed field; "{name}" is not indexed in "{table.name}"',
                )
            )
            continue
        try:
            out.append(RowFilter(field=name, op=op, value=_coerce(table, name, value)))  # type: ignore[arg-type]
        except InvalidTable as exc:
            issues.append(ValidationIssue(f"where[{i}]", exc.message))
    if issues:
        raise InvalidTable("; ".join(i.message for i in issues), issues)
    return out


def check_query(table: TableDef, query: RowQuery) -> None:
    """Refuse a query the stores cannot answer safely: field names that are not plain
    names (they are put into SQL text), unknown operators, comparisons or ordering on a
    field that is not indexed. ``parse_where``/``parse_order`` only produce good ones;
    this guards ``RowFilter``/``RowQuery`` built by hand.

    Raises:
        InvalidTable: naming the first problem.
    """
    for flt in query.filters:
        name: Any = flt.field
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
            raise InvalidTable(f"{name!r} is not a valid field name")
        if flt.op not in OPERATORS:
            raise InvalidTable(f"unknown operator {flt.op!r}; use one of {', '.join(OPERATORS)}")
        if flt.op != "eq" and name not in table.indexed:
            raise InvalidTable(f'"{flt.op}" needs an indexed field; "{name}" is not indexed')
        if isinstance(flt.value, dict | list):
            raise InvalidTable(f'filter on "{name}": compare with a string, number or boolean')
    if query.order_by is not None and query.order_by not in table.indexed:
        raise InvalidTable(f'cannot order by "{query.order_by}": it is not an indexed field')
    if not 1 <= query.limit <= 10_000:
        raise InvalidTable(f"limit must be between 1 and 10000, got {query.limit}")


def parse_order(table: TableDef, order: str | None) -> tuple[str | None, bool]:
    """``field`` (ascending) or ``-field`` (descending) of an indexed field; ``None``
    (newest first). Returns ``(field, descending)``.

    Raises:
        InvalidTable: not an indexed field.
    """
    if order is None or order in ("", "-created_at"):
        return None, True
    if order == "created_at":
        return None, False
    descending = order.startswith("-")
    name = order.removeprefix("-")
    if name not in table.indexed:
        raise InvalidTable(
            f'cannot order by "{name}": only created_at and the indexed fields of '
            f'"{table.name}" ({", ".join(table.indexed) or "none"}) can order rows',
            [ValidationIssue("order", f'"{name}" is not indexed')],
        )
    return name, descending
