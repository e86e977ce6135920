"""Terminal table, markdown section and plots for the peer benchmarks."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.workloads import PARAMS, ROOT

DOC = ROOT / "docs" / "benchmarks_peers.md"
IMG = ROOT / "docs" / "img"

WL_TITLES = {
    "baseline": "Physical limits (same box)",
    "W1": "W1 per-step latency (sequential flows, one client)",
    "W2": "W2 short-flow throughput (burst of N 3-step flows, C in flight)",
    "W3": "W3 signal -> resume round trip (signal sent -> result seen; cross-process: a "
          "worker process runs the flow, this process signals and polls)",
    "W3b": "W3b durable timer lateness (sleep 2 s)",
    "W4": "W4 crash recovery (SIGKILL the worker at ~50 %, restart after 1 s)",
    "W5": "W5 one vs two worker processes (3-step flows, 16 per worker)",
    "W7": "W7 idempotency (N keys x 100 concurrent starts)",
}


def _f(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.{nd}f}"
    return str(v)


def limits(summary: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for r in summary:
        if r["workload"] == "baseline" and r["variant"].endswith("-commit"):
            out[r["backend"]] = {"commit_ms": r["commit"]["p50_ms"],
                                 "commits_per_s": r["commits_per_s"]}
    return out


def row_metrics(r: dict[str, Any], lim: dict[str, dict[str, float]]) -> tuple[str, str, str]:
    """(headline, details, ratio to the physical limit) for one summary row."""
    w = r["workload"]
    if "error" in r:
        return ("ERROR", str(r["error"])[:80], "")
    L = lim.get(r.get("backend", ""), {})
    if w == "baseline":
        if "commits_per_s" in r:
            return (f"{_f(r['commits_per_s'])} commits/s",
                    f"p50 {_f(r['commit']['p50_ms'], 3)} ms, p99 {_f(r['commit']['p99_ms'], 3)} ms"
                    f"; {r.get('settings', '')}", "1x")
        return (f"{_f(r['ns_per_call'])} ns/await", f"{_f(r['calls_per_s'])} calls/s", "")
    if w == "W1":
        ps = r["per_step"]
        ratio = (f"{ps['p50_ms'] / L['commit_ms']:.0f}x commit" if L and ps["p50_ms"] else "")
        return (f"{_f(ps['p50_ms'], 2)} ms/step p50",
                f"p99 {_f(ps['p99_ms'], 2)} ms/step; flow p50 {_f(r['flow_latency']['p50_ms'])} ms;"
                f" {_f(r.get('cpu_ms_per_step'), 2)} CPU-ms/step", ratio)
    if w == "W2":
        ratio = (f"{L['commits_per_s'] / r['steps_per_s']:.0f}x below commit rate"
                 if L and r.get("steps_per_s") else "")
        return (f"{_f(r['flows_per_s'])} flows/s",
                f"{_f(r['steps_per_s'])} steps/s; flow p50 {_f(r['flow_latency']['p50_ms'])} ms,"
                f" p99 {_f(r['flow_latency']['p99_ms'])} ms; "
                f"{_f(r.get('cpu_s_per_1k_flows'))} CPU-s/1k flows", ratio)
    if w == "W3":
        s = r["signal_to_done"]
        extra = f"; {_f(r['flows_per_s'])} flows/s" if "flows_per_s" in r else ""
        ratio = f"{s['p50_ms'] / L['commit_ms']:.0f}x commit" if L and s["p50_ms"] else ""
        return (f"{_f(s['p50_ms'])} ms p50", f"p99 {_f(s['p99_ms'])} ms{extra}", ratio)
    if w == "W3b":
        s = r["lateness"]
        return (f"{_f(s['p50_ms'])} ms late p50",
                f"p99 {_f(s['p99_ms'])} ms, max {_f(s['max_ms'])} ms", "")
    if w == "W4":
        ok = (r.get("lost_flows") == 0 and r.get("reexecuted_completed_steps") == 0
              and r.get("missing_steps") == 0 and r.get("dup_within_in_flight") is not False)
        return (f"lost {_f(r.get('lost_flows'))}, dup {_f(r.get('duplicate_side_effects'))}"
                f" (<= {_f(r.get('concurrency'))} in flight)",
                f"re-run completed {_f(r.get('reexecuted_completed_steps'))}; "
                f"{_f(r.get('partial_at_kill'))} flows part-done at kill; restart->first "
                f"progress {_f(r.get('restart_to_first_progress_s'), 2)} s, ->all done "
                f"{_f(r.get('restart_to_all_done_s'), 2)} s", "ok" if ok else "VIOLATION")
    if w == "W5":
        sc = f"; scaling x{_f(r['scaling_vs_1'], 2)}" if r.get("scaling_vs_1") else ""
        ratio = (f"{L['commits_per_s'] / (r['flows_per_s'] * r['steps']):.0f}x below commit"
                 if L and r.get("flows_per_s") else "")
        return (f"{_f(r['flows_per_s'])} flows/s",
                f"dup {_f(r.get('duplicate_side_effects'))}, missing "
                f"{_f(r.get('missing_steps'))}{sc}", ratio)
    if w == "W7":
        st = (f"; {_f(r['stored_executions'])} stored" if r.get("stored_executions") is not None
              else "")
        return (f"{_f(r.get('executions'))} step runs / {_f(r.get('keys'))} keys",
                f"{_f(r.get('distinct_execution_ids'))} distinct ids{st}; start p50 "
                f"{_f(r['start_latency']['p50_ms'])} ms, p99 "
                f"{_f(r['start_latency']['p99_ms'])} ms", "ok" if r.get("correct") else "WRONG")
    return ("", "", "")


def _find(summary: list[dict[str, Any]], system: str, backend: str, wl: str,
          variant: str) -> dict[str, Any] | None:
    for r in summary:
        if (r["system"], r["backend"], r["workload"], r["variant"]) == (system, backend, wl,
                                                                         variant):
            return None if "error" in r else r
    return None


def fastest_dbos(summary: list[dict[str, Any]], backend: str, wl: str,
                 variant: str) -> tuple[str, dict[str, Any]] | None:
    """DBOS's fastest configuration measured for this row: its async path (``dbos``) or
    its synchronous workflows called directly (``dbos-sync``)."""
    found = [(s, r) for s in ("dbos", "dbos-sync")
             if (r := _find(summary, s, backend, wl, variant)) is not None]
    if not found:
        return None
    if wl == "W1":
        return min(found, key=lambda sr: sr[1]["per_step"]["p50_ms"])
    return max(found, key=lambda sr: sr[1]["steps_per_s"])


def goals(summary: list[dict[str, Any]],
          records: list[dict[str, Any]] | None = None) -> list[tuple[str, str, str]]:
    """(goal, measured, met/MISSED) rows for the issue's goals, from the medians
    (duplicates: the worst measured run, when ``records`` are given)."""
    out: list[tuple[str, str, str]] = []
    lim = limits(summary)
    fm = "flowmonkey"

    def verdict(ok: bool | None) -> str:
        return "-" if ok is None else ("met" if ok else "MISSED")

    for be in ("sqlite", "postgres"):
        for var in sorted({r["variant"] for r in summary if r["workload"] == "W1"},
                          key=lambda v: int(v.split("=")[1])):
            a, fast = _find(summary, fm, be, "W1", var), fastest_dbos(summary, be, "W1", var)
            if a and fast:
                name, b = fast
                x = b["per_step"]["p50_ms"] / a["per_step"]["p50_ms"]
                out.append((f"W1 {var} {be}: >= 5x DBOS's fastest (per-step p50)",
                            f"{x:.1f}x ({_f(a['per_step']['p50_ms'], 2)} vs "
                            f"{_f(b['per_step']['p50_ms'], 2)} ms, {name})", verdict(x >= 5)))
        for var in sorted({r["variant"] for r in summary if r["workload"] == "W2"}):
            a, fast = _find(summary, fm, be, "W2", var), fastest_dbos(summary, be, "W2", var)
            if a and fast:
                name, b = fast
                x = a["steps_per_s"] / b["steps_per_s"]
                out.append((f"W2 {var} {be}: >= 5x DBOS's fastest (steps/s)",
                            f"{x:.1f}x ({_f(a['steps_per_s'])} vs {_f(b['steps_per_s'])},"
                            f" {name})", verdict(x >= 5)))
        bursts = sorted({r["variant"] for r in summary
                         if r["workload"] == "W3" and r["variant"].startswith("burst")})
        for var in ("one-at-a-time", *bursts):
            a, b = _find(summary, fm, be, "W3", var), _find(summary, "dbos", be, "W3", var)
            if a and b:
                x, y = a["signal_to_done"]["p50_ms"], b["signal_to_done"]["p50_ms"]
                out.append((f"W3 {var} {be}: faster than DBOS (p50)",
                            f"{_f(x)} vs {_f(y)} ms", verdict(x < y)))
        big = max((r for r in summary if r["workload"] == "W1" and r["system"] == fm
                   and r["backend"] == be and "per_step" in r and "error" not in r),
                  key=lambda r: int(r["steps"]), default=None)
        if big and be in lim:
            rate = 1000.0 / big["per_step"]["p50_ms"]
            share = rate / lim[be]["commits_per_s"]
            out.append((f"single stream {be}: >= 60% of the raw commit rate (W1 {big['variant']})",
                        f"{share:.0%} ({_f(rate)} steps/s vs {_f(lim[be]['commits_per_s'])} "
                        f"commits/s)", verdict(share >= 0.6)))
    # ahead of Temporal's dev server everywhere it runs (sqlite)
    for r in summary:
        if r["system"] != "temporal" or "error" in r:
            continue
        a = _find(summary, fm, r["backend"], r["workload"], r["variant"])
        if a is None:
            continue
        wl, var = r["workload"], r["variant"]
        if wl == "W1":
            x, y, unit, better = (a["per_step"]["p50_ms"], r["per_step"]["p50_ms"], "ms/step",
                                  a["per_step"]["p50_ms"] < r["per_step"]["p50_ms"])
        elif wl in ("W2", "W5"):
            x, y, unit = a["flows_per_s"], r["flows_per_s"], "flows/s"
            better = x > y
        elif wl == "W3":
            x, y, unit = a["signal_to_done"]["p50_ms"], r["signal_to_done"]["p50_ms"], "ms"
            better = x < y
        elif wl == "W3b":
            x, y, unit = a["lateness"]["p50_ms"], r["lateness"]["p50_ms"], "ms late"
            better = x < y
        elif wl == "W4":
            x, y, unit = a["restart_to_all_done_s"], r["restart_to_all_done_s"], "s to recover"
            better = x < y
        elif wl == "W7":
            x, y, unit = a["start_latency"]["p50_ms"], r["start_latency"]["p50_ms"], "ms start"
            better = x < y
        else:
            continue
        out.append((f"{wl} {var} {r['backend']}: ahead of Temporal", f"{_f(x)} vs {_f(y)} {unit}",
                    verdict(better)))
    for r in summary:
        if r["system"] != fm:
            continue
        if "error" in r:
            out.append((f"{r['workload']} {r['backend']}: runs", str(r["error"])[:60], "MISSED"))
            continue
        if r["workload"] == "W4":
            ok = r.get("lost_flows") == 0 and r.get("reexecuted_completed_steps") == 0
            out.append((f"W4 {r['backend']}: 0 lost flows, 0 re-run completed steps",
                        f"lost {_f(r.get('lost_flows'))}, re-run "
                        f"{_f(r.get('reexecuted_completed_steps'))} (dup in flight "
                        f"{_f(r.get('duplicate_side_effects'))})", verdict(ok)))
        if r["workload"] == "W5":
            worst = worst_case(records or [], fm, "W5", "duplicate_side_effects").get(
                f"{r['backend']} {r['variant']}", r.get("duplicate_side_effects"))
            sc = (f"; scaling x{_f(r['scaling_vs_1'], 2)}" if r.get("scaling_vs_1") else "")
            out.append((f"W5 {r['variant']} {r['backend']}: 0 duplicates (every run)",
                        f"dup {_f(worst)} in the worst run, missing "
                        f"{_f(r.get('missing_steps'))}{sc}",
                        verdict(worst == 0 and r.get("missing_steps") == 0)))
        if r["workload"] == "W7":
            out.append((f"W7 {r['backend']}: 1 execution and 1 step run per key",
                        f"{_f(r.get('executions'))} step runs, "
                        f"{_f(r.get('stored_executions'))} stored, "
                        f"{_f(r.get('distinct_execution_ids'))} ids / {_f(r.get('keys'))} keys",
                        verdict(bool(r.get("correct")))))
    return out


def worst_case(records: list[dict[str, Any]], system: str, wl: str, key: str) -> dict[str, Any]:
    """Max of ``key`` over the measured runs, per (backend, variant): duplicates must be
    0 in EVERY run, not only in the median."""
    out: dict[str, Any] = {}
    for r in records:
        if (r.get("system"), r.get("workload")) == (system, wl) and not r.get("warmup"):
            k = f"{r.get('backend')} {r.get('variant')}"
            out[k] = max(out.get(k, 0), r.get(key) or 0)
    return out


def print_table(console: Any, summary: list[dict[str, Any]]) -> None:
    from rich.table import Table

    lim = limits(summary)
    t = Table(title="flowmonkey vs peers (medians)", show_lines=False)
    for c in ("workload", "variant", "system", "backend", "result", "details", "vs limit"):
        t.add_column(c, overflow="fold")
    prev = None
    for r in summary:
        if prev is not None and r["workload"] != prev:
            t.add_section()
        prev = r["workload"]
        h, d, ratio = row_metrics(r, lim)
        t.add_row(r["workload"], r["variant"], r["system"], r["backend"], h, d, ratio)
    console.print(t)


# ---------------------------------------------------------------------------
# markdown + plots
# ---------------------------------------------------------------------------


def machine() -> dict[str, str]:
    info: dict[str, str] = {"uname": " ".join(platform.uname()), "cpus": str(os.cpu_count())}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["memory"] = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    info["python"] = platform.python_version()
    try:
        import psycopg

        from bench.driver import PG_ADMIN

        with psycopg.connect(PG_ADMIN) as c:
            row = c.execute("select version()").fetchone()
            info["postgres"] = row[0].split(" on ")[0] if row else "?"
            for s in ("synchronous_commit", "fsync", "shared_buffers", "max_connections"):
                r2 = c.execute(f"show {s}").fetchone()
                info[f"pg {s}"] = r2[0] if r2 else "?"
    except Exception as e:
        info["postgres"] = f"unavailable ({e})"
    try:
        info["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                     capture_output=True, text=True).stdout.strip() or "-"
    except OSError:
        pass
    return info


def plots(summary: list[dict[str, Any]]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    IMG.mkdir(parents=True, exist_ok=True)
    made = []
    # W1: per-step p50 latency by K, one bar group per system/backend
    w1 = [r for r in summary if r["workload"] == "W1" and "per_step" in r]
    if w1:
        series = sorted({f"{r['system']}/{r['backend']}" for r in w1})
        ks = sorted({int(r["steps"]) for r in w1})
        fig, ax = plt.subplots(figsize=(7, 4))
        width = 0.8 / max(1, len(series))
        for i, s in enumerate(series):
            ys = []
            for k in ks:
                m = [r for r in w1 if f"{r['system']}/{r['backend']}" == s and int(r["steps"]) == k]
                ys.append(m[0]["per_step"]["p50_ms"] if m else 0)
            ax.bar([x + i * width for x in range(len(ks))], ys, width, label=s)
        ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(ks))])
        ax.set_xticklabels([f"K={k}" for k in ks])
        ax.set_yscale("log")
        ax.set_ylabel("ms per step (p50, log)")
        ax.set_title("W1 per-step latency")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(IMG / "peers_w1_step_latency.png", dpi=110)
        plt.close(fig)
        made.append("img/peers_w1_step_latency.png")
    w2 = [r for r in summary if r["workload"] == "W2" and "flows_per_s" in r]
    if w2:
        fig, ax = plt.subplots(figsize=(7, 4))
        for s in sorted({f"{r['system']}/{r['backend']}" for r in w2}):
            pts = sorted((int(r["concurrency"]), r["flows_per_s"]) for r in w2
                         if f"{r['system']}/{r['backend']}" == s)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=s)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("flows in flight (C)")
        ax.set_ylabel("3-step flows / s")
        ax.set_title("W2 throughput vs concurrency")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(IMG / "peers_w2_throughput.png", dpi=110)
        plt.close(fig)
        made.append("img/peers_w2_throughput.png")
    return made


def write_docs(summary: list[dict[str, Any]], records: list[dict[str, Any]], skipped: list[str],
               commands: list[str], argv: list[str], mode: str, runs: int, warm: int,
               total_s: float, out_path: Path) -> Path:
    lim = limits(summary)
    info = machine()
    imgs = plots(summary)
    versions = sorted({(r["system"], r.get("version", "")) for r in records
                       if r.get("workload") == "setup"})
    notes = {r["system"] + "/" + r.get("backend", ""): r.get("notes")
             for r in records if r.get("workload") == "meta"}
    L: list[str] = []
    L.append("<!-- generated by `python -m bench peers`; do not edit by hand -->")
    L.append("## Side by side with the peers (DBOS Transact, Temporal)\n")
    L.append(f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by "
             f"`python -m bench peers {' '.join(argv)}` ({mode} mode: {runs} measured run(s)"
             f" after {warm} warm-up run(s) of W1/W2 at quick sizes per system and backend; "
             f"medians; "
             f"{total_s:.0f} s in all). Raw data: `{os.path.relpath(out_path, ROOT)}`.\n")
    L.append("**Machine.** " + "; ".join(f"{k}: {v}" for k, v in info.items()) + "\n")
    L.append("**Systems.** " + "; ".join(f"{s} {v}" for s, v in versions) + ". Each in its own "
             "venv (`bash bench/setup.sh`), each run on a fresh database (a new SQLite file, or "
             "`DROP/CREATE DATABASE bench_<system>` on the local Postgres).\n")
    if skipped:
        L.append("**Not measured in this run.** " + "; ".join(skipped) + "\n")
    L.append("**Settings.** Durable settings everywhere: the baselines and the side-effects "
             "table use SQLite WAL + `synchronous=FULL`; DBOS on SQLite uses its own "
             "connection settings (rollback journal, SQLite's default `synchronous=FULL`); "
             "the Temporal dev server gets `--sqlite-pragma journal_mode=wal --sqlite-pragma "
             "synchronous=2`; Postgres runs with `fsync=on`, `synchronous_commit=on`. Every "
             "step is the same no-op returning ~100 B. DBOS: in-process `start_workflow_async`"
             " for W1-W3b/W7, a queue (`polling_interval_sec=0.05`, default 1 s) with worker "
             "processes for W4/W5, otherwise defaults (SQLite `recv` polls every 1 s). "
             "Temporal: in-process `Worker` with SDK defaults (sandboxed workflows), activities "
             "with a 5 s start-to-close timeout, idempotent starts with "
             "`id_conflict_policy=USE_EXISTING` + `id_reuse_policy=REJECT_DUPLICATE` (with the "
             "default reuse policy a start after the first run finished runs the flow again). "
             "flowmonkey: `SqliteStore(path, synchronous=\"FULL\")` (WAL, on the event loop) "
             "or `open_store(postgres DSN)` with defaults (pool of 10, LISTEN/NOTIFY wakes); "
             "in-process `engine.start` / `engine.signal` (the next step runs inline) with a "
             "`Worker` task for timers for W1-W3b/W7; `Worker` subprocesses "
             "(`poll_interval=0.05`, `lease_for=2 s`, `stale_after=2 s`) for W3 cross-process, "
             "W4 and W5, where the client creates, signals with `run_next=False` and reads "
             "results with one shared poller.\n")
    if notes:
        L.append("Per-run notes: " + "; ".join(f"`{k}`: {v}" for k, v in notes.items()) + "\n")
    L.append(f"Parameters ({mode}): `{PARAMS[mode]}`\n")
    by_wl: dict[str, list[dict[str, Any]]] = {}
    for r in summary:
        by_wl.setdefault(r["workload"], []).append(r)
    for wl, rows in by_wl.items():
        L.append(f"### {WL_TITLES.get(wl, wl)}\n")
        L.append("| variant | system | backend | result | details | vs limit |")
        L.append("|---|---|---|---|---|---|")
        for r in rows:
            h, d, ratio = row_metrics(r, lim)
            L.append(f"| {r['variant']} | {r['system']} | {r['backend']} | {h} | {d} | {ratio} |")
        L.append("")
        if wl == "W1" and "img/peers_w1_step_latency.png" in imgs:
            L.append("![W1 per-step latency](img/peers_w1_step_latency.png)\n")
        if wl == "W2" and "img/peers_w2_throughput.png" in imgs:
            L.append("![W2 throughput vs concurrency](img/peers_w2_throughput.png)\n")
    g = goals(summary, records)
    if g:
        L.append("### Goals (from the issue), flowmonkey vs the peers\n")
        L.append("| goal | measured (medians) | |")
        L.append("|---|---|---|")
        for goal, got, ok in g:
            L.append(f"| {goal} | {got} | {'**MISSED**' if ok == 'MISSED' else ok} |")
        L.append("")
    analysis = ROOT / "bench" / "peers_analysis.md"
    if analysis.exists():
        L.append(analysis.read_text().rstrip() + "\n")
    L.append("### How to read the ratios\n")
    L.append("*vs limit* compares with the same box's raw commit of a one-row `UPDATE` per "
             "transaction on the same backend (Temporal's dev server: the SQLite figure): W1 "
             "and W3 give the latency as a multiple of one commit; W2/W5 say how many times "
             "fewer steps per second than bare commits. The Python baseline (awaiting a no-op "
             "coroutine) is the floor for any in-process step dispatch.\n")
    L.append("### Exact commands\n")
    L.append("```sh\nbash bench/setup.sh            # venvs: bench/.venvs/{dbos,temporal}\n"
             f"python -m bench peers {' '.join(argv)}\n```\n")
    L.append("Runner invocations (one per system/backend/run; `cwd` = repo root, "
             "`PYTHONPATH=.`):\n")
    L.append("```sh\n" + "\n".join(commands) + "\n```\n")
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(L))
    return DOC
