"""The standard-handlers example runs end to end from its one command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples/standard_handlers/run.py")],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "status:  completed" in done.stdout
    assert "Subject: Your order A-1001" in done.stdout
    assert "Hello Ann, your 2 item(s) cost 14.5." in done.stdout
    assert "demo-smtp-password" not in done.stdout + done.stderr
    assert "demo-token-123" not in done.stdout + done.stderr
