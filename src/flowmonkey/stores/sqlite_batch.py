"""``SqliteStore.create_many``: several executions created in one transaction (one fsync).

Each item has its own savepoint, so one that fails (an id that exists) is rolled back
alone and reported as its outcome while the others land; an error of the transaction
itself (disk full, I/O) fails every item, as it would have failed each on its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from flowmonkey import errors
from flowmonkey.stores import sqlite_ops as ops
from flowmonkey.stores import sqlite_queries as q

if TYPE_CHECKING:
    from flowmonkey.model.events import Event
    from flowmonkey.model.execution import Execution
    from flowmonkey.stores.values import Lease

__all__ = ["CreateItem", "SqliteCreateMany"]

CreateItem = tuple["Execution", "Sequence[Event]", "Lease | None"]
"""One ``create``'s arguments: the execution, its events, its lease (or ``None``)."""


def _create_many(
    conn: sqlite3.Connection, items: Sequence[tuple[Execution, Sequence[Event], Any, Lease | None]]
) -> list[tuple[Execution, bool] | Exception]:
    outcomes: list[tuple[Execution, bool] | Exception] = []
    for execution, events, state, lease in items:
        conn.execute("SAVEPOINT fm_create")
        try:
            outcomes.append(ops.create(conn, execution, events, state, lease))
        except errors.FlowMonkeyError as exc:
            conn.execute("ROLLBACK TO fm_create")
            outcomes.append(exc)
        conn.execute("RELEASE fm_create")
    return outcomes


class SqliteCreateMany:
    """The group create of ``SqliteStore``."""

    if TYPE_CHECKING:
        _tx: Callable[..., Awaitable[Any]]

    async def create_many(
        self, items: Sequence[CreateItem]
    ) -> list[tuple[Execution, bool] | Exception]:
        """``create`` of each item, all in one transaction: per item ``(execution,
        created)`` or the error that item alone raised (see the module docstring)."""
        rows = [(ex, events, q.state_params(ex), lease) for ex, events, lease in items]
        outcomes: list[tuple[Execution, bool] | Exception] = await self._tx(
            True, _create_many, rows
        )
        return outcomes
