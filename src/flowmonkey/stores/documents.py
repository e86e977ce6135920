"""Trigger/form documents and form submissions of the three stores, one mixin each.

``add_form_submission`` is the one that matters: it checks the form's ``dedupe_on`` key
and ``max_submissions`` and records the submission in ONE transaction, so two equal
submissions racing each other cannot both get in (FlowMonkey checks, then inserts).
"""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from flowmonkey import errors
from flowmonkey.model.documents import FormSubmission, TriggerDocument
from flowmonkey.stores import sqlite_queries as q
from flowmonkey.stores.cursors import by_id_page

__all__ = ["MemoryDocuments", "PostgresDocuments", "SqliteDocuments"]

_DOC_COLS = "kind, id, tenant_id, spec, created_at, updated_at"
_SUB_COLS = "id, form_id, dedupe_key, data, execution_id, client, created_at"


def _doc(row: tuple[Any, ...], to_dt: Callable[[Any], datetime | None]) -> TriggerDocument:
    created, updated = to_dt(row[4]), to_dt(row[5])
    assert created is not None and updated is not None
    return TriggerDocument(
        kind=row[0],
        id=row[1],
        tenant_id=row[2],
        spec=orjson.loads(row[3]),
        created_at=created,
        updated_at=updated,
    )


def _sub(row: tuple[Any, ...], to_dt: Callable[[Any], datetime | None]) -> FormSubmission:
    created = to_dt(row[6])
    assert created is not None
    return FormSubmission(
        id=row[0],
        form_id=row[1],
        dedupe_key=row[2],
        data=orjson.loads(row[3]),
        execution_id=row[4],
        client=row[5],
        created_at=created,
    )


def _exists(doc: TriggerDocument) -> errors.AlreadyExists:
    return errors.AlreadyExists(f'{doc.kind} "{doc.id}" already exists')


def _copy(doc: TriggerDocument) -> TriggerDocument:
    return replace(doc, spec=orjson.loads(orjson.dumps(doc.spec)))


class MemoryDocuments:
    """Documents and submissions of ``MemoryStore``."""

    _documents: dict[tuple[str, str], TriggerDocument]
    _submissions: dict[str, FormSubmission]

    async def create_document(self, doc: TriggerDocument) -> None:
        """Store a new document (``AlreadyExists`` if ``(kind, id)`` is taken)."""
        if (doc.kind, doc.id) in self._documents:
            raise _exists(doc)
        self._documents[(doc.kind, doc.id)] = _copy(doc)

    async def update_document(self, doc: TriggerDocument) -> bool:
        """Replace a document's tenant, spec and ``updated_at``; False if missing."""
        if (doc.kind, doc.id) not in self._documents:
            return False
        self._documents[(doc.kind, doc.id)] = _copy(doc)
        return True

    async def get_document(self, kind: str, doc_id: str) -> TriggerDocument | None:
        """One document, or ``None``."""
        found = self._documents.get((kind, doc_id))
        return None if found is None else _copy(found)

    async def list_documents(
        self,
        kind: str,
        *,
        tenant_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[TriggerDocument]:
        """Documents of a kind by id (of one tenant when given), after ``after``, at most
        ``limit``."""
        found = [
            _copy(d)
            for (k, doc_id), d in sorted(self._documents.items())
            if k == kind
            and (tenant_id is None or d.tenant_id == tenant_id)
            and (after is None or doc_id > after)
        ]
        return found if limit is None else found[:limit]

    async def delete_document(self, kind: str, doc_id: str) -> bool:
        """Delete a document (a form's submissions too)."""
        if kind == "form":
            for sid in [s.id for s in self._submissions.values() if s.form_id == doc_id]:
                del self._submissions[sid]
        return self._documents.pop((kind, doc_id), None) is not None

    async def add_form_submission(
        self, submission: FormSubmission, *, max_submissions: int | None = None
    ) -> str:
        """Record a submission unless it is a duplicate or the form is full.

        Returns ``"ok"``, ``"duplicate"`` (same ``dedupe_key``) or ``"full"``.
        """
        mine = [s for s in self._submissions.values() if s.form_id == submission.form_id]
        if submission.dedupe_key is not None and any(
            s.dedupe_key == submission.dedupe_key for s in mine
        ):
            return "duplicate"
        if max_submissions is not None and len(mine) >= max_submissions:
            return "full"
        self._submissions[submission.id] = submission
        return "ok"

    async def delete_form_submission(self, submission_id: str) -> None:
        """Forget a submission (its execution could not be created)."""
        self._submissions.pop(submission_id, None)

    async def list_form_submissions(
        self, form_id: str, *, limit: int = 50, before: tuple[datetime, str] | None = None
    ) -> builtins.list[FormSubmission]:
        """Submissions of one form, newest first (after ``before`` in that order)."""
        subs = [
            s
            for s in self._submissions.values()
            if s.form_id == form_id and (before is None or (s.created_at, s.id) < before)
        ]
        subs.sort(key=lambda s: (s.created_at, s.id), reverse=True)
        return subs[:limit]


# -- SQLite -------------------------------------------------------------------------------

_SQ_DOC_INSERT = f"INSERT INTO trigger_documents ({_DOC_COLS}) VALUES (?, ?, ?, ?, ?, ?)"
_SQ_DOC_UPDATE = (
    "UPDATE trigger_documents SET tenant_id = ?, spec = ?, updated_at = ? WHERE kind = ? AND id = ?"
)
_SQ_DOC_GET = f"SELECT {_DOC_COLS} FROM trigger_documents WHERE kind = ? AND id = ?"
_SQ_DOC_LIST = f"SELECT {_DOC_COLS} FROM trigger_documents WHERE kind = ?"
_SQ_SUB_INSERT = f"INSERT INTO form_submissions ({_SUB_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
_SQ_SUBS = f"SELECT {_SUB_COLS} FROM form_submissions WHERE form_id = ? "
_SQ_SUBS_BEFORE = "AND (created_at, id) < (?, ?) "
_SUBS_ORDER = "ORDER BY created_at DESC, id DESC LIMIT "


def _sq_doc_create(conn: sqlite3.Connection, doc: TriggerDocument) -> None:
    try:
        conn.execute(
            _SQ_DOC_INSERT,
            (
                doc.kind,
                doc.id,
                doc.tenant_id,
                orjson.dumps(doc.spec).decode(),
                q.to_us(doc.created_at),
                q.to_us(doc.updated_at),
            ),
        )
    except sqlite3.IntegrityError:
        raise _exists(doc) from None


def _sq_doc_update(conn: sqlite3.Connection, doc: TriggerDocument) -> bool:
    params = (
        doc.tenant_id,
        orjson.dumps(doc.spec).decode(),
        q.to_us(doc.updated_at),
        doc.kind,
        doc.id,
    )
    return conn.execute(_SQ_DOC_UPDATE, params).rowcount == 1


def _sq_doc_get(conn: sqlite3.Connection, kind: str, doc_id: str) -> TriggerDocument | None:
    row = conn.execute(_SQ_DOC_GET, (kind, doc_id)).fetchone()
    return None if row is None else _doc(row, q.opt_dt)


def _sq_doc_list(
    conn: sqlite3.Connection, kind: str, tenant_id: str | None, after: str | None, limit: int | None
) -> builtins.list[TriggerDocument]:
    sql, params = by_id_page(
        _SQ_DOC_LIST, [kind], "?", tenant_id=tenant_id, after=after, limit=limit
    )
    return [_doc(row, q.opt_dt) for row in conn.execute(sql, params)]


def _sq_doc_delete(conn: sqlite3.Connection, kind: str, doc_id: str) -> bool:
    if kind == "form":
        conn.execute("DELETE FROM form_submissions WHERE form_id = ?", (doc_id,))
    sql = "DELETE FROM trigger_documents WHERE kind = ? AND id = ?"
    return conn.execute(sql, (kind, doc_id)).rowcount == 1


def _sq_sub_add(conn: sqlite3.Connection, sub: FormSubmission, most: int | None) -> str:
    # BEGIN IMMEDIATE holds the write lock: the checks and the insert are one step.
    if sub.dedupe_key is not None:
        sql = "SELECT 1 FROM form_submissions WHERE form_id = ? AND dedupe_key = ?"
        if conn.execute(sql, (sub.form_id, sub.dedupe_key)).fetchone():
            return "duplicate"
    if most is not None:
        sql = "SELECT COUNT(*) FROM form_submissions WHERE form_id = ?"
        if conn.execute(sql, (sub.form_id,)).fetchone()[0] >= most:
            return "full"
    conn.execute(
        _SQ_SUB_INSERT,
        (
            sub.id,
            sub.form_id,
            sub.dedupe_key,
            orjson.dumps(sub.data).decode(),
            sub.execution_id,
            sub.client,
            q.to_us(sub.created_at),
        ),
    )
    return "ok"


def _sq_sub_delete(conn: sqlite3.Connection, sub_id: str) -> None:
    conn.execute("DELETE FROM form_submissions WHERE id = ?", (sub_id,))


def _sq_subs(
    conn: sqlite3.Connection, form_id: str, limit: int, before: tuple[datetime, str] | None
) -> builtins.list[FormSubmission]:
    if before is None:
        rows = conn.execute(_SQ_SUBS + _SUBS_ORDER + "?", (form_id, limit))
    else:
        params = (form_id, q.to_us(before[0]), before[1], limit)
        rows = conn.execute(_SQ_SUBS + _SQ_SUBS_BEFORE + _SUBS_ORDER + "?", params)
    return [_sub(row, q.opt_dt) for row in rows]


class SqliteDocuments:
    """Documents and submissions of ``SqliteStore`` (each call one transaction)."""

    if TYPE_CHECKING:
        _tx: Callable[..., Awaitable[Any]]

    async def create_document(self, doc: TriggerDocument) -> None:
        """Store a new document (``AlreadyExists`` if ``(kind, id)`` is taken)."""
        await self._tx(True, _sq_doc_create, doc)

    async def update_document(self, doc: TriggerDocument) -> bool:
        """Replace a document's tenant, spec and ``updated_at``; False if missing."""
        done: bool = await self._tx(True, _sq_doc_update, doc)
        return done

    async def get_document(self, kind: str, doc_id: str) -> TriggerDocument | None:
        """One document, or ``None``."""
        found: TriggerDocument | None = await self._tx(False, _sq_doc_get, kind, doc_id)
        return found

    async def list_documents(
        self,
        kind: str,
        *,
        tenant_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[TriggerDocument]:
        """Documents of a kind by id (of one tenant when given), after ``after``, at most
        ``limit``."""
        found: builtins.list[TriggerDocument] = await self._tx(
            False, _sq_doc_list, kind, tenant_id, after, limit
        )
        return found

    async def delete_document(self, kind: str, doc_id: str) -> bool:
        """Delete a document (a form's submissions too)."""
        done: bool = await self._tx(True, _sq_doc_delete, kind, doc_id)
        return done

    async def add_form_submission(
        self, submission: FormSubmission, *, max_submissions: int | None = None
    ) -> str:
        """Record a submission unless it is a duplicate or the form is full.

        Returns ``"ok"``, ``"duplicate"`` (same ``dedupe_key``) or ``"full"``.
        """
        outcome: str = await self._tx(True, _sq_sub_add, submission, max_submissions)
        return outcome

    async def delete_form_submission(self, submission_id: str) -> None:
        """Forget a submission (its execution could not be created)."""
        await self._tx(True, _sq_sub_delete, submission_id)

    async def list_form_submissions(
        self, form_id: str, *, limit: int = 50, before: tuple[datetime, str] | None = None
    ) -> builtins.list[FormSubmission]:
        """Submissions of one form, newest first (after ``before`` in that order)."""
        subs: builtins.list[FormSubmission] = await self._tx(
            False, _sq_subs, form_id, limit, before
        )
        return subs


# -- PostgreSQL ---------------------------------------------------------------------------

_PG_DOC_INSERT = (
    f"INSERT INTO trigger_documents ({_DOC_COLS}) VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING RETURNING id"
)
_PG_DOC_UPDATE = (
    "UPDATE trigger_documents SET tenant_id = %s, spec = %s, updated_at = %s "
    "WHERE kind = %s AND id = %s RETURNING id"
)
_PG_DOC_GET = f"SELECT {_DOC_COLS} FROM trigger_documents WHERE kind = %s AND id = %s"
_PG_DOC_LIST = f"SELECT {_DOC_COLS} FROM trigger_documents WHERE kind = %s"
_PG_SUBS = f"SELECT {_SUB_COLS} FROM form_submissions WHERE form_id = %s "
_PG_SUBS_BEFORE = "AND (created_at, id) < (%s, %s) "


def _pg_dt(value: Any) -> datetime | None:
    return value if value is None else value.astimezone(UTC)


class PostgresDocuments:
    """Documents and submissions of ``PostgresStore``."""

    if TYPE_CHECKING:

        async def _fetchall(self, query: str, params: Any = None) -> builtins.list[Any]: ...

        def _read(self) -> Any: ...

    async def create_document(self, doc: TriggerDocument) -> None:
        """Store a new document (``AlreadyExists`` if ``(kind, id)`` is taken)."""
        params = [
            doc.kind,
            doc.id,
            doc.tenant_id,
            orjson.dumps(doc.spec).decode(),
            doc.created_at,
            doc.updated_at,
        ]
        if not await self._fetchall(_PG_DOC_INSERT, params):
            raise _exists(doc)

    async def update_document(self, doc: TriggerDocument) -> bool:
        """Replace a document's tenant, spec and ``updated_at``; False if missing."""
        params = [doc.tenant_id, orjson.dumps(doc.spec).decode(), doc.updated_at, doc.kind, doc.id]
        return bool(await self._fetchall(_PG_DOC_UPDATE, params))

    async def get_document(self, kind: str, doc_id: str) -> TriggerDocument | None:
        """One document, or ``None``."""
        rows = await self._fetchall(_PG_DOC_GET, [kind, doc_id])
        return _doc(rows[0], _pg_dt) if rows else None

    async def list_documents(
        self,
        kind: str,
        *,
        tenant_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[TriggerDocument]:
        """Documents of a kind by id (of one tenant when given), after ``after``, at most
        ``limit``."""
        sql, params = by_id_page(
            _PG_DOC_LIST, [kind], "%s", tenant_id=tenant_id, after=after, limit=limit
        )
        return [_doc(row, _pg_dt) for row in await self._fetchall(sql, params)]

    async def delete_document(self, kind: str, doc_id: str) -> bool:
        """Delete a document (a form's submissions too)."""
        if kind == "form":
            await self._fetchall(
                "DELETE FROM form_submissions WHERE form_id = %s RETURNING id", [doc_id]
            )
        sql = "DELETE FROM trigger_documents WHERE kind = %s AND id = %s RETURNING id"
        return bool(await self._fetchall(sql, [kind, doc_id]))

    async def add_form_submission(
        self, submission: FormSubmission, *, max_submissions: int | None = None
    ) -> str:
        """Record a submission unless it is a duplicate or the form is full.

        Returns ``"ok"``, ``"duplicate"`` (same ``dedupe_key``) or ``"full"``. One
        transaction under a per-form advisory lock, so concurrent submissions of one form
        are checked one after the other.
        """
        sub = submission
        async with self._read() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ["form:" + sub.form_id]
            )
            if sub.dedupe_key is not None:
                cur = await conn.execute(
                    "SELECT 1 FROM form_submissions WHERE form_id = %s AND dedupe_key = %s",
                    [sub.form_id, sub.dedupe_key],
                )
                if await cur.fetchone():
                    return "duplicate"
            if max_submissions is not None:
                cur = await conn.execute(
                    "SELECT COUNT(*) FROM form_submissions WHERE form_id = %s", [sub.form_id]
                )
                row = await cur.fetchone()
                if row is not None and row[0] >= max_submissions:
                    return "full"
            await conn.execute(
                f"INSERT INTO form_submissions ({_SUB_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    sub.id,
                    sub.form_id,
                    sub.dedupe_key,
                    orjson.dumps(sub.data).decode(),
                    sub.execution_id,
                    sub.client,
                    sub.created_at,
                ],
            )
        return "ok"

    async def delete_form_submission(self, submission_id: str) -> None:
        """Forget a submission (its execution could not be created)."""
        await self._fetchall(
            "DELETE FROM form_submissions WHERE id = %s RETURNING id", [submission_id]
        )

    async def list_form_submissions(
        self, form_id: str, *, limit: int = 50, before: tuple[datetime, str] | None = None
    ) -> builtins.list[FormSubmission]:
        """Submissions of one form, newest first (after ``before`` in that order)."""
        if before is None:
            sql, params = _PG_SUBS + _SUBS_ORDER + "%s", [form_id, limit]
        else:
            sql = _PG_SUBS + _PG_SUBS_BEFORE + _SUBS_ORDER + "%s"
            params = [form_id, before[0], before[1], limit]
        return [_sub(row, _pg_dt) for row in await self._fetchall(sql, params)]
