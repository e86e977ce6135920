"""Serve the triggers example on loopback: the API (no keys: a laptop demo), the webhook
``/hooks/orders`` and an in-process worker that fires the schedule and runs the flows.
``python examples/triggers/serve.py sqlite:///demo.db`` (after install_triggers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from flowmonkey import Engine, HandlerRegistry, open_store
from flowmonkey.api import create_app
from flowmonkey.worker import Worker

HERE = Path(__file__).resolve().parent


def build(url: str) -> object:
    """The app: every route, the example's handlers, and a worker in the same process."""
    handlers = HandlerRegistry()
    handlers.register_module(str(HERE / "handlers.py"))
    engine = Engine(open_store(url), handlers)
    return create_app(engine, auth=False, worker=Worker(engine))


if __name__ == "__main__":
    app = build(sys.argv[1] if len(sys.argv) > 1 else "sqlite:///demo.db")
    uvicorn.run(app, host="127.0.0.1", port=8080)  # type: ignore[arg-type]
