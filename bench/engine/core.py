"""Result rows, the benchmark registry, the rich table, JSON results and the docs page."""

from __future__ import annotations

import math
import os
import platform
import re
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.engine.fixtures import ROOT, median

RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"


@dataclass
class Config:
    quick: bool
    runs: int
    """Measured runs per benchmark (5 full, 3 quick, 1 with --profile)."""
    profile: bool = False

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full


@dataclass
class Row:
    """One measured quantity: median over runs, its baseline and the per-run ratio."""

    metric: str
    value: float
    unit: str
    samples: list[float]
    baseline: str | None = None
    baseline_value: float | None = None
    baseline_unit: str = ""
    ratio: float | None = None
    """Median of the per-run ratios value/baseline (each pair measured in the same run)."""
    ratio_samples: list[float] = field(default_factory=list)
    target: str = ""
    ok: bool | None = None


@dataclass
class BenchResult:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0
    load: list[float] = field(default_factory=list)
    """1-minute load average before and after (the machine is shared: context for noise)."""

    @property
    def ok(self) -> bool | None:
        flags = [r.ok for r in self.rows if r.ok is not None]
        return all(flags) if flags else None


def row(
    metric: str,
    samples: list[float],
    unit: str,
    *,
    baseline: str | None = None,
    baseline_samples: list[float] | None = None,
    baseline_unit: str | None = None,
    ratio_samples: list[float] | None = None,
    target: str = "",
    check: Callable[[float], bool] | None = None,
    on: str = "ratio",
) -> Row:
    """Build a ``Row``; ``check`` is applied to the median ratio (``on="ratio"``) or to
    the median value (``on="value"``)."""
    value = median(samples)
    ratios = ratio_samples
    if ratios is None and baseline_samples is not None:
        ratios = [a / b for a, b in zip(samples, baseline_samples, strict=True) if b]
    ratio = median(ratios) if ratios else None
    ok = None
    if check is not None:
        probe = ratio if on == "ratio" else value
        ok = probe is not None and not math.isnan(probe) and bool(check(probe))
    return Row(
        metric=metric,
        value=value,
        unit=unit,
        samples=[round(s, 6) for s in samples],
        baseline=baseline,
        baseline_value=median(baseline_samples) if baseline_samples else None,
        baseline_unit=unit if baseline_unit is None else baseline_unit,
        ratio=ratio,
        ratio_samples=[round(r, 6) for r in ratios or []],
        target=target,
        ok=ok,
    )


BenchFn = Callable[[Config, BenchResult], Awaitable[None]]
REGISTRY: dict[str, tuple[str, BenchFn]] = {}


def benchmark(name: str, title: str) -> Callable[[BenchFn], BenchFn]:
    def deco(fn: BenchFn) -> BenchFn:
        REGISTRY[name] = (title, fn)
        return fn

    return deco


# -- machine -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    out: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
    }
    try:
        from importlib.metadata import version

        out["flowmonkey"] = version("flowmonkey")
    except Exception:
        out["flowmonkey"] = "?"
    try:
        from bench.engine.fixtures import pg_available, pg_settings

        if pg_available() is None:
            out["postgres"] = pg_settings()
    except Exception:
        pass
    return out


# -- output --------------------------------------------------------------------------------


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def verdict(ok: bool | None) -> str:
    return {True: "met", False: "MISSED", None: ""}[ok]


def print_table(results: list[BenchResult], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col, just in (("benchmark", "left"), ("metric", "left"), ("median", "right"),
                      ("baseline", "left"), ("baseline median", "right"),
                      ("ratio", "right"), ("target", "left"), ("", "left")):  # fmt: skip
        table.add_column(col, justify=just, no_wrap=col in ("benchmark", "metric", "median"))  # type: ignore[arg-type]
    for res in results:
        if res.skipped:
            table.add_row(res.name, f"[yellow]skipped: {res.skipped}[/]", *[""] * 6)
            continue
        for i, r in enumerate(res.rows):
            style = {True: "green", False: "bold red", None: ""}[r.ok]
            mark = verdict(r.ok)
            table.add_row(
                res.name if i == 0 else "",
                r.metric,
                fmt(r.value, r.unit),
                r.baseline or "",
                fmt(r.baseline_value, r.baseline_unit) if r.baseline_value is not None else "",
                fmt(r.ratio, "x"),
                r.target,
                f"[{style}]{mark}[/]" if style else mark,
            )
        table.add_section()
    console = Console()
    if not console.is_terminal or console.width < 140:
        console = Console(width=180)
    console.print(table)
    for res in results:
        for note in res.notes:
            console.print(f"[dim]{res.name}: {note}[/]")


def write_json(results: list[BenchResult], meta: dict[str, Any], stamp: str) -> Path:
    import orjson

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"engine-{stamp}.json"
    body = {**meta, "results": [asdict(r) | {"ok": r.ok} for r in results]}
    path.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return path


def markdown_table(res: BenchResult) -> str:
    if res.skipped:
        return f"_skipped: {res.skipped}_"
    lines = [
        "| metric | median | baseline (same run) | ratio | target | |",
        "|---|---:|---|---:|---|---|",
    ]
    for r in res.rows:
        base = f"{r.baseline}: {fmt(r.baseline_value, r.baseline_unit)}" if r.baseline else ""
        lines.append(
            f"| {r.metric} | {fmt(r.value, r.unit)} | {base} | {fmt(r.ratio, 'x')} "
            f"| {r.target} | {verdict(r.ok)} |"
        )
    return "\n".join(lines)


def update_docs(results: list[BenchResult], meta: dict[str, Any], json_path: Path) -> bool:
    """Replace each benchmark's generated block in docs/benchmarks.md (between
    ``<!-- engine:NAME -->`` and ``<!-- /engine:NAME -->``) and the machine block."""
    if not DOCS.exists():
        return False
    text = DOCS.read_text()
    rel = json_path.relative_to(ROOT)
    m = meta["machine"]
    pg = m.get("postgres") or {}
    machine_md = (
        f"{m['cpu']}, {m['cores']} cores, {m['memory']}, {m['os']}; Python {m['python']}, "
        f"SQLite {m['sqlite']}"
        + (
            f", PostgreSQL {pg.get('server_version')} on localhost (fsync={pg.get('fsync')}, "
            f"synchronous_commit={pg.get('synchronous_commit')})"
            if pg
            else ""
        )
        + f". Run {meta['started']} (`{meta['command']}`, {meta['runs']} runs per benchmark), "
        f"raw results `{rel}`."
    )
    text = _replace_block(text, "machine", machine_md)
    for res in results:
        body = markdown_table(res)
        if res.params or res.load:
            params = ", ".join(f"{k}={v}" for k, v in res.params.items())
            if res.load:
                params += f"; load average {res.load[0]} -> {res.load[-1]}"
            body += f"\n\n<sub>{params.strip('; ')}</sub>"
        text = _replace_block(text, res.name, body)
    DOCS.write_text(text)
    return True


def _replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(
        rf"(<!-- engine:{re.escape(name)} -->\n).*?(\n<!-- /engine:{re.escape(name)} -->)",
        re.S,
    )
    return pattern.sub(lambda mt: mt.group(1) + body + mt.group(2), text)
