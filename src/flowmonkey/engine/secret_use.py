"""Secrets in step configs: resolved just before the handler runs, redacted right after.

Only the config handed to the handler ever holds a value; the flow keeps the
``{{ secrets.NAME }}`` reference. Whatever the attempt produces (its output, its error,
its ``ctx.set`` writes) is redacted before the engine records it, so a value cannot reach
the context, history, events or the store.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from flowmonkey.handlers.secrets import SECRET_NOT_FOUND, SecretNotFound, redact, resolve_secrets
from flowmonkey.model.result import Result, StepError

if TYPE_CHECKING:
    from flowmonkey.engine.run import StepRuntime
    from flowmonkey.engine.runtime import Runtime
    from flowmonkey.handlers.context import HandlerContext
    from flowmonkey.model.flow import Step

__all__ = ["SECRET_PROVIDER_ERROR", "redact_attempt", "resolve_step_config"]

SECRET_PROVIDER_ERROR = "SECRET_PROVIDER_ERROR"
"""The provider itself failed (a vault was down): retryable."""


async def resolve_step_config(engine: Runtime, step: Step) -> tuple[Any, tuple[str, ...]] | Result:
    """``(config with values, the values)`` or the failure of the attempt."""
    try:
        config, values = await resolve_secrets(step.config, engine.services.secrets)
    except SecretNotFound as exc:
        return Result.failure(SECRET_NOT_FOUND, str(exc), retryable=False)
    except Exception as exc:
        # The provider's message could quote a value: only its type is reported.
        return Result.failure(
            SECRET_PROVIDER_ERROR, f"the secret provider failed ({type(exc).__name__})"
        )
    return config, tuple(values)


def redact_attempt(result: Result, ctx: HandlerContext) -> Result:
    """``result`` without the step's secret values; ``ctx.set`` writes redacted in place."""
    values = ctx._secrets
    runtime = cast("StepRuntime | None", ctx._runtime)
    if runtime is not None:
        context = runtime.run.execution.context
        for key in list(runtime._undo):
            if key in context:
                cleaned = redact(context[key], values)
                if cleaned != context[key]:
                    runtime.run.write(key, cleaned, literal=True)
    changes: dict[str, Any] = {}
    if result.output is not None:
        changes["output"] = redact(result.output, values)
    if result.reason is not None:
        changes["reason"] = redact(result.reason, values)
    error = result.error
    if error is not None:
        changes["error"] = StepError(
            code=error.code,
            message=redact(error.message, values),
            details=redact(error.details, values),
            retryable=error.retryable,
        )
    return replace(result, **changes) if changes else result
