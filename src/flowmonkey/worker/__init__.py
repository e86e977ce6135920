"""Workers: processes that claim and drive executions from a shared store.

``Worker(engine, WorkerOptions(...)).run()`` in-process, or ``flowmonkey worker`` from
the command line. Any number of workers may share one PostgreSQL database (or, on one
machine, one SQLite file).
"""

from __future__ import annotations

from flowmonkey.worker.health import HealthServer, check_health
from flowmonkey.worker.options import WorkerOptions, default_worker_id
from flowmonkey.worker.worker import Worker

__all__ = ["HealthServer", "Worker", "WorkerOptions", "check_health", "default_worker_id"]
