"""A step whose outcome cannot be committed fails, once.

The result was checked before the commit (``result_check``), but a store can still refuse
what another accepts (PostgreSQL refuses a NUL character in text, for one). Before, the
exception escaped, nothing was written, and every lease expiry ran the handler again.
Now the step raises ``CommitFailed``; the driver reloads the execution as last committed
and records the step as an ``INVALID_RESULT`` failure (``driving.record_unrecordable``).
"""

from __future__ import annotations

from datetime import datetime

from flowmonkey import errors

__all__ = ["CommitFailed", "StepCancelled", "unrecordable"]


class StepCancelled(Exception):
    """The running handler was cancelled because the execution was cancelled/taken over
    (or a sibling branch's commit failed): nothing of the step is recorded by this run."""


class CommitFailed(Exception):
    """A step's commit could not be built or written; nothing of it was stored."""

    def __init__(
        self, token_id: str, step_id: str, attempt: int, started: datetime, cause: BaseException
    ) -> None:
        super().__init__(f'step "{step_id}": {cause}')
        self.token_id = token_id
        self.step_id = step_id
        self.attempt = attempt
        self.started = started
        self.cause = cause


_DATA_ERRORS = (TypeError, ValueError, OverflowError, RecursionError, UnicodeError)


def unrecordable(exc: BaseException) -> bool:
    """True when ``exc`` from building or writing a commit lies in the values committed
    (a serialisation error, a value the database refuses), not in the store's health.

    A store that cannot be reached, a lost lease, or any other store failure is not the
    result's fault: those propagate as before (the lease expires and the step is re-run,
    bounded by ``POISONED_STEP``).
    """
    if isinstance(exc, errors.LeaseLost | errors.StoreUnavailable | errors.InvalidResumeToken):
        return False
    if isinstance(exc, errors.StoreError):
        cause = exc.__cause__
        # SQLSTATE class 22 is "data exception" (e.g. 22P05 untranslatable character,
        # 22003 numeric out of range); read without importing a driver into the engine.
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith("22"):
            return True
        return isinstance(cause, _DATA_ERRORS) or type(cause).__name__ == "DataError"
    return isinstance(exc, _DATA_ERRORS)
