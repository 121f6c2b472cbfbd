"""`make bench`: drive every cgibox front and the servers people would pick instead (nginx,
lighttpd, twisted, `python -m http.server`, uvicorn + Starlette, aiohttp, granian) with wrk on one
generated corpus.

    python bench/run.py            # a few seconds per cell -> docs/benchmarks.md + docs/benchmarks.png
    python bench/run.py --quick    # ~1 s per cell -> bench/results/quick.md (proves the bench works)

Every server is started here on 127.0.0.1 and a free port, waited for, driven cell by cell and
stopped (its whole process group) before the next one starts, also on Ctrl-C or failure. A server
that is not installed or does not start is reported as "not available" instead of ending the run.
uvicorn, aiohttp and granian are pip-installed first into bench/.peers-venv (once; kept between runs).
Each figure is a ratio to the best C server, the best Python-hosted server and http.server
of the same run, so they compare servers, not machines. The cgibox fronts also run the connection
cells (idle keep-alive crowd, slow-head crowd, memory holding idle connections; bench/connections.py).
Then the cgibox fronts, nginx and lighttpd run the TLS cells (the 1 KiB and 64 MiB files over HTTPS,
as ratios to nginx); a front that refuses --tls-cert is reported as having no TLS.
This module is the command line; bench/__init__.py lists the modules that do the work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import BENCH, REPO, connections  # noqa: E402
from bench.cells import CELLS  # noqa: E402
from bench.formatting import progress  # noqa: E402
from bench.peers import TLS_PEERS  # noqa: E402
from bench.report import write_report  # noqa: E402
from bench.results import Run  # noqa: E402
from bench.runner import run_all  # noqa: E402
from bench.servers import BASELINE, SERVERS  # noqa: E402

# a QUICK run proves the TLS cells on each kind of front (the refused ones cost nothing) and on
# the peer they compare to, within its time budget
QUICK_TLS_SERVERS = ("threading", "forking", "gunicorn-gthread", "nginx")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="about 1 s per cell; writes bench/results/quick.* instead of docs/")
    parser.add_argument("--duration", type=int, help="whole seconds per cell (default 5, quick 1)")
    parser.add_argument("--timeout", type=int, help="wrk --timeout in whole seconds (default 10, quick 5)")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1),
                        help="gunicorn worker processes (default: 2 x CPUs)")
    parser.add_argument("--servers", help="comma-separated subset of: " + ",".join(s.key for s in SERVERS))
    parser.add_argument("--cells", help="comma-separated subset of the cells: "
                        + ",".join(c.key for c in CELLS))
    parser.add_argument("--output", type=Path, help="Markdown table (default docs/benchmarks.md, "
                                                    "quick: bench/results/quick.md)")
    parser.add_argument("--chart", type=Path, help="chart image beside it (default docs/benchmarks.png; "
                                                   "an .svg is drawn instead when matplotlib is missing)")
    parser.add_argument("--json", type=Path, help="raw results (default bench/results/latest.json "
                                                  "or quick.json)")
    parser.add_argument("--connection-fronts",
                        help="cgibox fronts that also run the connection cells, comma-separated, or "
                             "'none' (default: every cgibox front; quick: threading)")
    parser.add_argument("--idle-rounds", type=int,
                        help="how many times each connection front runs the alone and beside-idle pair, "
                             "back to back (default 2: issue 19's target holds in two runs; quick: 1)")
    parser.add_argument("--no-peer-install", action="store_true",
                        help="install no Python-hosted peer (uvicorn, aiohttp, granian) into "
                             "bench/.peers-venv; those already there still run")
    parser.add_argument("--keep", action="store_true", help="keep the corpus and server logs")
    parser.add_argument("--profile-fronts",
                        help="cgibox fronts whose 1 KiB and 404 cells also run under py-spy, "
                             "comma-separated, or 'none' (default: threading,forking; quick: none)")
    parser.add_argument("--tls-servers",
                        help="servers that also run the TLS cells (1 KiB and 64 MiB files over HTTPS), "
                             "comma-separated, or 'none' (default: every cgibox front, nginx and lighttpd; "
                             "quick: threading, forking, gunicorn-gthread, nginx)")
    parser.add_argument("--label", default="", help="a line shown at the top of the report (what this "
                                                    "run is, e.g. which branch or conditions)")
    parser.add_argument("--render-only", action="store_true",
                        help="run nothing: write the table and chart again from the --json results")
    args = parser.parse_args(argv)
    results = BENCH / "results"
    if args.duration is None:
        args.duration = 1 if args.quick else 5
    if args.timeout is None:
        args.timeout = 5 if args.quick else 10
    if args.idle_rounds is None:
        args.idle_rounds = 1 if args.quick else 2
    if args.output is None:
        args.output = results / "quick.md" if args.quick else REPO / "docs" / "benchmarks.md"
    if args.chart is None:
        args.chart = args.output.with_suffix(".png")
    if args.json is None:
        args.json = results / ("quick.json" if args.quick else "latest.json")
    if args.connection_fronts is None:
        every = ",".join(spec.key for spec in SERVERS if spec.is_cgibox)
        args.connection_fronts = "threading" if args.quick else every
    args.connection_fronts = tuple(f for f in args.connection_fronts.split(",") if f and f != "none")
    if args.profile_fronts is None:
        args.profile_fronts = "none" if args.quick else "threading,forking"
    args.profile_fronts = tuple(f for f in args.profile_fronts.split(",") if f and f != "none")
    if args.tls_servers is None:
        with_tls = [spec.key for spec in SERVERS if spec.is_cgibox or spec.kind in TLS_PEERS]
        args.tls_servers = ",".join(QUICK_TLS_SERVERS if args.quick else with_tls)
    args.tls_servers = tuple(f for f in args.tls_servers.split(",") if f and f != "none")
    if not 1 <= args.duration <= 120 or not 1 <= args.timeout <= 120:  # wrk takes whole seconds
        parser.error("--duration and --timeout must be whole seconds from 1 to 120")
    if not 1 <= args.idle_rounds <= 5:
        parser.error("--idle-rounds must be from 1 to 5")
    return args


def pick(choices, given, what, always=None):
    """The items of `choices` whose key the comma-separated `given` names (all when it is
    empty; `always` too), or None after a one-line error naming the unknown ones."""
    if not given:
        return list(choices)
    wanted = given.split(",")
    unknown = set(wanted) - {choice.key for choice in choices}
    if unknown:
        print(f"bench: unknown {what}: {', '.join(sorted(unknown))}", file=sys.stderr)
        return None
    return [choice for choice in choices if choice.key in wanted or choice.key == always]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        run = Run.from_json(json.loads(args.json.read_text()))
        write_report(run, args)
        return 0
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (Debian/Ubuntu: apt-get install wrk)", file=sys.stderr)
        return 2
    servers = pick(SERVERS, args.servers, "servers", always=BASELINE)
    cells = pick(CELLS, args.cells, "cells")
    if servers is None or cells is None:
        return 2

    def terminate(signum, frame):  # SIGTERM ends the run like Ctrl-C: servers are stopped
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    started = time.monotonic()
    try:
        sizes = connections.QUICK if args.quick else connections.FULL
        run = run_all(servers, cells, args.duration, args.timeout, args.workers, args.keep, sizes,
                      args.connection_fronts, args.profile_fronts, args.tls_servers, args.idle_rounds,
                      not args.no_peer_install)
    except KeyboardInterrupt:
        print("bench: interrupted; every server it started has been stopped", file=sys.stderr)
        return 130
    run.settings["quick"] = args.quick
    run.settings["label"] = args.label
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(run.to_json(), indent=1) + "\n")
    write_report(run, args)
    progress(f"took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
