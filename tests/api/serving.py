"""Run ``flowmonkey serve`` / ``flowmonkey worker`` as real subprocesses for tests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

_RUNNING = re.compile(r"Uvicorn running on http://[^:]+:(\d+)")
_KEY = re.compile(r"(fmk_[A-Za-z0-9_\-]+)")


@dataclass
class Proc:
    """A subprocess whose stderr lines are collected by a thread."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.lines.append("")  # EOF marker
            self.changed.notify_all()

    def wait_for(self, pattern: re.Pattern[str] | str, timeout: float = 30) -> re.Match[str]:
        """Block until a stderr line matches (a condition variable, not a sleep loop)."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        seen = 0
        with self.changed:
            while True:
                for line in self.lines[seen:]:
                    match = rx.search(line)
                    if match:
                        return match
                    if line == "":
                        raise AssertionError("process ended:\n" + "".join(self.lines))
                seen = len(self.lines)
                left = deadline - time.monotonic()
                assert left > 0, f"no line matching {rx.pattern!r}:\n" + "".join(self.lines)
                self.changed.wait(left)

    def text(self) -> str:
        with self.changed:
            return "".join(self.lines)

    def json_lines(self) -> list[dict[str, object]]:
        out = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out


def start(args: list[str], cwd: Path) -> Proc:
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "flowmonkey"), *args],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=cwd,
    )  # fmt: skip
    handle = Proc(proc)
    threading.Thread(target=handle.pump, daemon=True).start()
    return handle


@dataclass
class Server:
    proc: Proc
    url: str
    key: str | None

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def serve(args: list[str], cwd: Path) -> Iterator[Server]:
    """``flowmonkey serve --port 0 ARGS``; yields once it listens; stops it after."""
    handle = start(["serve", "--host", "127.0.0.1", "--port", "0", *args], cwd)
    try:
        port = int(handle.wait_for(_RUNNING).group(1))
        key_match = _KEY.search(handle.text())
        yield Server(handle, f"http://127.0.0.1:{port}", key_match.group(1) if key_match else None)
    finally:
        if handle.proc.poll() is None:
            handle.proc.terminate()
            try:
                handle.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                handle.proc.kill()


def wait_until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    """Wait for a condition another process brings about (a file it writes): checked
    every 10 ms up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
