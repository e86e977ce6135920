"""``python -m bench peers [--quick] [--systems ..] [--backends ..] [--workloads ..]``,
``python -m bench engine [--quick] [--only NAME,...] [--profile]``,
``python -m bench http [--quick]`` (the cost of the engine around one http step),
``python -m bench api [--runs N] [--n N] [--backends sqlite,postgres]``,
``python -m bench dashboard [--n N] [--runs N] [--backends ..] [--no-browser]``,
``python -m bench all [--quick]`` (engine, then peers: what ``make bench`` should run), or
``python -m bench scale [--size N] [--backends sqlite,postgres]`` (issue 16; not in ``all``)."""

from __future__ import annotations

import sys


def main() -> int:
    argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("commands: peers   side by side with DBOS and Temporal (bench/README.md)")
        print("          engine  engine benchmarks (docs/benchmarks.md)")
        print("          http    one http step vs bare httpx requests (docs/benchmarks.md)")
        print("          api     the HTTP API: POST req/s, start-and-wait, overhead")
        print("          dashboard  the web dashboard's render times (docs/benchmarks.md)")
        print("          all     engine, then peers (--quick passed to both)")
        print("          scale   N parked executions vs an empty store (docs/benchmarks.md)")
        return 0
    if argv[0] == "peers":
        from bench.driver import main as peers

        return peers(argv[1:])
    if argv[0] == "engine":
        from bench.engine import main as engine

        return engine(argv[1:])
    if argv[0] == "http":
        from bench.http_step import main as http

        return http(argv[1:])
    if argv[0] == "api":
        from bench.api import main as api

        return api(argv[1:])
    if argv[0] == "dashboard":
        from bench.dashboard import main as dashboard

        return dashboard(argv[1:])
    if argv[0] == "scale":
        from bench.scale import main as scale

        return scale(argv[1:])
    if argv[0] == "all":
        from bench.driver import main as peers
        from bench.engine import main as engine

        quick = ["--quick"] if "--quick" in argv[1:] else []
        rc = engine(quick)
        return peers(quick) or rc
    print(f"unknown command {argv[0]!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
