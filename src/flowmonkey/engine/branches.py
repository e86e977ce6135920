"""The branch supervisor: runs the active tokens of one execution concurrently.

Each branch step commits on its own (commits are serialised per execution, see
``Run.commit``), so a crash mid-branch resumes only the unfinished branches.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import TYPE_CHECKING, Any

from flowmonkey.engine import eager
from flowmonkey.engine.eager import cancel_soon
from flowmonkey.engine.run import BRANCH
from flowmonkey.engine.step import execute_step
from flowmonkey.model.execution import Token, TokenStatus

if TYPE_CHECKING:
    from flowmonkey.engine.run import Run
    from flowmonkey.engine.runtime import Runtime

__all__ = ["run_branches"]

_ACTIVE = TokenStatus.ACTIVE


def _ended(execution: Any) -> bool:
    # A function, not an inline check: the status changes while branches await.
    return bool(execution.status.is_terminal)


async def run_branches(engine: Runtime, run: Run) -> None:
    """Run every active token concurrently until none is active (or the run ends)."""

    run.concurrent = True
    execution = run.execution
    tasks: dict[str, asyncio.Task[None]] = {}
    # Finished branches report here: O(1) per completion, where asyncio.wait over all
    # branches would cost O(branches) each time (quadratic for a wide fork).
    finished: asyncio.Queue[tuple[str, asyncio.Task[None]]] = asyncio.Queue()

    async def branch(token: Token) -> None:
        while token.status is _ACTIVE and not execution.status.is_terminal:
            await execute_step(engine, run, token)

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
