"""The triggers example: a nightly report schedule and a signed webhook that starts the
order flow. ``python examples/triggers/install_triggers.py sqlite:///demo.db`` saves both flows and
creates both triggers in that store (idempotent), then prints what to run next."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from flowmonkey import Engine, errors, load_flow, open_store
from flowmonkey.model.documents import TriggerDocument

HERE = Path(__file__).resolve().parent
ORDER_FLOW = HERE.parent / "order_processing" / "flow.yaml"
REPORT_FLOW = HERE / "report_flow.yaml"
SECRET = "whsec_example_change_me_0123456789"
"""The webhook's shared secret (use your own, from a secret store, in real life)."""

NIGHTLY = {
    "id": "nightly-report",
    "flow_id": "nightly-report",
    "cron": "0 2 * * *",  # 02:00 Berlin time; on DST nights the rulings of docs/triggers.md
    "timezone": "Europe/Berlin",
    "input": {"day": "{{ schedule.scheduled_for }}", "schedule": "{{ schedule.id }}"},
    "overlap": "skip",
    "catchup": "latest",
    "catchup_window": "6h",
}
ORDERS_HOOK = {
    "flow_id": "order-processing",
    "secret": SECRET,
    "signature_header": "X-Flowmonkey-Signature",
    "input_schema": {
        "type": "object",
        "required": ["id", "items"],
        "properties": {
            "id": {"type": "string"},
            "items": {"type": "array", "minItems": 1},
            "card": {"type": "string"},
        },
    },
    "input_map": "{order: body}",
    "idempotency": "header:Idempotency-Key",
    "enabled": True,
}


async def install(engine: Engine) -> None:
    """Save the two flows and create the schedule and the webhook trigger ``orders``."""
    await engine.save_flow(load_flow(ORDER_FLOW))
    await engine.save_flow(load_flow(REPORT_FLOW))
    try:
        await engine.schedules.create(**NIGHTLY)
    except errors.AlreadyExists:
        pass
    now = engine.clock.now()
    hook = TriggerDocument(
        kind="trigger", id="orders", spec=ORDERS_HOOK, created_at=now, updated_at=now
    )
    try:
        await engine.store.create_document(hook)
    except errors.AlreadyExists:
        pass


async def main(url: str) -> None:
    async with Engine(open_store(url)) as engine:
        await install(engine)
        schedule = await engine.schedules.get("nightly-report")
        print(f"schedule nightly-report: next fire {schedule.next_fire_at}")
        print("webhook: POST /hooks/orders (signed with the example secret)")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "sqlite:///demo.db"))
