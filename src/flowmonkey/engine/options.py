"""``EngineOptions`` and ``ContextLimits``: the engine's configuration, as frozen values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowmonkey.handlers.secrets import SecretProvider
    from flowmonkey.handlers.standard.ssrf import Resolver

__all__ = ["ContextLimits", "EngineOptions"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextLimits:
    """Limits checked on every context write (initial context, outputs, resume data, ctx.set)."""

    max_value_bytes: int = 1024 * 1024
    """Largest JSON size of one written value."""
    max_total_bytes: int = 10 * 1024 * 1024
    """Largest JSON size of the whole context (sum over top-level keys)."""
    max_keys: int = 500
    """Most top-level keys."""
    max_depth: int = 15
    """Deepest nesting of dicts/lists (``{}`` is depth 1)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineOptions:
    """How an ``Engine`` behaves. Every field has a production-ready default."""

    record_history: bool = True
    """Keep a ``StepRecord`` per handler attempt in ``execution.history``."""
    max_steps: int = 1000
    """Most handler attempts per execution (retries count) before ``MAX_STEPS``."""
    default_step_timeout: timedelta = timedelta(seconds=30)
    """Per-attempt handler timeout when neither the step nor the handler sets one."""
    execution_timeout: timedelta | None = timedelta(hours=24)
    """An execution still unfinished after this is cancelled (``TIMEOUT``)."""
    wait_timeout: timedelta | None = timedelta(days=7)
    """A wait longer than this follows ``onTimeout`` or fails with ``TIMEOUT``."""
    context_limits: ContextLimits = field(default_factory=ContextLimits)
    automatic_recovery: bool = True
    """Recover stale running executions in ``initialize()``."""
    stale_after: timedelta = timedelta(minutes=5)
    """A running execution without a live lease and not updated for this long is stale."""
    mode: str = "production"
    """``production`` or ``simulation`` (passthrough handlers; see ``Engine.simulate``)."""
    lease_for: timedelta = timedelta(seconds=30)
    """How long a lease lasts without a heartbeat; crash recovery waits at most this."""
    sync_handler_threads: int = 16
    """Size of the thread pool that runs sync (``def``) handlers."""
    sync_queue_timeout: timedelta = timedelta(minutes=5)
    """How long a sync handler may wait for a free thread before its step fails with
    ``HANDLER_QUEUE_TIMEOUT`` (retryable). The step's own timeout counts from when its
    handler starts, never while it waits for a thread."""
    max_step_recoveries: int = 5
    """An execution re-claimed this many times (its runner vanished each time) without
    its step committing anything is failed with ``POISONED_STEP`` instead of being run
    again."""
    idempotency_ttl: timedelta = timedelta(hours=24)
    """Default idempotency window (clamped to 7 days)."""
    max_idempotency_ttl: timedelta = timedelta(days=7)
    retention: timedelta | None = None
    """Purge finished executions (and everything they own) this long after they finished,
    in the worker's retention pass; ``None`` (default) keeps them forever. A flow's own
    ``retention:`` overrides it. Recommended: ``timedelta(days=30)`` (at least the 7-day
    idempotency window; see docs/retention.md)."""
    purge_batch_size: int = 200
    """Most executions examined per purge transaction (batches are sized by time below
    that: a batch holds the write lock; see ``engine/retention.py``)."""
    load_flows_from_store: bool = False
    """On ``initialize``, register every flow version saved in the store."""
    http_allow: tuple[str, ...] = ()
    """Hosts and networks (``"api.internal"``, ``"10.0.0.0/8"``) the ``http`` and
    ``webhook`` handlers may reach although they are internal (the SSRF guard)."""
    base_url: str | None = None
    """Public URL of the HTTP API, for ``webhook`` callback URLs (``serve --base-url``)."""
    secrets: SecretProvider | None = None
    """Where ``{{ secrets.NAME }}`` come from; ``None``: ``FLOWMONKEY_SECRET_<NAME>``."""
    http_resolver: Resolver | None = None
    """``async (host, port) -> [address, ...]`` used by the SSRF guard instead of DNS
    (tests map a name to an address without touching /etc/hosts)."""
    max_subflow_depth: int = 32
    """Deepest sub-flow nesting: a ``subflow``/``forEach`` step of an execution at this
    depth fails with ``SUBFLOW_DEPTH_EXCEEDED`` instead of starting a child (bounds a flow
    that starts itself)."""
