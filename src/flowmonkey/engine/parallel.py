"""Moving tokens: ``advance`` moves a token to its next step; ``parallel`` forks one token
per branch and ``join`` merges them. (The branch supervisor that runs the active tokens of
one execution concurrently is ``step.run_branches``.)

Each branch step commits on its own (commits are serialised per execution, see
``Run.commit``), so a crash mid-branch resumes only the unfinished branches: the
committed tokens say exactly where each branch stands.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowmonkey.engine.eager import cancel_soon
from flowmonkey.engine.transitions import (
    complete_if_done,
    fail_execution,
    finish_terminal,
    parked,
    settle_status,
)
from flowmonkey.model.execution import ExecutionStatus, StepRecord, Token, TokenStatus
from flowmonkey.stores.base import TaskQuery

if TYPE_CHECKING:
    from flowmonkey.engine.run import Run
    from flowmonkey.engine.runtime import Runtime
    from flowmonkey.model.flow import Step

__all__ = ["advance", "fork", "join_arrive"]

_ACTIVE = TokenStatus.ACTIVE
_WAITING = TokenStatus.WAITING
_DONE = TokenStatus.DONE
_PENDING = ExecutionStatus.PENDING
_WAITING_S = ExecutionStatus.WAITING


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


async def fork(engine: Runtime, run: Run, token: Token, step: Step) -> tuple[str, str | None]:
    """Replace ``token`` by one token per branch and commit."""
    execution = run.execution
    branches = step.config.get("branches") or []
    missing = [b for b in branches if b not in run.flow.steps]
    if not branches or missing:
        await fail_execution(
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


async def join_arrive(
    engine: Runtime, run: Run, token: Token, step: Step
) -> tuple[str, str | None]:
    """A branch token reached a ``join``: park it, or merge the fork and continue."""
    execution = run.execution
    fork_id = token.fork_id
    if fork_id is None:
        await fail_execution(
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
    return await advance(
        engine, run, continuation, step, step.transitions.on_success, "success", now
    )


async def _pending_tasks(engine: Runtime, run: Run, dropped: list[Token]) -> list[Any]:
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


async def advance(
    engine: Runtime,
    run: Run,
    token: Token,
    step: Step,
    target: str | None,
    outcome: str,
    now: datetime,
    *,
    hand_off: bool = False,
) -> tuple[str, str | None]:
    """Move ``token`` from ``step`` to ``target`` (``None`` ends the token) and commit.

    ``hand_off``: commit the move as ``pending`` and give the lease back (the caller
    does not run the next step; a worker will).
    """
    execution = run.execution
    if target is None:
        token.status = _DONE
        if complete_if_done(run, now):
            await run.commit(release=True, at=now)
            await finish_terminal(run)
            return outcome, None
        stop = parked(execution)
        if stop:
            execution.status = _WAITING_S
        await run.commit(release=stop, at=now)
        return outcome, None
    steps = run.flow.steps
    # Without the flow here (a hand-off from a process that lacks it) any target goes:
    # validation checked them all when the flow was saved.
    if target not in steps and run.flow_known:
        await fail_execution(
            run,
            "INVALID_TRANSITION",
            f'Step "{step.id}" -> "{target}" not found',
            step_id=step.id,
        )
        return outcome, None
    token.step_id = target
    token.visit = execution.step_count
    run.emit(
        "transition",
        now,
        {"from_step_id": step.id, "to_step_id": target, "outcome": outcome},
    )
    target_step = steps[target] if run.flow_known else None
    if (
        target_step is not None
        and target_step.type == "join"
        and token.fork_id is not None
        and engine.handlers.get("join") is None
    ):
        # Arriving at a join is only a token move: do it in this step's commit rather
        # than in one of its own (halves the commits of a wide fork).
        await join_arrive(engine, run, token, target_step)
        return outcome, target
    if hand_off:
        execution.status = _PENDING
        await run.commit(release=True, at=now)
        await engine.notify_runnable(execution.id)
        return outcome, target
    await run.commit(at=now)
    return outcome, target
