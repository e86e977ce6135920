"""Commands that drive executions: ``run``, ``resume``, ``signal``, ``tick`` and ``cancel``.

``run``/``resume``/``signal`` exit 0 when the execution completed, 1 when it failed or
was cancelled, 3 when it is waiting (or otherwise unfinished), 2 on a usage error.
``tick`` runs whatever is due or runnable once and exits 0.
"""

from __future__ import annotations

import shlex
import typing as t

import click

from flowmonkey.cli.commands_bulk import filter_option, run_bulk
from flowmonkey.cli.errors import EXIT_COMPLETED, EXIT_FAILED, EXIT_WAITING, CliError
from flowmonkey.cli.options import (
    common_options,
    engine_options,
    handlers_option,
    max_wait_option,
)
from flowmonkey.cli.output import Output, format_time
from flowmonkey.cli.progress import ProgressPrinter
from flowmonkey.cli.state import (
    DEFAULT_STORE,
    CliState,
    check_handlers,
    get_state,
    load_handlers,
    open_engine,
    parse_json_arg,
    parse_json_object,
    read_flow,
    run_async,
)
from flowmonkey.engine.engine import Engine
from flowmonkey.engine.results import RunResult
from flowmonkey.errors import ExecutionNotFound
from flowmonkey.model.execution import Execution, ExecutionStatus, TokenStatus

__all__ = ["cancel", "exit_code_for", "resume", "run", "signal", "tick"]

_SELF_CONTINUING_WAITS = frozenset({"timer", "retry", "child"})
"""Waits that end without a resume or signal: a worker (or ``tick``) carries them on."""


def exit_code_for(status: ExecutionStatus) -> int:
    """0 completed, 1 failed or cancelled, 3 waiting or not finished."""
    if status is ExecutionStatus.COMPLETED:
        return EXIT_COMPLETED
    if status in (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED):
        return EXIT_FAILED
    return EXIT_WAITING


async def settle(engine: Engine, result: RunResult, max_wait: float) -> RunResult:
    """Keep running while the execution waits for a timer due within ``max_wait`` seconds
    (retry backoffs, short delays); stop at waits for resume/signal."""
    import asyncio

    while result.status is ExecutionStatus.WAITING and result.wake_at is not None:
        delay = (result.wake_at - engine.clock.now()).total_seconds()
        if delay > max_wait:
            break
        await asyncio.sleep(max(delay, 0.0))
        result = await engine.run(result.execution.id)
    return result


def finish(out: Output, state: CliState, result: RunResult) -> t.NoReturn:
    """Print the run summary (or the JSON document) and exit with the status's code."""
    execution = result.execution
    if out.json_mode:
        out.document(execution.to_dict())
    else:
        out.line("")
        out.execution(execution)
        if execution.status is ExecutionStatus.WAITING:
            _how_to_continue(out, state, execution)
    raise click.exceptions.Exit(exit_code_for(result.status))


def _wait_kinds(execution: Execution) -> set[str | None]:
    """How the waiting tokens wait (``timer``, ``signal``, ...; joins left out)."""
    kinds = {
        token.wait_kind
        for token in execution.tokens
        if token.status is TokenStatus.WAITING and token.wait_kind != "join"
    }
    if not kinds:  # no token detail: judge by the wake time
        kinds = {"timer" if execution.wake_at is not None else None}
    return kinds


def _command(state: CliState, *args: str, handlers: bool = True) -> str:
    """A copy-pasteable ``flowmonkey ...`` line for this store and these handlers."""
    words = ["flowmonkey"]
    if state.store_url != DEFAULT_STORE:
        words += ["--store", state.store_url]
    words += args
    if handlers:
        for spec in state.handler_specs:
            words += ["--handlers", spec]
    return shlex.join(words)


def _how_to_continue(out: Output, state: CliState, execution: Execution) -> None:
    kinds = _wait_kinds(execution)
    if kinds & _SELF_CONTINUING_WAITS:
        # Once a timer is due, resume would refuse (the wake is applied first): the
        # execution is simply runnable, and a worker or `tick` drives it.
        if kinds & {"timer", "retry"}:
            what = "timer" if "timer" in kinds else "retry"
            due = f" at {format_time(execution.wake_at)}" if execution.wake_at is not None else ""
            out.line(f"the {what} is durable: once due{due}, it continues when a worker runs:",
                     "dim")  # fmt: skip
        else:
            out.line("it waits for child executions; they continue when a worker runs:", "dim")
        out.line("  " + _command(state, "worker"), "bold")
        out.line("or run what is due once with:", "dim")
        out.line("  " + _command(state, "tick"), "bold")
    if kinds - _SELF_CONTINUING_WAITS:
        out.line("to continue it, run:", "dim")
        out.line("  " + _command(state, "resume", execution.id) + " --data JSON", "bold")


def _start(state: CliState, handler_specs: tuple[str, ...]) -> tuple[Output, t.Any]:
    state.handler_specs = list(handler_specs)
    out = Output(json_mode=state.json_output)
    handlers = load_handlers(handler_specs)
    return out, handlers


@click.command()
@click.argument("flow_file", metavar="FLOW_FILE")
@click.option("--input", "input_", metavar="JSON|@FILE", help="Initial context (a JSON object).")
@handlers_option
@engine_options
@click.option("--tenant", metavar="T", help="Tenant id of the execution.")
@click.option("--idempotency-key", metavar="K", help="Return the existing execution for K.")
@max_wait_option
@common_options
def run(
    flow_file: str,
    input_: str | None,
    handler_specs: tuple[str, ...],
    tenant: str | None,
    idempotency_key: str | None,
    max_wait: float,
) -> None:
    """Validate FLOW_FILE, save it in the store, create an execution and run it.

    Exit 0 completed, 1 failed/cancelled, 3 waiting (the id and how to resume are shown).
    """
    state = get_state()
    context = parse_json_object(input_, "--input")
    out, handlers = _start(state, handler_specs)
    flow = read_flow(flow_file)
    check_handlers(flow, handlers)

    async def go() -> RunResult:
        async with open_engine(state, handlers, recover=True) as engine:
            engine.on("*", ProgressPrinter(out))
            await engine.save_flow(flow)
            created = await engine.create(
                flow.id, context, version=flow.version, tenant_id=tenant,
                idempotency_key=idempotency_key,
            )  # fmt: skip
            if not created.created:
                out.line(
                    f"idempotency key {idempotency_key!r} already used: "
                    f"execution {created.execution.id}",
                    "yellow",
                )
            result = await engine.run(created.execution.id)
            return await settle(engine, result, max_wait)

    finish(out, state, run_async(go()))


async def _prepare(engine: Engine, execution_id: str, handlers: t.Any) -> None:
    """Refuse (before changing anything) when a step of the flow has no handler."""
    execution = await engine.get(execution_id)
    if execution is None:
        raise ExecutionNotFound(execution_id)
    if getattr(engine, "remote", False):
        return  # --server: the server's workers hold the handlers
    flow = await engine.get_flow(execution.flow_id, execution.flow_version)
    check_handlers(flow, handlers)


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option("--data", metavar="JSON|@FILE", help="Resume data (stored at context.resumeData).")
@click.option("--token", metavar="T", help="The resume token the waiting step created.")
@handlers_option
@engine_options
@max_wait_option
@common_options
def resume(
    execution_id: str,
    data: str | None,
    token: str | None,
    handler_specs: tuple[str, ...],
    max_wait: float,
) -> None:
    """Resume the waiting execution ID with --data and keep running it.

    The flow is loaded from the store; pass the same --handlers as for `run`.
    """
    state = get_state()
    payload = parse_json_arg(data, "--data")
    out, handlers = _start(state, handler_specs)

    async def go() -> RunResult:
        async with open_engine(state, handlers, recover=True) as engine:
            await _prepare(engine, execution_id, handlers)
            engine.on("*", ProgressPrinter(out))
            result = await engine.resume(execution_id, payload, token=token)
            return await settle(engine, result, max_wait)

    finish(out, state, run_async(go()))


@click.command()
@click.argument("execution_id", metavar="ID")
@click.argument("step_id", metavar="STEP")
@click.option("--port", metavar="P", help="Port of the step to continue on.")
@click.option("--payload", metavar="JSON|@FILE", help="Signal payload (stored at outputKey).")
@handlers_option
@engine_options
@max_wait_option
@common_options
def signal(
    execution_id: str,
    step_id: str,
    port: str | None,
    payload: str | None,
    handler_specs: tuple[str, ...],
    max_wait: float,
) -> None:
    """Send a signal to the step STEP that execution ID waits at, and keep running it."""
    state = get_state()
    body = parse_json_arg(payload, "--payload")
    out, handlers = _start(state, handler_specs)

    async def go() -> RunResult:
        async with open_engine(state, handlers, recover=True) as engine:
            await _prepare(engine, execution_id, handlers)
            engine.on("*", ProgressPrinter(out))
            result = await engine.signal(execution_id, step_id, port=port, payload=body)
            return await settle(engine, result, max_wait)

    finish(out, state, run_async(go()))


async def _check_due_handlers(engine: Engine, handlers: t.Any) -> None:
    """Refuse (before changing anything) when an execution ``tick`` would drive needs a
    handler that is not loaded: it would fail with ``HANDLER_NOT_FOUND``."""
    now = engine.clock.now()
    checked: set[tuple[str, str]] = set()
    cursor: str | None = None
    while True:
        page = await engine.list(
            status=[ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.WAITING],
            limit=500,
            cursor=cursor,
        )
        for execution in page.items:
            key = (execution.flow_id, execution.flow_version)
            if key in checked or not _runs_now(execution, now):
                continue
            checked.add(key)
            check_handlers(await engine.get_flow(*key), handlers)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _runs_now(execution: Execution, now: t.Any) -> bool:
    """Whether ``run_until_idle`` at ``now`` may run a step of ``execution``."""
    if execution.status is not ExecutionStatus.WAITING:
        return True
    return any(
        token.status is TokenStatus.WAITING
        and any(at is not None and at <= now for at in (token.wake_at, token.wait_deadline_at))
        for token in execution.tokens
    )


@click.command()
@handlers_option
@engine_options
@common_options
def tick(handler_specs: tuple[str, ...]) -> None:
    """Run what is due now, once: apply due timers, retries and timeouts, then drive
    every runnable execution until none is left; print how many were driven.

    A one-shot `worker` (for cron jobs and scripts): pass the --handlers the flows need
    (a due execution whose flow needs a missing handler is refused, exit 2, before
    anything changes). Exit 0, also when nothing was due.
    """
    state = get_state()
    out, handlers = _start(state, handler_specs)

    async def go() -> int:
        async with open_engine(state, handlers, recover=True) as engine:
            await _check_due_handlers(engine, handlers)
            engine.on("*", ProgressPrinter(out))
            return await engine.run_until_idle()

    driven = run_async(go())
    if out.json_mode:
        out.document({"driven": driven})
    elif driven:
        out.line(f"drove {driven} execution(s)")
    else:
        out.line("nothing to do: no execution is runnable or due")


@click.command()
@click.argument("execution_id", metavar="ID", required=False)
@click.option("--reason", metavar="R", help="Why it is cancelled (recorded).")
@filter_option
@common_options
def cancel(
    execution_id: str | None, reason: str | None, filters: tuple[str, ...], dry_run: bool
) -> None:
    """Cancel execution ID (and its children). Exit 2 if it already finished.

    With --filter K=V instead of ID: cancel every matching execution (at most 10,000;
    --dry-run to see how many first); exit 1 when some could not be cancelled.
    """
    state = get_state()
    if (execution_id is None) == (not filters):
        raise CliError("give an execution ID or --filter KEY=VALUE (not both)", code="USAGE")
    if execution_id is None:
        run_bulk(state, "cancel", filters, dry_run=dry_run, reason=reason)
    out = Output(json_mode=state.json_output)

    async def go() -> t.Any:
        async with open_engine(state) as engine:
            return await engine.cancel(execution_id, source="user", reason=reason)

    result = run_async(go())
    if not result.cancelled:
        raise CliError(
            f'cannot cancel execution "{execution_id}": {result.error or "not cancellable"}',
            code="NOT_CANCELLABLE",
        )
    execution = result.execution
    if out.json_mode:
        out.document(
            {"cancelled": True, "previous_status": str(result.previous_status),
             "children_cancelled": result.children_cancelled,
             "execution": execution.to_dict() if execution else None}
        )  # fmt: skip
        return
    more = (
        f" ({result.children_cancelled} child execution(s) too)"
        if result.children_cancelled
        else ""
    )
    out.styled([("cancelled ", "bold magenta"), (f"{execution_id}{more}", None)])
    if execution is not None and execution.finished_at is not None:
        out.line(f"at {format_time(execution.finished_at)}", "dim")
