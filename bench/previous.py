"""The figures of the last committed docs/benchmarks.md (2026-12-01 23:25, ba70ba0, quiet machine)
and the report's section that holds each cgibox front to them: issue 18 ("the benchmark's figures
must not fall"), issue 19 (each front's file, listing and CGI cells) and issue 23 (the default
front's connection and TLS cells).

Machines differ, so the comparison is of ratios within a run, never of absolute figures: a file,
listing or 404 cell as a ratio to nginx in the same cell (CGI to lighttpd: nginx runs none), a
connection cell to nginx's 1 KiB cell (the same 32 connections on the same file), a TLS cell to
nginx over TLS, and the memory cell as MB grown holding 10,000 idle connections.
"""

from __future__ import annotations

from bench.cells import CELLS, CONN_CELLS, TLS_CELLS, Cell
from bench.formatting import format_ratio, met
from bench.results import Run, value_of

WHEN = "docs/benchmarks.md of 2026-12-01 (ba70ba0)"

# req/s, or MB/s for the 64 MiB cells, as that run's tables show them ("none answered" is 0)
FIGURES: dict[str, dict[str, float]] = {
    "nginx": {"file-1k": 115078.0, "file-64m": 3083.0, "listing": 2045.0, "404": 117557.0, "tls-1k": 80721.0,
              "tls-64m": 1951.0},
    "lighttpd": {"file-1k": 177537.0, "file-64m": 4227.0, "listing": 38852.0, "cgi": 1796.0, "404": 152082.0},
    "threading": {"file-1k": 19966.0, "file-64m": 3081.0, "listing": 10514.0, "cgi": 1566.0, "404": 17305.0,
                  "conn-alone": 21271.0, "conn-idle": 16777.0, "conn-slow": 15140.0, "tls-1k": 14409.0,
                  "tls-64m": 1775.0},
    "forking": {"file-1k": 18858.0, "file-64m": 3018.0, "listing": 10870.0, "cgi": 1566.0, "404": 15700.0,
                "conn-alone": 17977.0, "conn-idle": 0.0, "conn-slow": 405.0, "tls-1k": 14193.0,
                "tls-64m": 2036.0},
    "gunicorn-gthread": {"file-1k": 5489.0, "file-64m": 2939.0, "listing": 4508.0, "cgi": 1139.0,
                         "404": 5728.0,
                         "conn-alone": 7043.0, "conn-idle": 5355.0, "conn-slow": 0.0, "tls-1k": 5869.0,
                         "tls-64m": 616.0},
    "gunicorn-sync": {"file-1k": 7114.0, "file-64m": 2417.0, "listing": 4653.0, "cgi": 1278.0, "404": 5305.0,
                      "conn-alone": 6496.0, "conn-idle": 6009.0, "conn-slow": 0.0, "tls-1k": 1077.0,
                      "tls-64m": 1176.0},
}
# MB of RSS grown holding 10,000 idle connections, where that run held them all
RSS_GROWTH_MB = {"threading": 106.8 - 97.5, "gunicorn-gthread": 182.4 - 175.4}
FRONTS = ("threading", "forking", "gunicorn-gthread", "gunicorn-sync")


def reference(cell: Cell) -> tuple[str, str]:
    """(peer, its cell) that a front's figure in `cell` is divided by."""
    if cell.key == "cgi":
        return "lighttpd", "cgi"
    if cell in CONN_CELLS:
        return "nginx", "file-1k"
    return "nginx", cell.key


def ratio_now(run: Run, front: str, cell: Cell, repeat: int = 1) -> float | None:
    peer, peer_cell = reference(cell)
    result = run.get(front, cell.key, repeat)
    if result is None or result.status != "ok" or not result.probe_ok or result.duration_s <= 0:
        return None
    theirs = value_of(run, peer, next(c for c in (*CELLS, *TLS_CELLS) if c.key == peer_cell))
    if not theirs:
        return None
    # a connection cell with some errors still counts what was answered (its own targets judge errors)
    return result.value(cell.unit) / theirs


def ratio_then(front: str, cell: Cell) -> float | None:
    peer, peer_cell = reference(cell)
    mine, theirs = FIGURES.get(front, {}).get(cell.key), FIGURES[peer].get(peer_cell)
    return None if mine is None or not theirs else mine / theirs


def shown_then(front: str, cell: Cell) -> str:
    peer, _ = reference(cell)
    then = ratio_then(front, cell)
    return "none answered" if not then else f"{format_ratio(then)} {peer}"


def previous_section(run: Run) -> list[str]:
    """One row per cgibox front and cell measured in both runs: the ratio then and now."""
    fronts = [front for front in FRONTS if front in run.servers]
    if not fronts:
        return []
    lines = [f"## No worse than the previous run ({WHEN})", "",
             "Each cgibox front's cells as ratios within their own run: file, listing and 404 cells to "
             "nginx in the same cell, CGI to lighttpd, connection cells to nginx's 1 KiB cell (the same "
             "32 connections on the same file), TLS cells to nginx over TLS; memory as MB grown holding the "
             "idle crowd. Met when the ratio now is at least the ratio then (issues 18, 19 and 23).", "",
             "| front | cell | then | now | status |", "|---|---|---:|---:|---|"]
    for front in fronts:
        label = run.servers[front]["label"]
        for cell in (*CELLS, *CONN_CELLS, *TLS_CELLS):
            then = ratio_then(front, cell)
            if then is None:
                continue
            peer, _ = reference(cell)
            runs = run.repeats(front, cell.key)
            if not runs:
                status = run.servers[front].get("status", "ok")
                why = ("cell not run" if status == "ok" else status)
                lines.append(f"| {label} | {cell.title} | {shown_then(front, cell)} | n/a | "
                             f"not measured ({why}) |")
                continue
            nows = [ratio_now(run, front, cell, repeat) for repeat in runs]
            if any(now is None for now in nows):
                result = run.get(front, cell.key, runs[0])
                why = (result.note or result.status) if result else "not run"
                peer_result = run.get(peer, reference(cell)[1])
                if peer_result is None or peer_result.status != "ok":
                    why = f"{peer} not measured"
                lines.append(f"| {label} | {cell.title} | {shown_then(front, cell)} | n/a | "
                             f"not measured ({why[:120]}) |")
                continue
            shown = ", ".join(format_ratio(now) for now in nows if now is not None)
            ok = all(now is not None and now >= then for now in nows)
            lines.append(f"| {label} | {cell.title} | {shown_then(front, cell)} | {shown} | {met(ok)} |")
        then_mb = RSS_GROWTH_MB.get(front)
        memory = run.memory.get(front)
        if then_mb is not None:
            if memory and memory.get("status") == "ok":
                grown = memory["rss_holding_mb"] - memory["rss_idle_mb"]
                answered = memory.get("answered", memory["held"])
                held_all = answered >= memory["held"]
                shown = f"+{grown:.1f} MB" + ("" if held_all else f" (only {answered:,} answered)")
                lines.append(f"| {label} | RSS grown holding {memory['held']:,} idle | +{then_mb:.1f} MB "
                             f"(10,000) | {shown} | {met(grown <= then_mb and held_all)} |")
            else:
                lines.append(f"| {label} | RSS grown holding idle connections | +{then_mb:.1f} MB | n/a | "
                             "not measured (connection cells not run) |")
    return lines + [""]
