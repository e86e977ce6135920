"""The triggers example end to end in process: the signed webhook starts the order flow,
and the nightly schedule fires on Berlin's spring-forward night at the first valid
instant (02:00 does not exist that night: 03:00 CEST)."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import httpx

from flowmonkey import Engine, ExecutionStatus, HandlerRegistry, open_store
from flowmonkey.api import ApiSettings, create_app
from flowmonkey.testing import FakeClock

FOLDER = Path(__file__).resolve().parents[2] / "examples" / "triggers"


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"triggers_example_{name}", FOLDER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_signed_webhook_and_nightly_schedule(tmp_path: Path) -> None:
    install, sender = _module("install_triggers"), _module("send_order")
    clock = FakeClock(datetime(2026, 3, 28, 12, tzinfo=UTC))
    handlers = HandlerRegistry()
    handlers.register_module(str(FOLDER / "handlers.py"))
    engine = Engine(open_store(f"sqlite:///{tmp_path}/demo.db"), handlers, clock=clock)
    app = create_app(engine, auth=False, settings=ApiSettings(inline=False))
    async with app.router.lifespan_context(app):
        await install.install(engine)
        await install.install(engine)  # idempotent
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            body = json.dumps(sender.ORDER).encode()
            headers = sender.signed_request(body, install.SECRET, clock.now().timestamp())
            answer = await client.post("/hooks/orders", content=body, headers=headers)
            assert answer.status_code == 202, answer.text
            again = await client.post("/hooks/orders", content=body, headers=headers)
            assert again.status_code == 200
            assert again.json()["execution_id"] == answer.json()["execution_id"]
        order_id = answer.json()["execution_id"]
        result = await engine.run(order_id)
        while result.status is ExecutionStatus.WAITING and result.wake_at is not None:
            clock.advance(result.wake_at - clock.now())
            result = await engine.run(order_id)
        assert result.status is ExecutionStatus.COMPLETED
        assert result.context["shipment"]["trackingNumber"] == "TRK-A-1001"

        schedule = await engine.schedules.get("nightly-report")
        assert schedule.next_fire_at == datetime(2026, 3, 29, 1, tzinfo=UTC)  # 03:00 CEST
        clock.set(datetime(2026, 3, 29, 1, tzinfo=UTC))
        report = await engine.fire_schedules()
        assert len(report.created) == 1
        done = await engine.run(report.created[0])
        assert done.context["report"] == {"day": "2026-03-29", "schedule": "nightly-report"}
