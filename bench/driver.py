"""Driver for ``python -m bench peers``: runs every system's runner in its own venv.

One runner subprocess per (system, backend, run); each gets a fresh database
(SQLite: a new work directory; Postgres: ``DROP/CREATE DATABASE bench_<system>``).
Results: JSON lines in ``bench/results/peers-<timestamp>.jsonl``, a rich table, and
``docs/benchmarks_peers.md`` (+ plots in ``docs/img/``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.retention import keep_latest
from bench.workloads import ALL_WORKLOADS, BENCH, ROOT, WORK

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
PREFIX = "BENCH_JSON "

SYSTEMS: dict[str, dict[str, Any]] = {
    "flowmonkey": {"python": ROOT / ".venv" / "bin" / "python",
                   "module": "bench.runners.flowmonkey_runner",
                   "backends": ("sqlite", "postgres")},
    "dbos": {"python": BENCH / ".venvs" / "dbos" / "bin" / "python",
             "module": "bench.runners.dbos_runner", "backends": ("sqlite", "postgres")},
    # DBOS's synchronous workflows called directly: only where a caller takes the result
    "dbos-sync": {"python": BENCH / ".venvs" / "dbos" / "bin" / "python",
                  "module": "bench.runners.dbos_sync_runner", "backends": ("sqlite", "postgres"),
                  "workloads": ("W1", "W2")},
    "temporal": {"python": BENCH / ".venvs" / "temporal" / "bin" / "python",
                 "module": "bench.runners.temporal_runner", "backends": ("sqlite",)},
}
PROJECT_PY = ROOT / ".venv" / "bin" / "python"
WARMUP_WORKLOADS = ("W1", "W2")


def pg_dsn(db: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{db}"


def fresh_pg_db(db: str) -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{db}"')
    return pg_dsn(db)


def drop_pg_db(db: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def run_proc(cmd: list[str], log: Path, timeout: float) -> tuple[list[dict[str, Any]], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("VIRTUAL_ENV", None)
    recs: list[dict[str, Any]] = []
    with open(log, "w") as lf:
        lf.write("$ " + shlex.join(cmd) + "\n")
        lf.flush()
        try:
            p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=lf, timeout=timeout, text=True)
            out, err = p.stdout, "" if p.returncode == 0 else f"exit {p.returncode}"
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = f"timeout after {timeout}s"
        for line in out.splitlines():
            if line.startswith(PREFIX):
                recs.append(json.loads(line[len(PREFIX):]))
            else:
                lf.write(line + "\n")
    return recs, err


# ---------------------------------------------------------------------------
# aggregation
# ---------------------------------------------------------------------------


def _median_merge(items: list[Any]) -> Any:
    vals = [v for v in items if v is not None]
    if not vals:
        return None
    if all(isinstance(v, bool) for v in vals):
        return all(vals)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
        return statistics.median(vals)
    if all(isinstance(v, dict) for v in vals):
        keys = {k for v in vals for k in v}
        return {k: _median_merge([v.get(k) for v in vals]) for k in keys}
    return vals[-1]


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("warmup") or r.get("workload") in ("setup", "meta"):
            continue
        k = (r["system"], r.get("backend", "-"), r["workload"], r.get("variant", ""))
        groups.setdefault(k, []).append(r)
    out = []
    for (sys_, be, wl, var), rs in groups.items():
        merged = _median_merge(rs)
        merged.update({"kind": "summary", "system": sys_, "backend": be, "workload": wl,
                       "variant": var, "runs": len(rs)})
        for k in ("run", "traceback"):
            merged.pop(k, None)
        out.append(merged)
    order = {w: i for i, w in enumerate(["baseline", *ALL_WORKLOADS])}
    out.sort(key=lambda r: (order.get(r["workload"], 99), r["variant"], r["system"],
                            r["backend"]))
    return out


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench peers")
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 measured run")
    ap.add_argument("--systems", default="flowmonkey,dbos,dbos-sync,temporal")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    ap.add_argument("--runs", type=int, default=None,
                    help="measured runs per system/backend (default: 1 quick, 3 full)")
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/")
    ap.add_argument("--from-jsonl", default=None, metavar="PATH",
                    help="no runs: re-render the table and docs from a results file")
    return ap.parse_args(argv)


def rerender(path: str, console: Any, no_docs: bool) -> int:
    """Table + docs from an existing ``peers-<ts>.jsonl`` (its raw records and run meta)."""
    from bench import report

    raw, meta = [], {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "raw":
                raw.append(r)
            elif r.get("kind") == "run":
                meta = r
    summary = aggregate(raw)
    report.print_table(console, summary)
    if not no_docs:
        md = report.write_docs(summary, raw, meta.get("skipped", []), meta.get("commands", []),
                               meta.get("argv", []), meta.get("mode", "?"), meta.get("runs", 0),
                               meta.get("warm", 0), meta.get("total_s", 0.0), Path(path))
        console.print(f"docs: {os.path.relpath(md, ROOT)}")
    return 0


def main(argv: list[str]) -> int:
    from rich.console import Console

    from bench import report

    args = parse(argv)
    console = Console(width=None if sys.stdout.isatty() else 200)
    if args.from_jsonl:
        return rerender(args.from_jsonl, console, args.no_docs)
    mode = "quick" if args.quick else "full"
    runs = args.runs or (1 if args.quick else 3)
    warm = 0 if (args.quick or args.no_warmup) else 1
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    workloads = [w for w in ALL_WORKLOADS if w in args.workloads.split(",")]
    ts = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workroot = WORK / ts
    workroot.mkdir(parents=True, exist_ok=True)
    results_dir = BENCH / "results"
    results_dir.mkdir(exist_ok=True)
    out_path = results_dir / f"peers-{ts}.jsonl"
    records: list[dict[str, Any]] = []
    skipped: list[str] = []
    t_start = time.perf_counter()

    def keep(recs: list[dict[str, Any]], warmup: bool) -> None:
        for r in recs:
            r["warmup"] = warmup
            r["ts"] = ts
        records.extend(recs)
        with open(out_path, "a") as f:
            for r in recs:
                f.write(json.dumps({"kind": "raw", **r}, default=str) + "\n")

    # baselines (physical limits) in the project venv
    console.print(f"[bold]bench peers[/] mode={mode} runs={runs}+{warm} warm-up "
                  f"systems={systems} backends={backends} workloads={workloads}")
    bl_dsn = fresh_pg_db("bench_baseline") if "postgres" in backends else None
    for i in range(runs):
        cmd = [str(PROJECT_PY), "-m", "bench.runners.baseline_runner", "--mode", mode,
               "--workdir", str(workroot / f"baseline-r{i}"), "--backends", ",".join(backends),
               "--run", str(i)]
        if bl_dsn:
            cmd += ["--pg-dsn", bl_dsn]
        (workroot / f"baseline-r{i}").mkdir(parents=True, exist_ok=True)
        recs, err = run_proc(cmd, workroot / f"baseline-r{i}.log", 300)
        if err:
            console.print(f"[red]baseline failed: {err}[/]")
        keep(recs, False)
    if bl_dsn:
        drop_pg_db("bench_baseline")

    commands: list[str] = []
    for s in systems:
        spec = SYSTEMS.get(s)
        if spec is None:
            console.print(f"[red]unknown system {s}[/]")
            continue
        py = spec["python"]
        if not Path(py).exists():
            skipped.append(f"{s}: {py} missing (run `bash bench/setup.sh`)")
            continue
        if s == "flowmonkey":
            chk = subprocess.run([str(py), "-m", spec["module"], "--check"], cwd=ROOT,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)},
                                 capture_output=True, text=True)
            if chk.returncode != 0:
                skipped.append(f"flowmonkey: engine API not available ({chk.stdout.strip()}"
                               f"{chk.stderr.strip()[-200:]})")
                continue
        own = [w for w in workloads if w in spec.get("workloads", workloads)]
        if not own:
            skipped.append(f"{s}: none of the selected workloads applies")
            continue
        for be in backends:
            if be not in spec["backends"]:
                skipped.append(f"{s}: no {be} backend")
                continue
            for i in range(warm + runs):
                is_warm = i < warm
                wd = workroot / f"{s}-{be}-r{i}"
                wd.mkdir(parents=True, exist_ok=True)
                # the warm-up run uses the quick sizes and only W1/W2 (it only warms
                # caches, files and the server; the rest would cost minutes for nothing)
                wl = [w for w in own if w in WARMUP_WORKLOADS] or own
                cmd = [str(py), "-m", spec["module"], "--backend", be,
                       "--mode", "quick" if is_warm else mode,
                       "--workloads", ",".join(wl if is_warm else own),
                       "--workdir", str(wd),
                       "--run", str(i)]
                db = f"bench_{s.replace('-', '_')}"
                if be == "postgres":
                    cmd += ["--pg-dsn", fresh_pg_db(db)]
                label = f"{s}/{be} run {i}{' (warm-up)' if is_warm else ''}"
                t0 = time.perf_counter()
                with console.status(f"running {label} ..."):
                    recs, err = run_proc(cmd, wd / "runner.log",
                                         600 if mode == "quick" else 1200)
                if be == "postgres":
                    drop_pg_db(db)
                if i == warm:
                    commands.append(shlex.join(
                        [os.path.relpath(c, ROOT) if c.startswith(str(ROOT)) else c
                         for c in cmd]))
                errs = [r for r in recs if r.get("variant") == "error"]
                console.print(f"  {label}: {len(recs)} records in "
                              f"{time.perf_counter() - t0:.1f}s"
                              + (f" [red]{err}[/]" if err else "")
                              + (f" [red]{len(errs)} workload errors[/]" if errs else ""))
                for e in errs:
                    console.print(f"    [red]{e['workload']}: {e.get('error')}[/]")
                keep(recs, is_warm)

    summary = aggregate(records)
    total = time.perf_counter() - t_start
    with open(out_path, "a") as f:
        for r in summary:
            f.write(json.dumps(r, default=str) + "\n")
        f.write(json.dumps({"kind": "run", "argv": argv, "mode": mode, "runs": runs,
                            "warm": warm, "total_s": total, "skipped": skipped,
                            "commands": commands}) + "\n")
    report.print_table(console, summary)
    for s in skipped:
        console.print(f"[yellow]skipped: {s}[/]")
    console.print(f"results: {os.path.relpath(out_path, ROOT)}  ({total:.0f}s total)")
    if not args.no_docs:
        md = report.write_docs(summary, records, skipped, commands, argv, mode, runs, warm,
                               total, out_path)
        console.print(f"docs: {os.path.relpath(md, ROOT)}")
        keep_latest(out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
