"""Pipes at run time: build a step's rows before its commit, or fail the step.

``pipe_rows`` evaluates the step's pipes that fire on its outcome and validates each row
against its table. Any problem fails the step (``PIPE_ERROR``: the map failed or the
table is missing; ``PIPE_ROW_INVALID``: the row breaks the table's schema or the size
limit) and no row of that step is written. The rows travel in ``StepCommit.table_rows``,
so they are written if and only if the step's outcome is committed.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

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


def _search(runtime: Runtime, expression: str, data: dict[str, Any]) -> Any:
    cache = runtime.tables.expressions
    evaluate = cache.get(expression)
    if evaluate is None:
        import jmespath  # lazily: only engines running pipes pay for it

        compiled = jmespath.compile(expression)
        # The usual map, {a: output.id, b: 'paid'}, is read directly (fastpaths.py).
        evaluate = cache[expression] = compile_map(compiled) or compiled.search
    return evaluate(data)


def _scope(run: Run, step: Step, step_input: Any, result: Result, attempt: int) -> dict[str, Any]:
    execution = run.execution
    fixed = run.pipe_scope
    if fixed is None:
        # What does not change while this process drives the execution, built once.
        fixed = run.pipe_scope = {
            "id": execution.id,
            "flow_id": execution.flow_id,
            "flow_version": execution.flow_version,
            "tenant_id": execution.tenant_id,
            "correlation_id": execution.correlation_id,
            "created_at": execution.created_at.isoformat(),
        }
    started = execution.started_at
    return {
        "input": step_input,
        "output": result.output if result.outcome == "success" else None,
        "error": result.error.to_dict() if result.error is not None else None,
        "context": dict(execution.context),
        "execution": {
            **fixed,
            "metadata": dict(execution.metadata),
            "step_id": step.id,
            "attempt": attempt,
            "run_number": execution.run_number,
            "started_at": started.isoformat() if started is not None else None,
        },
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
    import jmespath.exceptions

    execution = run.execution
    scope: dict[str, Any] | None = None
    rows: list[TableRow] = []
    max_bytes = runtime.options.context_limits.max_value_bytes
    for index, pipe in enumerate(step.pipes):
        if not pipe.fires_on(outcome):
            continue
        where = {"step_id": step.id, "pipe": index, "table": pipe.table}
        compiled = await runtime.tables.get(pipe.table)
        if compiled is None:
            raise PipeFailure(f'pipe {index} of step "{step.id}": table "{pipe.table}" not found',
                              details=where)  # fmt: skip
        if scope is None:
            scope = _scope(run, step, step_input, result, attempt)
        try:
            data = _search(runtime, pipe.map, scope)
        except (jmespath.exceptions.JMESPathError, TypeError, ValueError) as exc:
            message = str(exc).replace("\n", " ")
            raise PipeFailure(
                f'pipe {index} of step "{step.id}" into "{pipe.table}": map {pipe.map!r} '
                f"failed: {message}",
                details=where,
            )
        try:
            check_row(compiled, data, max_bytes, code="PIPE_ROW_INVALID")
        except InvalidTable as exc:
            raise PipeFailure(
                f'pipe {index} of step "{step.id}": {exc.message}',
                code="PIPE_ROW_INVALID",
                details={**where, "errors": exc.details},
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
