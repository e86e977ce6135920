"""``HandlerContext``: what a handler sees of the execution it works for."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from flowmonkey.model.execution import Execution
    from flowmonkey.model.flow import Step

__all__ = ["HandlerContext", "StepRuntime"]


class StepRuntime(Protocol):
    """The engine side of a ``HandlerContext`` (one per running step)."""

    def set_context(self, key: str, value: Any) -> None:
        """Write ``context[key]`` with limit checks; persisted with the step's commit."""
        ...

    def snapshot(self) -> Execution:
        """A copy of the execution as it was when the step started."""
        ...

    async def save_checkpoint(self, data: Any) -> None:
        """Persist checkpoint data for this step now (fenced by the lease)."""
        ...

    def get_checkpoint(self) -> Any:
        """The last checkpoint saved for this step, or ``None``."""
        ...

    async def heartbeat(self, progress: float | None, message: str | None) -> None:
        """Extend the lease and record progress."""
        ...

    def create_resume_token(self, expires_in: timedelta) -> str:
        """Make a resume token bound to this execution and step."""
        ...

    @property
    def services(self) -> Any:
        """The engine's shared resources of the standard handlers (``StandardServices``)."""
        ...


class HandlerContext:
    """Everything a handler gets: resolved ``input``, static ``config``, the context.

    ``context`` is a read-only view; write with ``set(key, value)`` (limits apply, and
    the write is committed with the step). A handler's task is cancelled on cancel or
    timeout; sync handlers (run in a thread) can poll ``cancelled.is_set()``.
    """

    __slots__ = (
        "_cancelled",
        "_lazy",
        "_runtime",
        "_secrets",
        "_snapshot",
        "attempt",
        "config",
        "context",
        "execution_id",
        "input",
        "run_number",
        "step",
        "tenant_id",
    )

    def __init__(
        self,
        *,
        input: Any,
        config: Any,
        context: Mapping[str, Any],
        step: Step,
        execution_id: str,
        attempt: int,
        run_number: int,
        tenant_id: str | None,
        runtime: StepRuntime | None = None,
        lazy: tuple[Callable[[Any, Step, Any], StepRuntime], Any, Any] | None = None,
    ) -> None:
        self.input: Any = input
        self.config: Any = config
        # The engine passes one read-only view per run instead of a new one per step.
        self.context: Mapping[str, Any] = (
            context if isinstance(context, MappingProxyType) else MappingProxyType(context)
        )
        self.step = step
        self.execution_id = execution_id
        self.attempt = attempt
        self.run_number = run_number
        self.tenant_id = tenant_id
        self._cancelled: threading.Event | None = None
        self._runtime = runtime
        self._lazy = lazy
        """``(factory, run, token)``: the engine's runtime is built on first use (most steps
        never call ``set``/``checkpoint``/``create_resume_token``). The engine hands over the
        factory so this layer never imports the engine."""
        self._snapshot: Execution | None = None
        self._secrets: tuple[str, ...] = ()
        """Values of the secrets resolved into ``config`` (set by the engine)."""

    def replace(self, *, input: Any = None, config: Any = None) -> HandlerContext:
        """A copy with converted ``input``/``config`` that shares the cancellation event."""
        copy = HandlerContext(
            input=self.input if input is None else input,
            config=self.config if config is None else config,
            context={},
            step=self.step,
            execution_id=self.execution_id,
            attempt=self.attempt,
            run_number=self.run_number,
            tenant_id=self.tenant_id,
            runtime=self._runtime,
            lazy=self._lazy,
        )
        copy.context = self.context
        copy._cancelled = self.cancelled
        copy._snapshot = self._snapshot
        copy._secrets = self._secrets
        return copy

    @property
    def cancelled(self) -> threading.Event:
        """Set when the step is cancelled or timed out (for sync handlers to poll)."""
        if self._cancelled is None:
            self._cancelled = threading.Event()
        return self._cancelled

    @property
    def is_retry(self) -> bool:
        """True from the second attempt on."""
        return self.attempt > 1

    @property
    def execution(self) -> Execution:
        """A snapshot of the execution (taken lazily, on first access)."""
        if self._snapshot is None:
            self._snapshot = self._rt().snapshot()
        return self._snapshot

    def _rt(self) -> StepRuntime:
        runtime = self._runtime
        if runtime is None:
            if self._lazy is None:
                raise RuntimeError("this HandlerContext is not attached to a running step")
            factory, run, token = self._lazy
            runtime = self._runtime = factory(run, self.step, token)
        return runtime

    @property
    def services(self) -> Any:
        """Engine-wide resources shared by the standard handlers (``StandardServices``:
        the HTTP client, the secret provider, ``base_url``)."""
        return self._rt().services

    def redact(self, value: Any) -> Any:
        """``value`` with the secrets resolved into this step's config replaced by ``***``.

        The engine already redacts the result and ``ctx.set`` writes; call this before
        anything leaves the process directly (a log line, a message to a third party
        that echoes it back is fine).
        """
        if not self._secrets:
            return value
        from flowmonkey.handlers.secrets import redact

        return redact(value, self._secrets)

    def get(self, key: str, default: Any = None) -> Any:
        """Read a top-level context value."""
        return self.context.get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Write ``context[key]``; checked against the context limits.

        Raises:
            ContextLimitError: a limit would be broken (nothing is written).
        """
        self._rt().set_context(key, value)

    async def checkpoint(self, data: Any) -> None:
        """Persist progress of a long step now; a re-run after a crash can resume from it."""
        await self._rt().save_checkpoint(data)

    def get_checkpoint(self) -> Any:
        """The data of the last ``checkpoint`` of this step, or ``None``."""
        return self._rt().get_checkpoint()

    async def heartbeat(self, progress: float | None = None, message: str | None = None) -> None:
        """Tell the engine this long-running step is alive (extends its lease)."""
        await self._rt().heartbeat(progress, message)

    def create_resume_token(self, expires_in: timedelta = timedelta(days=7)) -> str:
        """Create an unguessable, single-use token that resumes this step when it waits.

        The token is persisted with the step's commit; return ``Result.wait()`` after.
        """
        return self._rt().create_resume_token(expires_in)
