"""flowmonkey.testing.TestHarness: advance() counts, resume tokens, user-task helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from flowmonkey import FlowBuilder, Result, handler
from flowmonkey.errors import InvalidResumeToken
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.testing import TestHarness

TOKENS: list[str] = []


@handler("ask")
async def ask(ctx: Any) -> Result:
    TOKENS.append(ctx.create_resume_token(expires_in=timedelta(days=1)))
    return Result.wait(reason="waiting for an answer")


@handler("record")
async def record(ctx: Any) -> dict[str, Any]:
    return {"at": ctx.step.id}


reminder = FlowBuilder("reminder").delay("wait", "1h").step("done", "record").build()

approval = (
    FlowBuilder("approval")
    .step("ask", "ask", output_key="answer", on_success="done")
    .step("done", "record", output_key="outcome")
    .build()
)

review = (
    FlowBuilder("review")
    .user_task("review", "Review it", assignee="ann", role="manager", output_key="decision",
               ports={"approve": "yes", "reject": "no"})
    .step("yes", "record", output_key="outcome", on_success=None)
    .step("no", "record", output_key="outcome", on_success=None)
    .build()
)  # fmt: skip


@pytest.fixture
async def harness() -> AsyncIterator[TestHarness]:
    TOKENS.clear()
    async with TestHarness([ask, record], [reminder, approval, review]) as h:
        yield h


async def test_advance_returns_the_number_of_executions_driven(harness: TestHarness) -> None:
    first = await harness.run("reminder")
    second = await harness.run("reminder")
    harness.assert_waiting(first, "wait")
    assert await harness.advance(timedelta(minutes=59)) == 0
    assert (await harness.get(first.id)).status is ExecutionStatus.WAITING
    assert await harness.advance(60) == 2  # seconds
    harness.assert_completed(await harness.get(first.id))
    harness.assert_completed(await harness.get(second.id))
    assert await harness.advance(timedelta(hours=1)) == 0


async def test_resume_passes_the_token_through(harness: TestHarness) -> None:
    execution = await harness.run("approval")
    harness.assert_waiting(execution, "ask")
    (token,) = TOKENS
    with pytest.raises(InvalidResumeToken):
        await harness.resume(execution.id, {"ok": True}, token="not-the-token")
    harness.assert_waiting(await harness.get(execution.id), "ask")
    done = await harness.resume(execution.id, {"ok": True}, token=token)
    harness.assert_completed(done)
    harness.assert_context(done, {"answer": {"ok": True}, "outcome": {"at": "done"}})
    with pytest.raises(InvalidResumeToken):  # a used token is refused
        await harness.resume(execution.id, {"ok": False}, token=token)


async def test_resume_without_token_still_works(harness: TestHarness) -> None:
    execution = await harness.run("approval")
    done = await harness.resume(execution.id, {"ok": 1})
    harness.assert_context(done, {"answer": {"ok": 1}})


async def test_tasks_and_complete_task(harness: TestHarness) -> None:
    execution = await harness.run("review")
    harness.assert_waiting(execution, "review")
    (task,) = await harness.tasks()
    assert (task.execution_id, task.step_id, task.status) == (execution.id, "review", "pending")
    assert await harness.tasks(assignee="bob") == []
    assert [t.id for t in await harness.tasks(role="manager")] == [task.id]

    done = await harness.complete_task(task.id, port="reject", output={"why": "no"},
                                       user_id="ann")  # fmt: skip
    harness.assert_completed(done)
    harness.assert_context(done, {"decision": {"why": "no"}, "outcome": {"at": "no"}})
    assert await harness.tasks() == []
    (completed,) = await harness.tasks(status="completed", execution_id=execution.id)
    assert (completed.id, completed.completed_by) == (task.id, "ann")


async def test_complete_task_defaults(harness: TestHarness) -> None:
    execution = await harness.run("review")
    (task,) = await harness.tasks(execution_id=execution.id)
    done = await harness.complete_task(task.id)  # no port: onSuccess ("yes", the next step)
    harness.assert_completed(done)
    harness.assert_context(done, {"outcome": {"at": "yes"}})
    assert "decision" not in done.context  # no output given
    (completed,) = await harness.tasks(status="completed")
    assert completed.completed_by is None
