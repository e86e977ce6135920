"""Handlers used by the crash tests (loaded by worker subprocesses with ``--handlers``).

Every handler call appends one line to the file named by ``FLOWMONKEY_SIDE_EFFECTS``
*before* doing its work, so a handler that is killed mid-step still leaves its side
effect behind, exactly like a real one would (an e-mail sent, a row inserted)::

    <unix time> <pid> <execution_id> <step_id> <run_number> <attempt>
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from flowmonkey import FlowBuilder, Result, handler
from flowmonkey.model.flow import Flow

SIDE_EFFECTS_ENV = "FLOWMONKEY_SIDE_EFFECTS"


def record(ctx: Any) -> None:
    """Append this call's side-effect line (``O_APPEND``: one write, never interleaved)."""
    path = os.environ.get(SIDE_EFFECTS_ENV)
    if not path:
        return
    line = (
        f"{time.time():.6f} {os.getpid()} {ctx.execution_id} {ctx.step.id} "
        f"{ctx.run_number} {ctx.attempt}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@handler("crash.work")
async def work(ctx: Any) -> Result:
    """Record the side effect, then 'work' for ``config.sleep`` seconds."""
    record(ctx)
    await asyncio.sleep(float((ctx.config or {}).get("sleep", 0.0)))
    return Result.success({"step": ctx.step.id})


@handler("crash.sync_work")
def sync_work(ctx: Any) -> Result:
    """The same as a sync handler (runs in the engine's thread pool)."""
    record(ctx)
    time.sleep(float((ctx.config or {}).get("sleep", 0.0)))
    return Result.success({"step": ctx.step.id})


def steps_flow(flow_id: str = "crash", *, steps: int = 3, sleep: float = 0.1,
               sync: bool = False) -> Flow:  # fmt: skip
    """A linear flow of ``steps`` work steps ``s1..sN`` that each take ``sleep`` seconds."""
    builder = FlowBuilder(flow_id)
    kind = "crash.sync_work" if sync else "crash.work"
    for i in range(1, steps + 1):
        builder.step(f"s{i}", kind, config={"sleep": sleep})
    return builder.build()


# -- pipes (tests/crash/test_pipes_exactly_once.py) ---------------------------------------

STALL_ENV = "FLOWMONKEY_STALL_AFTER_PIPES"
"""When set to a step id, a worker stalls after that step's pipe rows are built (the
handler has returned) and before its commit, writing ``<time> <pid> <eid>`` to the
side-effect file's name + ``.stalled``: the test SIGKILLs it right there."""

PIPED_SCHEMA = {
    "type": "object",
    "properties": {
        "execution_id": {"type": "string"},
        "step": {"type": "string"},
        "attempt": {"type": "integer"},
    },
    "required": ["execution_id", "step"],
}


@handler("crash.flaky")
async def flaky(ctx: Any) -> Result:
    """Fails the first two attempts, then succeeds."""
    record(ctx)
    if ctx.attempt <= 2:
        return Result.failure("FLAKY", f"attempt {ctx.attempt}")
    return Result.success({"step": ctx.step.id})


def piped_flow(flow_id: str = "piped", *, steps: int = 2, kind: str = "crash.work",
               retry: dict[str, Any] | None = None) -> Flow:  # fmt: skip
    """``steps`` work steps, each piping one row into the ``piped`` table."""
    builder = FlowBuilder(flow_id)
    for i in range(1, steps + 1):
        builder.step(f"s{i}", kind, config={"sleep": 0}, retry=retry)
        builder.pipe(
            "piped", "{execution_id: execution.id, step: execution.step_id, "
            "attempt: execution.attempt}",
        )  # fmt: skip
    return builder.build()


def _install_stall(step_id: str) -> None:
    import flowmonkey.engine.step as step_module

    original = step_module.pipe_rows

    async def stalled(runtime: Any, run: Any, step: Any, *args: Any) -> Any:
        rows = await original(runtime, run, step, *args)
        if step.id == step_id:
            path = os.environ[SIDE_EFFECTS_ENV] + ".stalled"
            line = f"{time.time():.6f} {os.getpid()} {run.execution.id}\n"
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
            await asyncio.sleep(3600)  # until the test kills this process
        return rows

    step_module.pipe_rows = stalled  # type: ignore[assignment]


if os.environ.get(STALL_ENV):
    _install_stall(os.environ[STALL_ENV])
