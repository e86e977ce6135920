"""Taking and giving back an execution's lease: ``acquire`` one, wrap a granted lease in a
``Run`` (``open_run``), give it back untouched."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowmonkey import errors
from flowmonkey.engine.lookup import get_flow
from flowmonkey.engine.run import Run
from flowmonkey.engine.transitions import fail_execution
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.flow import Flow
from flowmonkey.stores.base import Acquired

if TYPE_CHECKING:
    from flowmonkey.engine.runtime import Runtime

__all__ = ["acquire", "note_recovery", "open_run", "release_untouched"]

_PENDING = ExecutionStatus.PENDING
_RUNNING = ExecutionStatus.RUNNING


async def acquire(
    engine: Runtime, execution_id: str, *, steal: bool = False, start: bool = True
) -> Acquired:
    """Lease an execution to this engine (``start=False`` leaves ``pending`` as is); an
    execution this process is already driving comes back without a lease unless
    ``steal``."""
    inflight = engine.inflight.get(execution_id)
    if inflight is not None and not steal:
        return Acquired(execution=inflight.execution.clone(), lease=None)
    return await engine.store.acquire(
        execution_id,
        owner=engine.lease_owner(),
        now=engine.clock.now(),
        lease_for=engine.options.lease_for,
        steal=steal,
        start=start,
    )


async def open_run(engine: Runtime, acquired: Acquired) -> Run | None:
    """Wrap a granted lease in a ``Run`` (None if no lease was granted)."""
    if acquired.lease is None:
        return None
    execution = acquired.execution
    try:
        flow = await get_flow(engine, execution.flow_id, execution.flow_version)
    except errors.FlowNotFound as exc:
        # Nothing can ever run it here: fail it (terminal, lease released) rather than
        # leave it running and unclaimable.
        placeholder = Flow(
            id=execution.flow_id, version=execution.flow_version, initial_step_id="", steps={}
        )
        run = Run(engine, execution, acquired.lease, placeholder)
        await fail_execution(run, exc.code, exc.message, step_id=execution.current_step_id)
        return run
    except BaseException:
        await engine.store.release(acquired.lease)
        raise
    run = Run(engine, execution, acquired.lease, flow)
    if acquired.recovered:
        note_recovery(run)
    return run


def note_recovery(run: Run) -> None:
    """A crashed or stalled run is picked up again: ``run_number += 1``."""
    execution = run.execution
    execution.run_number += 1
    run.emit(
        "execution.recovered",
        run.engine.clock.now(),
        {"run_number": execution.run_number, "step_id": execution.current_step_id},
    )


async def release_untouched(engine: Runtime, run: Run) -> None:
    """Give the lease back without doing anything; a ``running`` execution (acquiring made
    a pending one running) is left ``pending`` so it stays runnable for anyone."""
    if run.released:
        return
    if run.execution.status is _RUNNING:
        run.execution.status = _PENDING
        await run.commit(release=True)
        await engine.notify_runnable(run.execution.id)
    else:
        await engine.store.release(run.lease)
        run.released = True
