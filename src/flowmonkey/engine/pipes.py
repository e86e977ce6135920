"""Pipes at run time: build a step's rows before its commit, or fail the step.

``pipe_rows`` evaluates the step's pipes that fire on its outcome and validates each row
against its table. Any problem fails the step (``PIPE_ERROR``: the map failed or the
table is missing; ``PIPE_ROW_INVALID``: the row breaks the table's schema or the size
limit) and no row of that step is written. The rows travel in ``StepCommit.table_rows``,
so they are written if and only if the step's outcome is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from flowmonkey.engine.fastpaths import compile_map
from flowmonkey.engine.table_cache import check_row
from flowmonkey.errors import FlowMonkeyError
from flowmonkey.model.tables import InvalidTable, TableRow

if TYPE_CHECKING:
    from flowmonkey.engine.run import Run
    from flowmonkey.engine.runtime import Runtime
    from flowmonkey.model.flow import Step
    from flowmonkey.model.result import Result

__all__ = ["PipeFailure", "pipe_rows"]


class PipeFailure(FlowMonkeyError):
    """A pipe could not produce a valid row; the step fails with this error."""

    code = "PIPE_ERROR"


_dumps = orjson.dumps
_ROOTS = frozenset({"input", "output", "error", "context", "execution"})
"""What a pipe map sees (docs/tables.md)."""


def _evaluator(runtime: Runtime, expression: str) -> tuple[Callable[[Any], Any], frozenset[str]]:
    """The evaluator of a map and the scope entries it reads (compiled once each)."""
    cache = runtime.tables.expressions
    found: tuple[Callable[[Any], Any], frozenset[str]] | None = cache.get(expression)
    if found is None:
        import jmespath  # lazily: only engines running pipes pay for it

        compiled = jmespath.compile(expression)
        # The usual map, {a: output.id, b: 'paid'}, is read directly (fastpaths.py) and
        # names what it reads; anything else may read the whole scope.
        fast = compile_map(compiled)
        found = (fast.evaluate, fast.roots) if fast is not None else (compiled.search, _ROOTS)
        cache[expression] = found
    return found


def _add_scope(
    scope: dict[str, Any], roots: frozenset[str], run: Run, step: Step, step_input: Any,
    result: Result, attempt: int,
) -> None:  # fmt: skip
    """Add the entries of ``roots`` that ``scope`` lacks: a map that reads only
    ``execution.id`` costs no copy of the context."""
    execution = run.execution
    for name in roots:
        if name in scope:
            continue
        if name == "execution":
            scope[name] = _execution_scope(run, step, attempt)
        elif name == "context":
            scope[name] = dict(execution.context)
        elif name == "output":
            scope[name] = result.output if result.outcome == "success" else None
        elif name == "input":
            scope[name] = step_input
        elif name == "error":
            scope[name] = result.error.to_dict() if result.error is not None else None


def _execution_scope(run: Run, step: Step, attempt: int) -> dict[str, Any]:
    execution = run.execution
    fixed = run.pipe_scope
    started = execution.started_at
    if fixed is None or run.pipe_started is not started:
        # What does not change while this process drives the execution, built once
        # (again only if ``started_at`` changes: ISO text costs a microsecond each).
        run.pipe_started = started
        fixed = run.pipe_scope = {
            "id": execution.id,
            "flow_id": execution.flow_id,
            "flow_version": execution.flow_version,
            "tenant_id": execution.tenant_id,
            "correlation_id": execution.correlation_id,
            "created_at": execution.created_at.isoformat(),
            "started_at": started.isoformat() if started is not None else None,
        }
    return {
        **fixed,
        "metadata": dict(execution.metadata),
        "step_id": step.id,
        "attempt": attempt,
        "run_number": execution.run_number,
    }


async def pipe_rows(
    runtime: Runtime,
    run: Run,
    step: Step,
    outcome: str,
    step_input: Any,
    result: Result,
    attempt: int,
    now: datetime,
) -> list[TableRow]:
    """The rows of ``step``'s pipes that fire on ``outcome`` (``success``/``failure``).

    Raises:
        PipeFailure: code ``PIPE_ERROR`` or ``PIPE_ROW_INVALID``; nothing may be written.
    """
    execution = run.execution
    scope: dict[str, Any] = {}
    rows: list[TableRow] = []
    max_bytes = runtime.options.context_limits.max_value_bytes
    tables = runtime.tables
    expressions = tables.expressions
    # The usual step has one pipe, a direct map and a plain schema: this loop calls as
    # few functions as it can (it runs once per step, with cold caches).
    for index, pipe in enumerate(step.pipes):
        when = pipe.when
        if when != outcome and when != "always":
            continue
        compiled = tables.cached(pipe.table) or await tables.get(pipe.table)
        if compiled is None:
            raise PipeFailure(f'pipe {index} of step "{step.id}": table "{pipe.table}" not found',
                              details=_where(step, index, pipe.table))  # fmt: skip
        evaluate, roots = expressions.get(pipe.map) or _evaluator(runtime, pipe.map)
        if not scope.keys() >= roots:
            _add_scope(scope, roots, run, step, step_input, result, attempt)
        try:
            data = evaluate(scope)
        except Exception as exc:
            import jmespath.exceptions

            if not isinstance(exc, jmespath.exceptions.JMESPathError | TypeError | ValueError):
                raise
            message = str(exc).replace("\n", " ")
            raise PipeFailure(
                f'pipe {index} of step "{step.id}" into "{pipe.table}": map {pipe.map!r} '
                f"failed: {message}",
                details=_where(step, index, pipe.table),
            )
        fast = compiled.fast
        try:
            size = len(_dumps(data))
        except TypeError:
            size = -1
        if size < 0 or size > max_bytes or fast is None or not fast(data):
            try:  # the full check: the validator decides, and words any problem
                check_row(compiled, data, max_bytes, code="PIPE_ROW_INVALID")
            except InvalidTable as exc:
                raise PipeFailure(
                    f'pipe {index} of step "{step.id}": {exc.message}',
                    code="PIPE_ROW_INVALID",
                    details={**_where(step, index, pipe.table), "errors": exc.details},
                )
        rows.append(
            TableRow(
                table=pipe.table,
                data=data,
                tenant_id=execution.tenant_id,
                execution_id=execution.id,
                step_id=step.id,
                created_at=now,
            )
        )
    return rows


def _where(step: Step, index: int, table: str) -> dict[str, Any]:
    return {"step_id": step.id, "pipe": index, "table": table}
