"""Built-in step types run by the engine: switch, delay, waitForSignal, userTask,
subflow and forEach. (``parallel`` and ``join`` move tokens: see ``parallel.py``.)

They are ordinary handlers over the ``HandlerContext`` plus the engine internals they
reach through its ``StepRuntime``. The waiting ones are re-entrant: when their wait
ends the same step runs again and finds its earlier work (a task, a child execution)
instead of redoing it, so a crash or a duplicate wake never doubles anything.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from flowmonkey.durations import parse_datetime, parse_duration
from flowmonkey.engine.creation import create_execution
from flowmonkey.engine.result_check import clamp_duration
from flowmonkey.engine.selectors import get_path, render_template
from flowmonkey.engine.terminal import cancel
from flowmonkey.handlers.base import HandlerMetadata
from flowmonkey.handlers.context import HandlerContext
from flowmonkey.handlers.registry import RegisteredHandler
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.model.records import Task
from flowmonkey.model.result import Result

if TYPE_CHECKING:
    from flowmonkey.engine.run import StepRuntime
    from flowmonkey.engine.runtime import Runtime
    from flowmonkey.model.flow import Step

__all__ = ["CHILD_POLL", "WAIT_KINDS", "builtin_handlers", "children_of_visit", "task_id_for"]

WAIT_KINDS = {
    "delay": "timer",
    "waitForSignal": "signal",
    "userTask": "task",
    "subflow": "child",
    "forEach": "child",
}
"""How a built-in step waits (``token.wait_kind``)."""

CHILD_POLL = timedelta(minutes=10)
"""Safety net: a step waiting for children re-checks them this often even if no child
wake-up reaches it (e.g. lost in a crash between the child's commit and the wake)."""

_TITLE = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")


def _rt(ctx: HandlerContext) -> StepRuntime:
    return cast("StepRuntime", ctx._rt())


def task_id_for(execution_id: str, step_id: str, visit: int) -> str:
    """Deterministic user-task id: one task per visit of a step, even across re-runs."""
    raw = f"{execution_id}\x00{step_id}\x00{visit}".encode()
    return "task_" + hashlib.sha256(raw).hexdigest()[:24]


async def children_of_visit(
    engine: Runtime, parent_id: str, step_id: str, visit: int
) -> list[Execution]:
    """Child executions started by one visit of a ``subflow``/``forEach`` step."""
    return [
        c
        for c in await engine.store.find_children(parent_id)
        if c.parent_step_id == step_id and c.metadata.get("parent_visit") == visit
    ]


def builtin_handlers(engine: Runtime) -> list[RegisteredHandler]:
    """The built-in step types as handlers bound to ``engine``."""
    import jmespath  # only engines that run a switch pay for it (see ``compiled``)
    import jmespath.exceptions

    expressions: dict[str, Any] = {}

    def compiled(expr: str) -> Any:
        found = expressions.get(expr)
        if found is None:
            found = expressions[expr] = jmespath.compile(expr)
        return found

    async def switch(ctx: HandlerContext) -> Result:
        data = dict(ctx.context)
        for case in ctx.config.get("cases") or ():
            try:
                matched = compiled(case["when"]).search(data)
            except (jmespath.exceptions.JMESPathError, KeyError, TypeError) as exc:
                return Result.failure("INPUT_ERROR", f"bad switch case: {exc}", retryable=False)
            if matched not in (None, False, "", [], {}):
                return Result.success({"matched": case["when"]}, next_step=case.get("goto"))
        if "default" in ctx.config:
            return Result.success({"matched": "default"}, next_step=ctx.config["default"])
        return Result.failure(
            "NO_MATCH", "no switch case matched and there is no default", retryable=False
        )

    async def delay(ctx: HandlerContext) -> Result:
        now = engine.clock.now()
        config = ctx.config
        try:
            if config.get("duration") is not None:
                wake_at = now + clamp_duration(
                    parse_duration(config["duration"], field="config.duration")
                )
            else:
                until = config.get("until")
                if isinstance(until, str) and "${" in until:
                    until = render_template(until, ctx.context)
                wake_at = parse_datetime(until, field="config.until")
        except ValueError as exc:
            return Result.failure("INPUT_ERROR", str(exc), retryable=False)
        return Result.wait(wake_at=wake_at, reason=f"delay until {wake_at.isoformat()}")

    async def wait_for_signal(ctx: HandlerContext) -> Result:
        name = ctx.config.get("signal") or ctx.step.id
        return Result.wait(reason=f"waiting for signal {name}")

    async def user_task(ctx: HandlerContext) -> Result:
        rt = _rt(ctx)
        run, step, token = rt.run, rt.step, rt.token
        execution = run.execution
        task_id = task_id_for(execution.id, step.id, token.visit)
        now = engine.clock.now()
        config = ctx.config
        due_at = None
        if config.get("dueIn") is not None:
            due_at = now + clamp_duration(parse_duration(config["dueIn"], field="config.dueIn"))
        task = Task(
            id=task_id,
            execution_id=execution.id,
            step_id=step.id,
            tenant_id=execution.tenant_id,
            title=_render_title(str(config.get("title") or step.name or step.id), ctx.context),
            description=_render_title(str(config["description"]), ctx.context)
            if config.get("description")
            else None,
            assignee=config.get("assignee"),
            role=config.get("role"),
            priority=str(config.get("priority") or "normal"),
            form=config.get("form"),
            created_at=now,
            due_at=due_at,
            token_id=token.id,
            visit=token.visit,
        )
        existing = await engine.store.get_task(task_id)
        if existing is None:
            run.tasks.append(task)
            run.emit(
                "task.created",
                now,
                {
                    "task_id": task_id,
                    "step_id": step.id,
                    "assignee": task.assignee,
                    "role": task.role,
                },
            )
        return Result.wait(reason=f"task {task_id}: {task.title}")

    async def subflow(ctx: HandlerContext) -> Result:
        rt = _rt(ctx)
        config = ctx.config
        flow_id = str(config.get("flowId"))
        children = await children_of_visit(engine, rt.run.execution.id, rt.step.id, rt.token.visit)
        child = children[0] if children else None
        if child is None:
            too_deep = _depth_exceeded(engine, rt)
            if too_deep is not None:
                return too_deep
            child_input = ctx.input if isinstance(ctx.input, Mapping) else {}
            child = await _start_child(
                engine, rt, flow_id, config.get("version"), child_input, index=0
            )
        if not config.get("wait", True):
            return Result.success({"executionId": child.id, "flowId": flow_id})
        if not child.status.is_terminal:
            return Result.wait(delay=CHILD_POLL, reason=f"waiting for child {child.id}")
        return _child_outcome(rt, [child], config.get("output"), single=True)

    async def for_each(ctx: HandlerContext) -> Result:
        rt = _rt(ctx)
        config = ctx.config
        items = get_path(dict(ctx.context), str(config.get("items")))
        if not isinstance(items, list):
            return Result.failure(
                "INPUT_ERROR",
                f'forEach items "{config.get("items")}" is not a list',
                retryable=False,
            )
        if not items:
            return Result.success([])
        children = await children_of_visit(engine, rt.run.execution.id, rt.step.id, rt.token.visit)
        if not children:
            too_deep = _depth_exceeded(engine, rt)
            if too_deep is not None:
                return too_deep
        by_index = {int(c.metadata.get("index", 0)): c for c in children}
        failed = [
            c
            for c in children
            if c.status.is_terminal and c.status is not ExecutionStatus.COMPLETED
        ]
        if failed:
            for c in children:
                if not c.status.is_terminal:
                    await cancel(engine, c.id, source="parent", reason="a sibling failed")
            return _child_outcome(rt, failed, None, single=True)
        running = sum(1 for c in children if not c.status.is_terminal)
        concurrency = int(config.get("concurrency") or 10)
        base = ctx.input if isinstance(ctx.input, Mapping) else {}
        for index in range(len(items)):
            if running >= concurrency:
                break
            if index in by_index:
                continue
            child_input = {**base, "item": items[index], "index": index}
            by_index[index] = await _start_child(
                engine,
                rt,
                str(config.get("flow")),
                config.get("version"),
                child_input,
                index=index,
            )
            running += 1
        if running or len(by_index) < len(items):
            done = len(items) - running - (len(items) - len(by_index))
            return Result.wait(
                delay=CHILD_POLL, reason=f"waiting for children ({done}/{len(items)} done)"
            )
        ordered = [by_index[i] for i in range(len(items))]
        return _child_outcome(rt, ordered, config.get("output"), single=False)

    table: dict[str, Callable[[HandlerContext], Any]] = {
        "switch": switch,
        "delay": delay,
        "waitForSignal": wait_for_signal,
        "userTask": user_task,
        "subflow": subflow,
        "forEach": for_each,
    }
    return [
        RegisteredHandler(
            type=name,
            fn=fn,
            is_async=True,
            metadata=HandlerMetadata(
                type=name, name=name, description=f"built-in {name} step", category="control"
            ),
            timeout=None,
        )
        for name, fn in table.items()
    ]


def _render_title(template: str, context: Mapping[str, Any]) -> str:
    def sub(match: re.Match[str]) -> str:
        value = get_path(context, match.group(1))
        return "" if value is None else str(value)

    return _TITLE.sub(sub, template)


def _depth_exceeded(engine: Runtime, rt: StepRuntime) -> Result | None:
    """The failure of a step that would start a child beyond ``max_subflow_depth``."""
    limit = engine.options.max_subflow_depth
    if rt.run.execution.depth < limit:
        return None
    return Result.failure(
        "SUBFLOW_DEPTH_EXCEEDED",
        f"starting a child here would nest sub-flows deeper than max_subflow_depth ({limit})",
        details={"depth": rt.run.execution.depth, "max_subflow_depth": limit},
        retryable=False,
    )


async def _start_child(
    engine: Runtime,
    rt: StepRuntime,
    flow_id: str,
    version: Any,
    child_input: Mapping[str, Any],
    *,
    index: int,
) -> Execution:
    run, step, token = rt.run, rt.step, rt.token
    parent = run.execution
    created, _ = await create_execution(
        engine,
        flow_id,
        dict(child_input),
        depth=parent.depth + 1,
        lease_self=False,
        version=str(version) if version is not None else None,
        tenant_id=parent.tenant_id,
        parent_execution_id=parent.id,
        parent_step_id=step.id,
        correlation_id=parent.correlation_id,
        user_id=parent.user_id,
        metadata={"parent_visit": token.visit, "index": index},
        # A re-run of this visit after a crash finds the same child instead of a twin.
        idempotency_key=f"{parent.id}:{step.id}:{token.visit}:{index}",
        idempotency_ttl=engine.options.max_idempotency_ttl,
    )
    if created.created:
        run.emit(
            "subflow.started",
            engine.clock.now(),
            {
                "step_id": step.id,
                "child_execution_id": created.execution.id,
                "flow_id": flow_id,
                "index": index,
            },
        )
    return created.execution


def _child_outcome(
    rt: StepRuntime, children: list[Execution], output: Any, *, single: bool
) -> Result:
    run = rt.run
    now = run.engine.clock.now()
    results = []
    for child in children:
        if child.status is not ExecutionStatus.COMPLETED:
            error = child.error.to_dict() if child.error else None
            return Result.failure(
                "CHILD_FAILED",
                f"child execution {child.id} ended {child.status}",
                details={
                    "child_execution_id": child.id,
                    "status": str(child.status),
                    "error": error,
                },
                retryable=False,
            )
        results.append(get_path(child.context, str(output)) if output else child.context)
    for child in children:
        run.emit("subflow.completed", now, {"step_id": rt.step.id, "child_execution_id": child.id})
    return Result.success(results[0] if single else results)


def wake_output(step: Step, scheduled: Any, fired: Any) -> dict[str, Any] | None:
    """What a fired ``delay`` stores at its ``outputKey``."""
    if step.type != "delay" or not step.output_key:
        return None
    return {"scheduledFor": scheduled.isoformat(), "firedAt": fired.isoformat()}
