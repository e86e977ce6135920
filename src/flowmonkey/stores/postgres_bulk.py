"""``PostgresStore.create_bulk``: many new executions in one pipelined transaction.

The statement of each execution is ``create``'s own (``postgres_commit.create_statement``:
row, context, events, the same encoding), so what a bulk load stores is exactly what
``create`` would; only the round trips and the commits are shared. For loading data
(imports, the scale benchmark), not for the request path.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from flowmonkey import errors
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution
from flowmonkey.stores.postgres_base import PostgresBase
from flowmonkey.stores.postgres_commit import create_statement

__all__ = ["create_bulk"]


async def create_bulk(
    store: PostgresBase, items: Sequence[tuple[Execution, Sequence[Event]]]
) -> int:
    """Insert every ``(execution, events)`` of ``items`` in one transaction (all or
    nothing); returns how many. Executions with an idempotency key are refused
    (``ValueError``): a bulk load has no holder to hand back for a key already taken."""
    statements = []
    for execution, events in items:
        if execution.idempotency_key is not None:
            raise ValueError(
                f"create_bulk does not take idempotency keys (execution {execution.id}); use create"
            )
        try:
            statement, _ = create_statement(execution, events, store._notify_channel)
        except orjson.JSONEncodeError as exc:
            raise errors.StoreError(
                f"execution {execution.id} is not JSON-serialisable: {exc}"
            ) from exc
        statements.append(statement)
    async with store._tx() as conn:
        for query, params in statements:
            await conn.execute(query, params)
    return len(statements)
