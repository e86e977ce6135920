"""Live progress of a run: one line per step start, completion, failure, retry and wait."""

from __future__ import annotations

import time
from datetime import datetime

from flowmonkey.cli.output import Output, format_duration
from flowmonkey.model.events import Event

__all__ = ["ProgressPrinter"]

# kind -> (symbol on a terminal, plain tag, style)
_MARKS: dict[str, tuple[str, str, str]] = {
    "created": ("•", "[new]  ", "dim"),
    "start": ("▶", "[start]", "cyan"),
    "ok": ("✓", "[ok]   ", "green"),
    "fail": ("✗", "[fail] ", "red"),
    "retry": ("↻", "[retry]", "yellow"),
    "wait": ("⏸", "[wait] ", "yellow"),
    "resume": ("▶", "[resume]", "cyan"),
    "route": ("↳", "[route]", "magenta"),
    "signal": ("✉", "[signal]", "cyan"),
    "timeout": ("⏱", "[timeout]", "red"),
}


class ProgressPrinter:
    """An ``engine.on("*", ...)`` listener that prints what the run is doing, with
    elapsed time since it was created and each step's duration."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self._t0 = time.monotonic()
        self._started: dict[tuple[str | None, str], datetime] = {}

    def __call__(self, event: Event) -> None:
        """Print ``event`` if it is one a user follows."""
        data = event.data
        step = str(data.get("step_id") or "")
        kind = event.type
        if kind == "execution.created":
            flow = f"{data.get('flow_id')}@{data.get('flow_version')}"
            self._emit("created", f"execution {event.execution_id} created ({flow})")
        elif kind == "step.started":
            self._started[(event.execution_id, step)] = event.timestamp
            attempt = int(data.get("attempt") or 1)
            more = f" (attempt {attempt})" if attempt > 1 else ""
            handler_type = str(data.get("handler_type") or "")
            detail = handler_type if handler_type != step else None
            self._emit("start", f"{step} started{more}", detail=detail)
        elif kind == "step.completed":
            if data.get("outcome") == "wait":
                return  # execution.waiting says why
            port = data.get("port")
            more = f" -> port {port}" if port else ""
            self._emit("ok", f"{step} completed in {self._took(event, step)}{more}")
        elif kind == "step.failed":
            error = data.get("error") or {}
            self._emit(
                "fail",
                f"{step} failed in {self._took(event, step)}: "
                f"{error.get('code')}: {error.get('message')}",
            )
        elif kind == "step.retry":
            backoff = float(data.get("backoff_ms") or 0)
            delay = f" in {format_duration(backoff)}" if backoff else " now"
            self._emit(
                "retry", f"{step} retry {data.get('attempt')}/{data.get('max_attempts')}{delay}"
            )
        elif kind == "step.timeout":
            self._emit("timeout", f"{step} timed out")
        elif kind == "execution.waiting":
            why = str(data.get("reason") or "waiting for resume or signal")
            wake = data.get("wake_at")
            # A delay's reason already names its wake time ("delay until <time>").
            until = f" until {wake}" if wake and str(wake) not in why else ""
            self._emit("wait", f"waiting at {step}: {why}{until}")
        elif kind == "execution.resumed":
            reason = data.get("reason")
            self._emit("resume", f"resumed at {step}" + (f" ({reason})" if reason else ""))
        elif kind == "transition" and data.get("outcome") == "failure":
            self._emit("route", f"{data.get('from_step_id')} failed -> {data.get('to_step_id')}")
        elif kind == "signal.received":
            port = data.get("port")
            self._emit("signal", f"signal to {step}" + (f" (port {port})" if port else ""))

    def _took(self, event: Event, step: str) -> str:
        started = self._started.pop((event.execution_id, step), None)
        if started is None:
            return "-"
        return format_duration((event.timestamp - started).total_seconds() * 1000)

    def _emit(self, kind: str, message: str, *, detail: str | None = None) -> None:
        symbol, tag, style = _MARKS[kind]
        elapsed = f"{time.monotonic() - self._t0:7.3f}s"
        if self.out.fancy:
            parts: list[tuple[str, str | None]] = [
                (f"{elapsed} ", "dim"), (f"{symbol} ", style), (message, None)
            ]  # fmt: skip
            if detail:
                parts.append((f"  [{detail}]", "dim"))
            self.out.styled(parts)
        else:
            self.out.line(f"{elapsed} {tag:<9} {message}")
