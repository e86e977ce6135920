"""Parallel branches: ``parallel`` forks one token per branch, ``join`` merges them, and
the branch supervisor runs the active tokens of one execution concurrently.

Each branch step commits on its own (commits are serialised per execution, see
``Run.commit``), so a crash mid-branch resumes only the unfinished branches: the
committed tokens say exactly where each branch stands.
"""

from __future__ import annotations

import asyncio
import contextvars
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowmonkey.engine import eager
from flowmonkey.engine import step as step_mod
from flowmonkey.engine.eager import cancel_soon
from flowmonkey.engine.leasing import settle_status
from flowmonkey.engine.run import BRANCH
from flowmonkey.model.execution import ExecutionStatus, StepRecord, Token, TokenStatus
from flowmonkey.stores.base import TaskQuery

if TYPE_CHECKING:
    from flowmonkey.engine.engine import Engine
    from flowmonkey.engine.run import Run
    from flowmonkey.model.flow import Step

__all__ = ["fork", "join_arrive", "run_branches"]

_ACTIVE = TokenStatus.ACTIVE
_WAITING = TokenStatus.WAITING
_DONE = TokenStatus.DONE


def _record(run: Run, step: Step, token: Token, outcome: str, now: datetime) -> None:
    execution = run.execution
    execution.step_count += 1
    if run.engine.options.record_history:
        run.history.append(
            StepRecord(
                step_id=step.id,
                handler_type=step.type,
                attempt=1,
                run_number=execution.run_number,
                outcome=outcome,
                started_at=now,
                finished_at=now,
                duration_ms=0.0,
                token_id=token.id,
            )
        )


async def fork(engine: Engine, run: Run, token: Token, step: Step) -> tuple[str, str | None]:
    """Replace ``token`` by one token per branch and commit."""
    execution = run.execution
    branches = step.config.get("branches") or []
    missing = [b for b in branches if b not in run.flow.steps]
    if not branches or missing:
        await step_mod.fail_execution(
            run,
            "INVALID_TRANSITION",
            f'parallel step "{step.id}" has unknown branches {missing}',
            step_id=step.id,
        )
        return "error", None
    now = engine.clock.now()
    _record(run, step, token, "success", now)
    fork_id = f"{token.id}/{execution.step_count}"
    token.status = _DONE
    token.step_id = step.id
    new = [
        Token(
            id=f"{fork_id}.{i}",
            step_id=branch,
            parent_id=token.id,
            fork_id=fork_id,
            branch=branch,
            visit=execution.step_count,
        )
        for i, branch in enumerate(branches)
    ]
    execution.tokens.extend(new)
    run.emit(
        "token.forked",
        now,
        {
            "step_id": step.id,
            "fork_id": fork_id,
            "branches": list(branches),
            "token_ids": [t.id for t in new],
        },
    )
    await run.commit(at=now)
    return "success", None


async def join_arrive(engine: Engine, run: Run, token: Token, step: Step) -> tuple[str, str | None]:
    """A branch token reached a ``join``: park it, or merge the fork and continue."""
    execution = run.execution
    fork_id = token.fork_id
    if fork_id is None:
        await step_mod.fail_execution(
            run,
            "INVALID_TRANSITION",
            f'join "{step.id}" reached outside a parallel fork',
            step_id=step.id,
        )
        return "error", None
    now = engine.clock.now()
    mode = step.config.get("mode") or "all"
    token.step_id = step.id
    if mode == "all":
        token.status = _WAITING
        token.wait_kind = "join"
        token.wait_reason = f"join {step.id}"
        # Count down instead of scanning every sibling on each arrival (quadratic for a
        # wide fork); the count is rebuilt from the tokens when this run first sees the
        # fork, and checked by a full scan before merging.
        left = run.join_waits.get(fork_id)
        if left is None:
            left = sum(
                1 for t in execution.tokens if t.fork_id == fork_id and not _arrived(t, step)
            )
        else:
            left -= 1
        run.join_waits[fork_id] = left
        if left > 0 or any(
            t.fork_id == fork_id and not _arrived(t, step) for t in execution.tokens
        ):
            if run.touched is not None:
                run.touched = [token]
            settle_status(execution)
            await run.commit(at=now, release=execution.status is ExecutionStatus.WAITING)
            return "wait", step.id
    # The merge is the join's one "step" (history record, step count); arrivals are only
    # token moves and count for nothing.
    _record(run, step, token, "success", now)
    siblings = [t for t in execution.tokens if t.fork_id == fork_id and t is not token]
    run.join_waits.pop(fork_id, None)
    if mode == "all":
        dropped: list[Token] = []
    else:
        dropped = [t for t in siblings if t.status is not _DONE]
    # Every await happens before the tokens change: the branch runner must never see a
    # half-merged fork (it would start the continuation early).
    pending = await _pending_tasks(engine, run, dropped) if dropped else []
    parent = next((t for t in execution.tokens if t.id == (token.parent_id or "")), None)
    merged_ids = [token.id, *(t.id for t in siblings)]
    for t in [token, *siblings]:
        t.status = _DONE
        t.wait_kind = t.wait_reason = None
        t.wake_at = t.wait_deadline_at = t.wait_started_at = None
    continuation = Token(
        id=f"{fork_id}.j",
        step_id=step.id,
        parent_id=parent.parent_id if parent is not None else None,
        fork_id=parent.fork_id if parent is not None else None,
        branch=parent.branch if parent is not None else None,
        visit=execution.step_count,
    )
    # Forget the merged branches and their parent: the continuation replaces them, so
    # loops around a fork do not grow the token list.
    gone = set(merged_ids) | ({parent.id} if parent is not None else set())
    execution.tokens[:] = [t for t in execution.tokens if t.id not in gone]
    execution.tokens.append(continuation)
    run.emit(
        "token.joined",
        now,
        {
            "step_id": step.id,
            "fork_id": fork_id,
            "mode": mode,
            "token_ids": merged_ids,
            "dropped": [t.id for t in dropped],
        },
    )
    if dropped:
        _drop(run, dropped, pending, now)
    execution.status = ExecutionStatus.RUNNING
    return await step_mod.advance(
        engine, run, continuation, step, step.transitions.on_success, "success", now
    )


async def _pending_tasks(engine: Engine, run: Run, dropped: list[Token]) -> list[Any]:
    """Pending user tasks of the dropped tokens: stored ones and ones still buffered."""
    ids = {t.id for t in dropped}
    stored = await engine.store.list_tasks(
        TaskQuery(execution_id=run.execution.id, status="pending", limit=10_000)
    )
    found = {task.id: task for task in stored if task.token_id in ids}
    for task in run.tasks:
        if task.token_id in ids and task.status == "pending":
            found[task.id] = task
    return list(found.values())


def _drop(run: Run, dropped: list[Token], pending: list[Any], now: datetime) -> None:
    """Cancel the losing branches of an ``any`` join: their handlers and pending tasks."""
    for token in dropped:
        task = run.token_tasks.get(token.id)
        if task is not None and task is not asyncio.current_task():
            cancel_soon(task, run.branches_started)
    buffered = {id(t) for t in run.tasks}
    for task_record in pending:
        task_record.status = "cancelled"
        if id(task_record) not in buffered:
            run.tasks.append(task_record)
        run.emit(
            "task.cancelled",
            now,
            {"task_id": task_record.id, "step_id": task_record.step_id, "reason": "branch dropped"},
        )


def _ended(execution: Any) -> bool:
    return bool(execution.status.is_terminal)


def _arrived(token: Token, join: Step) -> bool:
    """Arrived at ``join`` (or ended elsewhere, on a path to ``null``: not waited for)."""
    return token.status is _DONE or (token.step_id == join.id and token.wait_kind == "join")


async def run_branches(engine: Engine, run: Run) -> None:
    """Run every active token concurrently until none is active (or the run ends)."""

    run.concurrent = True
    execution = run.execution
    tasks: dict[str, asyncio.Task[None]] = {}
    # Finished branches report here: O(1) per completion, where asyncio.wait over all
    # branches would cost O(branches) each time (quadratic for a wide fork).
    finished: asyncio.Queue[tuple[str, asyncio.Task[None]]] = asyncio.Queue()

    async def branch(token: Token) -> None:
        while token.status is _ACTIVE and not execution.status.is_terminal:
            await step_mod.execute_step(engine, run, token)

    def spawn(token: Token) -> None:
        # Eager start: run the branch in this task until it first has to wait. Most
        # branch steps never do (quick handlers, an in-memory store), and a task per
        # branch would cost more than the step. At the first real wait the rest of the
        # branch moves to its own task (see ``HANDOFF``).
        coro = branch(token)
        context = contextvars.copy_context()
        context.run(BRANCH.set, object())
        try:
            first = context.run(coro.send, None)
        except StopIteration:
            return
        task = asyncio.get_running_loop().create_task(
            eager.continue_in_task(coro, first, run.branches_started), context=context
        )
        tasks[token.id] = task
        run.token_tasks[token.id] = task
        token_id = token.id

        def report(done: asyncio.Task[None]) -> None:
            finished.put_nowait((token_id, done))

        task.add_done_callback(report)

    run.supervisor = asyncio.current_task()
    try:
        while not execution.status.is_terminal:
            spawned = False
            for token in list(execution.tokens):
                if token.status is _ACTIVE and token.id not in tasks:
                    spawn(token)
                    spawned = True
                    if _ended(execution):  # an eager branch may have ended the run
                        break
            if spawned:
                continue  # eager branches may have merged a join or forked again
            if not tasks:
                return
            token_id, task = await finished.get()
            if tasks.get(token_id) is task:
                del tasks[token_id]
                run.token_tasks.pop(token_id, None)
            if task.cancelled():
                continue  # a dropped branch of an ``any`` join
            exc = task.exception()
            if exc is not None:
                raise exc
    finally:
        # Stop only the branches busy in a handler: one that is applying or committing a
        # step (perhaps the one that ended the run, about to run its hooks) finishes it.
        started = run.branches_started
        for task in tasks.values():
            if task in run.handler_tasks or task not in started or not _ended(execution):
                cancel_soon(task, started)
        if tasks:
            await asyncio.gather(*tasks.values(), return_exceptions=True)
        run.token_tasks.clear()
        started.clear()
        run.supervisor = None
