"""The report: docs/benchmarks.md (machine, servers, results with their ratios, connection cells,
targets, profiles, the hand-written notes) and the chart beside it, from a Run."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from dataclasses import asdict

from bench import BENCH, chart, connections, profile
from bench.cells import CELLS, CONN_CELLS, TLS_CELLS, Cell, cell_by_key
from bench.formatting import NOISY, cell_text, format_cpu, format_errors, format_ratio, format_value, progress
from bench.results import CellResult, Run, ratio_to, references, usable
from bench.targets import targets_section

NOTES = BENCH / "notes.md"


def markdown(run: Run, chart_name: str | None, quick: bool) -> str:
    m, s = run.machine, run.settings
    lines = ["# cgibox benchmarks", ""]
    if quick:
        lines += ["> QUICK run (about 1 s per cell, small crowds): it only proves the benchmark works; "
                  "its figures are too short to compare.", ""]
    if s.get("label"):
        lines += [f"> {s['label']}", ""]
    lines += [
        "Produced by `make bench` (bench/run.py); do not edit by hand. Every server ran on the same "
        "generated corpus on 127.0.0.1, one at a time, driven by wrk on the same machine (so wrk and "
        "the server share the CPUs), every access log going to /dev/null (twisted's to a file of the run: "
        "it rotates its log by renaming it; uvicorn, aiohttp and granian write none). Each figure is "
        "compared with the best C server (nginx, lighttpd), the best Python-hosted server (twisted web, "
        "`python -m http.server`, uvicorn + Starlette, aiohttp, granian: each in its own venv, "
        "bench/.peers-venv) and `python -m http.server` of this same run.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu']} |",
        f"| cores | {m['cores']} |",
        f"| memory | {m['memory']} |",
        f"| OS | {m['os']} |",
        f"| Python | {m['python']} |",
        f"| wrk | {m['wrk']} |",
        f"| cgibox | {m['cgibox']} |",
        f"| date | {m['date']} |",
        f"| load average (1 min) | {m.get('load_before', '?')} before, {m.get('load_after', '?')} after "
        "(wrk and the server under test included) |",
        f"| other processes' CPU during the cells | {noise_summary(run)} |",
        f"| per cell | {s['duration_s']} s, wrk `-t {s['wrk_threads']}`, `--timeout {s['wrk_timeout_s']}s`, "
        f"gunicorn `--workers {s['workers']}` |",
        f"| connection engine flags passed | {engine_flags_text(s)} |",
        "",
        "## Servers",
        "",
        "| server | command | status | first response after start | largest process, idle |",
        "|---|---|---|---:|---:|",
    ]
    for info in run.servers.values():
        status = info["status"] + (f": {info['note']}" if info["note"] else "")
        first = f"{info['first_response_s']:.2f} s" if "first_response_s" in info else ""
        rss = (f"{info['idle_rss_mb']:.1f} MB RSS ({info['processes']} processes)"
               if "idle_rss_mb" in info else "")
        lines.append(f"| {info['label']} | `{info['command']}` | {cell_text(status)} | {first} | {rss} |")
    lines += ["", "## Results", ""]
    if chart_name:
        lines += [f"![requests/s and MB/s per cell and server]({chart_name})", ""]
    lines += [
        "| cell | connections | server | requests/s or MB/s | p99 latency | errors | × best C "
        "| × best Python-hosted | × http.server | CPU: server · wrk · other |",
        "|---|---:|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for cell, key, result, head in rows(run, CELLS, list(run.servers)):
        refs = references(run, cell)
        if result.status != "ok":
            lines.append(head + f"| {result.status} | | {cell_text(result.note)} | | | | |")
            continue
        ratios = []
        for column, (_, ref) in enumerate(refs):
            ratio = ratio_to(run, key, ref, cell)
            named = column < len(refs) - 1  # the last column is always http.server's
            if ref == key:
                ratios.append("**best**" if named else "baseline")
            elif ratio is not None and ref is not None:
                ratios.append(f"{format_ratio(ratio)} {run.servers[ref]['label']}" if named
                              else format_ratio(ratio))
            else:
                ratios.append("n/a (wrong answers)" if not usable(result) else "n/a")
        value = format_value(result.value(cell.unit), cell.unit)
        if result.note:
            value += f" ({cell_text(result.note)})"
        if result.wire_gzip:
            value += f"; page {result.wire_gzip:,} B with gzip"
        lines.append(head + f"| {value} | {result.p99_ms:,.1f} ms | {format_errors(cell, result)} "
                     f"| {' | '.join(ratios)} | {format_cpu(result.cpu)} |")
    lines += [
        "",
        "Errors are wrk's connect, read, write and timeout errors plus responses with an unexpected "
        "status (for the 404 cell, any status but 404; elsewhere any status of 400 or more). "
        "MB/s is 10^6 bytes per second, headers included. Before each cell one request checks the "
        "answer (status, and length where known); a cell answered wrongly shows what it got and has "
        "no ratio. \"page … B with gzip\" is the listing's body as sent to a client that accepts gzip.",
        "",
        "The CPU column is the share of the whole machine's CPU time (all cores) used during the cell by "
        "the server (its processes and their scripts), by wrk, and by other processes on the machine; "
        f"⚠ marks a cell where other processes took more than {NOISY:.0%}, which skews its figures.",
        "",
        *client_bound_notes(run),
        "¹ A response with neither Content-Length nor chunked encoding ends when the server closes the "
        "connection; wrk counts each such complete response as a read error "
        "([wg/wrk#462](https://github.com/wg/wrk/issues/462)). Those are listed apart, not as errors.",
        "",
    ]
    lines += connections_section(run)
    lines += tls_section(run)
    lines += targets_section(run)
    lines += profiles_section(run)
    if NOTES.exists():
        lines += [NOTES.read_text("utf-8").strip(), ""]
    return "\n".join(lines) + "\n"


def profiles_section(run: Run) -> list[str]:
    """py-spy's view of the 1 KiB and 404 cells: the functions with the largest shares of the time
    a thread held the GIL, and that time per request."""
    if not run.profiles:
        return []
    lines = ["## Where the time goes (py-spy)", "",
             "The 1 KiB and 404 cells run once more while py-spy samples the server's processes "
             f"{profile.RATE} times a second whenever a thread holds the GIL (`py-spy record --gil "
             "--subprocesses`). \"Python per request\" is that time divided by the requests answered; "
             "the rest of a request's time is spent in system calls and waiting for the GIL. Shares "
             "are inclusive (a function with what it calls).", ""]
    for key, cells in run.profiles.items():
        for cell_key, entry in cells.items():
            title = f"{run.servers[key]['label']}, {cell_by_key(cell_key).title}"
            if entry.get("error"):
                lines += [f"- {title}: no profile ({cell_text(entry['error'])})"]
                continue
            top = "; ".join(f"{share:.0%} `{cell_text(frame)}`" for share, frame in entry["top"])
            per_request = entry.get("python_us_per_request")
            python = (f"Python {per_request:.1f} µs per request" if per_request is not None else
                      f"{entry.get('processes', '?')} processes sampled, so no time per request (py-spy "
                      "counts a process blocked in a system call as holding its GIL)")
            lines += [f"- **{title}**: {entry['value']:,.0f} req/s under py-spy, {python} "
                      f"({entry['samples']:,} samples). {top}"]
    return lines + [""]


def engine_flags_text(settings: dict) -> str:
    flags = settings.get("engine_flags") or []
    return ", ".join(f"`{flag}`" for flag in flags) or "none (this cgibox has none of them)"


def connections_section(run: Run) -> list[str]:
    """The issue-8 cells: wrk's 32 connections alone and beside the crowds, and memory."""
    fronts = [key for key in run.servers if any(r.server == key and r.cell in {c.key for c in CONN_CELLS}
                                                for r in run.results)]
    if not fronts:
        return []
    crowds = run.settings.get("crowds") or asdict(connections.FULL)
    lines = ["## Connection cells", "",
             f"wrk's 32 connections on the 1 KiB file alone, beside {crowds['idle']:,} idle keep-alive "
             f"connections (each made one request, then stays open), and beside {crowds['slow']:,} clients "
             "sending a request head one byte a second (replaced when the server closes them); then the "
             f"memory of the server's processes, idle and holding {crowds['held']:,} idle connections. "
             "The crowds come from bench/clients.py (asyncio) in a process of their own.", "",
             "| front | cell | requests/s | p99 latency | errors | crowd |",
             "|---|---|---:|---:|---|---|"]
    for key in fronts:
        label = run.servers[key]["label"]
        for cell, repeat in conn_order(run, key):
            result = run.get(key, cell.key, repeat)
            if result is None:
                continue
            title = cell.title + (f" (run {repeat})" if repeat > 1 else "")
            if result.status != "ok":
                lines.append(f"| {label} | {title} | {result.status} | | {cell_text(result.note)} | |")
                continue
            if result.requests:
                value, p99 = format_value(result.value(cell.unit), cell.unit), f"{result.p99_ms:,.1f} ms"
            else:
                value, p99 = "none answered", "—"
            if result.note and result.note != f"probe got {result.probe}":
                value += f" ({cell_text(result.note)})"
            lines.append(f"| {label} | {title} | {value} | {p99} | {format_errors(cell, result)} "
                         f"| {cell_text(result.crowd)} |")
        memory = run.memory.get(key)
        if memory:
            lines.append(f"| {label} | RSS holding {memory['held']:,} idle | "
                         f"{memory['rss_idle_mb']:.1f} → {memory['rss_holding_mb']:.1f} MB RSS "
                         f"({memory['processes_idle']} → {memory['processes_holding']} processes) | "
                         f"PSS {memory['pss_idle_mb']:.1f} → {memory['pss_holding_mb']:.1f} MB | | "
                         f"{cell_text(memory['crowd'])} |")
    return lines + [""]


def conn_order(run: Run, key: str) -> list[tuple[Cell, int]]:
    """The connection cells of a front in the order they ran: each (cell, run number)."""
    return sorted(((cell, repeat) for cell in CONN_CELLS for repeat in run.repeats(key, cell.key)),
                  key=lambda item: (item[0] is CONN_CELLS[-1], item[1], CONN_CELLS.index(item[0])))


def rows(run: Run, cells: tuple[Cell, ...], keys: list[str]) -> Iterator[tuple[Cell, str, CellResult, str]]:
    """(cell, server key, its result, the row's first three columns) for each result of these
    cells and servers, cell by cell."""
    for cell in cells:
        for key in keys:
            result = run.get(key, cell.key)
            if result is not None:
                yield cell, key, result, f"| {cell.title} | {cell.connections} | {run.servers[key]['label']} "


TLS_PEER = "nginx"  # the TLS cells' figures are ratios to nginx's on the same certificate


def tls_section(run: Run) -> list[str]:
    """The TLS cells (issue 12): the 1 KiB and 64 MiB files over HTTPS, as req/s and MB/s, and the
    ratio to nginx serving the same certificate."""
    keys = [key for key in run.servers if any(run.get(key, cell.key) for cell in TLS_CELLS)]
    if not keys:
        return []
    peer = run.servers.get(TLS_PEER, {}).get("label", TLS_PEER)
    lines = ["## TLS cells", "",
             "The 1 KiB and the 64 MiB file over HTTPS: each server started once more on a self-signed "
             "P-256 certificate made for the run with openssl (as `make cert` makes it): the cgibox fronts "
             "with `--tls-cert CERT --tls-key KEY`, nginx with `listen … ssl`, lighttpd with `ssl.engine`, "
             "each with its own default protocols and ciphers. wrk makes one TLS handshake per "
             f"connection, then keeps it alive. Ratios are to {peer} in the same cell.", "",
             f"| cell | connections | server | requests/s | MB/s | p99 latency | errors | × {peer} "
             "| CPU: server · wrk · other |",
             "|---|---:|---|---:|---:|---:|---|---:|---:|"]
    for cell, key, result, head in rows(run, TLS_CELLS, keys):
        if result.status != "ok":
            lines.append(head + f"| {result.status} | | | {cell_text(result.note)} | | |")
            continue
        ratio = ratio_to(run, key, TLS_PEER, cell)
        if key == TLS_PEER:
            shown = "peer"
        elif ratio is not None:
            shown = format_ratio(ratio)
        else:
            shown = "n/a (wrong answers)" if not usable(result) else "n/a"
        value = format_value(result.value("req/s"), "req/s")
        if result.note:
            value += f" ({cell_text(result.note)})"
        lines.append(head + f"| {value} | {format_value(result.value('MB/s'), 'MB/s')} "
                     f"| {result.p99_ms:,.1f} ms | {format_errors(cell, result)} | {shown} "
                     f"| {format_cpu(result.cpu)} |")
    return lines + [""]


def client_bound_notes(run: Run) -> list[str]:
    """Cells where wrk itself took half the machine or more measure the client as much as the server."""
    notes = []
    for cell in CELLS:
        shares = sorted(r.cpu["client"] for r in run.results if r.cell == cell.key and r.cpu)
        if shares and shares[len(shares) // 2] >= 0.5:
            median = shares[len(shares) // 2]
            notes += [f"In the {cell.title} cell wrk itself used {median:.0%} of the machine (median over "
                      "the servers): the cell is bound by the client as much as by the server, so its "
                      "ratios understate the differences between servers.", ""]
    return notes


def noise_summary(run: Run) -> str:
    measured = [(r.cpu["other"], r) for r in run.results if r.cpu]
    if not measured:
        return "not measured"
    worst, where = max(measured, key=lambda item: item[0])
    mean = sum(share for share, _ in measured) / len(measured)
    noisy = sum(1 for share, _ in measured if share > NOISY)
    return (f"mean {mean:.0%}, max {worst:.0%} ({run.servers[where.server]['label']} / "
            f"{cell_by_key(where.cell).title}); {noisy} of {len(measured)} cells above {NOISY:.0%}")


def write_report(run: Run, args: argparse.Namespace) -> None:
    """The Markdown table and the chart beside it (from a fresh run or saved results)."""
    chart_path = chart.draw(run.to_json(), args.chart)
    chart_name = os.path.relpath(chart_path, args.output.parent) if chart_path is not None else None
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(markdown(run, chart_name, bool(run.settings.get("quick", args.quick))))
    progress(f"wrote {args.output}" + (f", {chart_path}" if chart_path else "") + f" from {args.json}")
    progress("")
    progress("\n".join(targets_section(run)))

