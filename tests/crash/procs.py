"""Worker subprocesses and side-effect logs for the crash tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

APP = str(Path(__file__).with_name("worker_app.py"))


@dataclass(frozen=True)
class Effect:
    """One line of the side-effect log: one handler call."""

    at: float
    pid: int
    execution_id: str
    step_id: str
    run_number: int
    attempt: int


def read_effects(path: Path) -> list[Effect]:
    """Every handler call so far, in file order."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        at, pid, eid, step, run, attempt = line.split()
        out.append(Effect(float(at), int(pid), eid, step, int(run), int(attempt)))
    return out


def calls_per_step(effects: list[Effect]) -> Counter[tuple[str, str]]:
    """Handler calls per (execution, step)."""
    return Counter((e.execution_id, e.step_id) for e in effects)


def by_step(effects: list[Effect]) -> dict[tuple[str, str], list[Effect]]:
    """Handler calls grouped per (execution, step), in order."""
    out: dict[tuple[str, str], list[Effect]] = defaultdict(list)
    for e in effects:
        out[(e.execution_id, e.step_id)].append(e)
    return out


class WorkerProcess:
    """``python -m flowmonkey.cli.worker`` with the crash handlers, logging to a file."""

    def __init__(
        self,
        url: str,
        effects: Path,
        log: Path,
        *,
        concurrency: int = 4,
        lease_for: str = "2s",
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.log = log
        env = {**os.environ, "FLOWMONKEY_SIDE_EFFECTS": str(effects), "PYTHONUNBUFFERED": "1",
               **(env or {})}  # fmt: skip
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flowmonkey.cli.worker", "--store", url, "--handlers", APP,
             "--concurrency", str(concurrency), "--lease-for", lease_for,
             "--poll-interval", "0.2", "--scheduler-interval", "0.2",
             "--reaper-interval", "1", "--shutdown-grace", "10", "--log-format", "json",
             *extra],
            stdout=self._log_file, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> float:
        """SIGKILL; returns the time of the kill."""
        at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log_file.close()
        return at

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM (graceful stop); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log_file.close()

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""
