"""Send a signed order to the webhook: ``python examples/triggers/send_order.py URL``
(URL like ``http://127.0.0.1:8080``). Signs the raw body with HMAC-SHA256 and a
timestamp, exactly as docs/triggers.md describes."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
from pathlib import Path

import httpx

SECRET = "whsec_example_change_me_0123456789"
ORDER = json.loads(
    (Path(__file__).resolve().parent.parent / "order_processing" / "input.json").read_text()
)["order"]


def signed_request(body: bytes, secret: str, now: float | None = None) -> dict[str, str]:
    """The headers of a signed request: ``sha256=HMAC(secret, "<ts>.<body>")``."""
    timestamp = str(int(time.time() if now is None else now))
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return {
        "Content-Type": "application/json",
        "X-Flowmonkey-Timestamp": timestamp,
        "X-Flowmonkey-Signature": "sha256=" + digest.hexdigest(),
        "Idempotency-Key": f"order-{ORDER['id']}",
    }


if __name__ == "__main__":
    base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
    body = json.dumps(ORDER).encode()
    answer = httpx.post(f"{base}/hooks/orders", content=body, headers=signed_request(body, SECRET))
    print(answer.status_code, answer.json())
