"""Taking and giving back an execution's lease: ``acquire`` one, wrap a granted lease in a
``Run`` (``open_run``), give it back untouched."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

from flowmonkey import errors
from flowmonkey.engine.lookup import get_flow
from flowmonkey.engine.run import Run
from flowmonkey.model.execution import ExecutionStatus, Token, TokenStatus
from flowmonkey.model.flow import Flow
from flowmonkey.stores.base import Acquired

if TYPE_CHECKING:
    from flowmonkey.engine.runtime import Runtime

__all__ = [
    "acquire",
    "give_back",
    "give_back_acquired",
    "note_recovery",
    "open_run",
    "poisoned",
    "recover",
    "release_untouched",
]

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


async def open_run(engine: Runtime, acquired: Acquired, *, need_flow: bool = True) -> Run | None:
    """Wrap a granted lease in a ``Run`` (None if no lease was granted).

    Without the flow in this process: with ``need_flow`` the execution is given back as
    it was and ``FlowNotFound`` raised (never failed for what this process lacks);
    otherwise the run gets an empty placeholder flow (``run.flow_known`` False), enough
    for operations that run no step.
    """
    if acquired.lease is None:
        return None
    execution = acquired.execution
    try:
        flow = await get_flow(engine, execution.flow_id, execution.flow_version)
    except errors.FlowNotFound:
        run = _blind_run(engine, acquired)
        if need_flow:
            await give_back(engine, run, recovered=acquired.recovered)
            raise
    except BaseException:
        await engine.store.release(acquired.lease)
        raise
    else:
        run = Run(engine, execution, acquired.lease, flow)
    if acquired.recovered:
        await recover(run)
    return run


def _blind_run(engine: Runtime, acquired: Acquired) -> Run:
    """A run over an empty placeholder flow (``flow_known`` False)."""
    execution = acquired.execution
    assert acquired.lease is not None
    placeholder = Flow(
        id=execution.flow_id, version=execution.flow_version, initial_step_id="", steps={}
    )
    run = Run(engine, execution, acquired.lease, placeholder)
    run.flow_known = False
    return run


async def give_back_acquired(engine: Runtime, acquired: Acquired) -> None:
    """See ``Engine.give_back``."""
    if acquired.lease is not None:
        await give_back(engine, _blind_run(engine, acquired), recovered=acquired.recovered)


async def give_back(engine: Runtime, run: Run, *, recovered: bool) -> None:
    """Return an execution this process leased but cannot run, leaving it as it was.

    A run taken over from a crashed holder keeps its ``running`` status under an expired
    lease (so whoever takes it next counts the new run); one this acquisition made
    ``running`` goes back to ``pending`` (and unstarted if it never ran a step).
    """
    execution = run.execution
    if recovered:
        with contextlib.suppress(errors.LeaseLost):
            await engine.store.heartbeat(run.lease, now=engine.clock.now(), lease_for=_EXPIRED)
        run.released = True
        return
    if execution.status is _RUNNING and execution.step_count == 0:
        execution.started_at = None
    await release_untouched(engine, run)


_EXPIRED = timedelta(0)


async def recover(run: Run) -> None:
    """The execution lost its runner and is picked up again: count the new run (and one
    more recovery of each active token's step) and commit that at once, before anything
    runs again. A step that never gets to commit must not reset the count: the driver
    fails the execution with ``POISONED_STEP`` once it is reached (``poisoned``)."""
    note_recovery(run)
    await run.commit()


def poisoned(run: Run) -> Token | None:
    """The first active token whose step has been re-claimed
    ``EngineOptions.max_step_recoveries`` times without committing, if any."""
    limit = run.engine.options.max_step_recoveries
    for token in run.execution.tokens:
        if token.recoveries >= limit and token.status is TokenStatus.ACTIVE:
            return token
    return None


def note_recovery(run: Run) -> None:
    """A crashed or stalled run is picked up again: ``run_number += 1``, and each active
    token counts one more recovery of its step (reset when the step commits)."""
    execution = run.execution
    execution.run_number += 1
    run.emit(
        "execution.recovered",
        run.engine.clock.now(),
        {"run_number": execution.run_number, "step_id": execution.current_step_id},
    )
    for token in execution.tokens:
        if token.status is TokenStatus.ACTIVE:
            token.recoveries += 1


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
