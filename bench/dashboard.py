"""Dashboard benchmarks: ``python -m bench dashboard [--n N] [--runs N] [--backends ..]
[--no-browser]``.

For each store (SQLite file, PostgreSQL schema), ``--n`` executions (default 100,000:
1,000 created through the engine, then copied by SQL with new ids, spread creation times
and statuses, half of them in tenant ``acme``) plus one execution of a 1,000-step flow
run to completion. Then, in this process through the ASGI app (so the numbers are the
server's: auth lookup, store queries, template rendering; no network):

- ``list``: ``GET /ui/executions`` (first page and the counts by status), for a ``*`` key
  and for the ``acme`` tenant key; ``list-page2``: the page after the first cursor;
- ``execution``: ``GET /ui/executions/{id}`` of the 1,000-step execution (graph of 1,000
  nodes, the timeline of the latest 200 attempts, 1,000 history rows, its events);
- baselines measured in the same run: the REST API's ``GET /api/v1/executions`` and
  ``GET /api/v1/executions/{id}`` (JSON of the same data).

Each figure is the p50 of ``--runs`` requests (after 3 warm-up requests). With chromium
and Playwright present (and not ``--no-browser``), also the browser's first contentful
paint of the list over a real uvicorn server on the SQLite store (median of 5 loads).
Writes ``bench/results/dashboard-<timestamp>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from flowmonkey import FlowBuilder, Result, handler
from flowmonkey.api import create_app
from flowmonkey.definitions.registry import FlowRegistry
from flowmonkey.engine.engine import Engine
from flowmonkey.handlers.registry import HandlerRegistry
from flowmonkey.model.keys import new_api_key

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work"
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
SEED = 1_000
LONG_STEPS = 1_000
STATUSES = ("completed", "failed", "waiting", "cancelled", "completed", "pending")


@handler("bench-noop")
async def noop(ctx: Any) -> Result:
    return Result.success()


def _flows() -> list[Any]:
    short = FlowBuilder("short").step("a", "bench-noop").step("b", "bench-noop").build()
    long = FlowBuilder("long")
    for i in range(LONG_STEPS):
        long = long.step(f"s{i:04d}", "bench-noop")
    return [short, long.build()]


def _engine(store: Any) -> Engine:
    handlers = HandlerRegistry()
    handlers.register(noop)
    flows = FlowRegistry()
    for flow in _flows():
        flows.register(flow)
    return Engine(store, handlers, flows)


async def _seed(engine: Engine) -> str:
    """SEED executions through the engine and the 1,000-step one; its id."""
    for i in range(SEED):
        await engine.create("short", {"i": i}, tenant_id="acme" if i % 2 else None,
                            correlation_id=f"order-{i}")  # fmt: skip
    long = await engine.start("long", {"note": "1,000 steps"})
    return long.execution.id


def _copy_sql(columns: list[str], k: int, pg: bool) -> str:
    shifted = {
        "id": "id || '~c%d'" % k,
        "correlation_id": "correlation_id || '~c%d'" % k,
        "status": "'%s'" % STATUSES[k % len(STATUSES)],
        "created_at": (f"created_at - interval '{k} seconds'" if pg else f"created_at - {k}000000"),
        "lease_owner": "NULL",
    }
    picked = ", ".join(shifted.get(c, c) for c in columns)
    names = ", ".join(columns)
    return (
        f"INSERT INTO executions ({names}) SELECT {picked} FROM executions "
        f"WHERE flow_id = 'short' AND id NOT LIKE '%~%'"
    )


def _multiply_sqlite(path: Path, copies: int) -> None:
    conn = sqlite3.connect(str(path))
    try:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(executions)")]
        for k in range(1, copies):
            conn.execute(_copy_sql(columns, k, pg=False))
        conn.commit()
        conn.execute("ANALYZE")
    finally:
        conn.close()


def _multiply_pg(schema: str, copies: int) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'executions' ORDER BY ordinal_position",
            (schema,),
        ).fetchall()
        columns = [r[0] for r in rows]
        for k in range(1, copies):
            conn.execute(_copy_sql(columns, k, pg=True).replace("%~%", "%%~%%"))
        conn.execute("ANALYZE executions")


async def _keys(engine: Engine) -> dict[str, str]:
    now = datetime.now(UTC)
    keys = {}
    for name, tenant in (("star", "*"), ("acme", "acme")):
        secret, record = new_api_key(
            name=name, tenant=tenant, scopes=("read", "write"), now=now,
            expires_in=timedelta(days=1),
        )  # fmt: skip
        await engine.store.create_api_key(record)
        keys[name] = secret
    return keys


async def _p50(client: httpx.AsyncClient, url: str, runs: int, **kw: Any) -> dict[str, float]:
    for _ in range(3):
        answer = await client.get(url, **kw)
        assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        answer = await client.get(url, **kw)
        times.append((time.perf_counter() - t0) * 1000)
        assert answer.status_code == 200
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p90_ms": round(times[int(len(times) * 0.9) - 1], 2),
        "bytes": len(answer.content),
    }


async def _signed_in(app: Any, key: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")
    form = await client.get("/ui/login")
    token = form.text.split('name="token" value="', 1)[1].split('"', 1)[0]
    answer = await client.post("/ui/login", data={"key": key, "token": token, "next": "/ui/"})
    assert answer.status_code == 303, answer.text
    return client


async def _measure(store: Any, copies: int, runs: int, multiply: Any) -> dict[str, Any]:
    engine = _engine(store)
    app = create_app(engine)
    async with app.router.lifespan_context(app):
        t0 = time.perf_counter()
        long_id = await _seed(engine)
        keys = await _keys(engine)
        multiply(copies)
        setup_s = time.perf_counter() - t0
        counts = await engine.store.count_by_status()
        total = sum(counts.values())
        star = await _signed_in(app, keys["star"])
        acme = await _signed_in(app, keys["acme"])
        api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")
        bearer = {"Authorization": f"Bearer {keys['star']}"}
        first = await star.get("/ui/executions")
        cursor = first.text.split("cursor=", 1)[1].split('"', 1)[0].replace("&amp;", "&")
        out = {
            "executions": total,
            "long_history": len((await engine.store.get(long_id)).history),  # type: ignore[union-attr]
            "setup_s": round(setup_s, 1),
            "list": await _p50(star, "/ui/executions", runs),
            "list-tenant": await _p50(acme, "/ui/executions", runs),
            "list-failed": await _p50(star, "/ui/executions?status=failed", runs),
            "list-page2": await _p50(star, f"/ui/executions?cursor={cursor}", runs),
            "api-list": await _p50(api, "/api/v1/executions?limit=50", runs, headers=bearer),
            "execution": await _p50(star, f"/ui/executions/{long_id}", runs),
            "api-execution": await _p50(api, f"/api/v1/executions/{long_id}", runs, headers=bearer),
        }
        for client in (star, acme, api):
            await client.aclose()
    return out


def _sqlite(n: int, runs: int, keep: Path | None) -> dict[str, Any]:
    from flowmonkey.stores.sqlite import SqliteStore

    WORK.mkdir(parents=True, exist_ok=True)
    path = keep or WORK / f"dashboard-{uuid.uuid4().hex[:6]}.db"
    try:
        store = SqliteStore(path)
        return asyncio.run(_measure(store, n // SEED, runs, lambda c: _multiply_sqlite(path, c)))
    finally:
        if keep is None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)


def _postgres(n: int, runs: int) -> dict[str, Any]:
    import psycopg

    from flowmonkey.stores.postgres import PostgresStore

    schema = f"bench_ui_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        store = PostgresStore(PG_ADMIN, schema=schema)
        return asyncio.run(_measure(store, n // SEED, runs, lambda c: _multiply_pg(schema, c)))
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _first_paint(path: Path, loads: int = 5) -> dict[str, Any]:
    """First contentful paint of the list in headless chromium, over uvicorn."""
    chromium = os.environ.get("FLOWMONKEY_CHROMIUM", "/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"skipped": "playwright is not installed"}
    if not shutil.which(chromium) and not Path(chromium).exists():
        return {"skipped": f"no chromium at {chromium}"}
    import socket

    import uvicorn

    from flowmonkey.stores.sqlite import SqliteStore

    engine = _engine(SqliteStore(path))
    key = asyncio.run(_key_in(path))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    ready = threading.Event()
    while not server.started:
        ready.wait(0.05)
    url = f"http://127.0.0.1:{port}"
    paints = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])  # fmt: skip
            page = browser.new_page()
            page.goto(f"{url}/ui/login")
            page.get_by_label("API key").fill(key)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/ui/executions")
            for _ in range(loads):
                page.goto(f"{url}/ui/executions")
                fcp = page.evaluate(
                    "() => new Promise(done => new PerformanceObserver((list, obs) => {"
                    " const e = list.getEntriesByName('first-contentful-paint')[0];"
                    " if (e) { obs.disconnect(); done(e.startTime); } })"
                    ".observe({type: 'paint', buffered: true}))"
                )
                paints.append(float(fcp))
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
    return {"fcp_ms_median": round(statistics.median(paints), 1), "fcp_ms": paints}


async def _key_in(path: Path) -> str:
    from flowmonkey.stores.sqlite import SqliteStore

    store = SqliteStore(path)
    await store.initialize()
    secret, record = new_api_key(name="fcp", tenant="*", scopes=("read",),
                                 now=datetime.now(UTC), expires_in=timedelta(hours=1))  # fmt: skip
    await store.create_api_key(record)
    await store.close()
    return secret


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dashboard")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "n": args.n,
        "runs": args.runs,
        "load_before": _load(),
        "backends": {},
    }
    backends = args.backends.split(",")
    tmp = Path(tempfile.mkdtemp(dir=WORK if WORK.exists() else None))
    kept = tmp / "fcp.db"
    try:
        if "sqlite" in backends:
            results["backends"]["sqlite"] = _sqlite(args.n, args.runs, kept)
        if "postgres" in backends:
            results["backends"]["postgres"] = _postgres(args.n, args.runs)
        if not args.no_browser and kept.exists():
            results["browser"] = _first_paint(kept)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["load_after"] = _load()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"dashboard-{stamp}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    for name, data in results["backends"].items():
        print(f"{name}: {data['executions']} executions, long history {data['long_history']}")
        for what in ("list", "list-tenant", "list-failed", "list-page2", "api-list",
                     "execution", "api-execution"):  # fmt: skip
            row = data[what]
            print(f"  {what:14} p50 {row['p50_ms']:8.2f} ms  p90 {row['p90_ms']:8.2f} ms  "
                  f"{row['bytes']:>8} bytes")  # fmt: skip
    if "browser" in results:
        print("browser:", results["browser"])
    print(f"load {results['load_before']} -> {results['load_after']}; wrote {out}")
    return 0
