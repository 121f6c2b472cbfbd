"""The targets the issues set (issue 13's ratios to peers for the threading front, issue 8's
connection targets for the threading and forking fronts) and the report's sections that judge them."""

from __future__ import annotations

from bench import connections
from bench.cells import CELLS, CONN_ALONE, CONN_CELLS, cell_by_key
from bench.formatting import cell_text, format_ratio, met
from bench.results import Run, ratio_to, usable, value_of

PEER_TARGETS = (
    ("file-1k", "nginx", 0.3), ("file-1k", "twisted", 2.5),
    ("404", "nginx", 0.2), ("404", "twisted", 2.5),
    ("file-64m", "nginx", 0.95),
    ("listing", "nginx", 5.0),
    ("cgi", "lighttpd", 1.0),
)
LISTING_GZIP_LIMIT = 40_000  # bytes on the wire of the 1,000-file listing to a client accepting gzip
FIRST_RESPONSE_LIMIT_S = 0.3
IDLE_RSS_LIMIT_MB = 30.0
# the forking front's figures in the last committed run before the engine (2026-11-21, quiet machine)
FORKING_BEFORE = {"file-1k": 16_189, "file-64m": 2_838, "listing": 4_785, "cgi": 1_908, "404": 11_298}


def targets_section(run: Run) -> list[str]:
    """Issue 13's targets for the default front, then issue 8's connection targets."""
    lines = ["## Targets (threading front)", "", "| target | measured | status |", "|---|---:|---|"]
    for cell_key, peer, least in PEER_TARGETS:
        cell = cell_by_key(cell_key)
        name = run.servers.get(peer, {}).get("label", peer)
        ratio = ratio_to(run, "threading", peer, cell)
        target = f"{cell.title} ≥ {least:g}× {name}"
        if ratio is None:
            mine, theirs = run.get("threading", cell_key), run.get(peer, cell_key)
            if not usable(theirs):
                why = f"{name}: " + (theirs.status + (f", {theirs.note}" if theirs.note else "")
                                     if theirs else "not run")
            else:
                why = "threading: " + (mine.probe if mine and mine.status == "ok" else
                                       (mine.status if mine else "not run"))
            lines.append(f"| {target} | n/a | not met ({cell_text(why)}) |")
            continue
        lines.append(f"| {target} | {format_ratio(ratio, least)} | {met(ratio >= least)} |")
    listing = run.get("threading", "listing")
    size = listing.wire_gzip if listing else 0
    lines.append(f"| listing page ≤ {LISTING_GZIP_LIMIT // 1000} KB on the wire with gzip | "
                 + (f"{size:,} B | {met(size <= LISTING_GZIP_LIMIT)} |" if size else "n/a | not met |"))
    threading = [r for r in run.results if r.server == "threading" and r.cell in {c.key for c in CELLS}]
    ran = [r for r in threading if r.status == "ok"]
    errors = sum(r.error_total for r in ran)
    wrong = sum(1 for r in ran if not r.probe_ok)
    complete = bool(threading) and len(ran) == len(threading)
    measured = f"{errors:,} errors in {len(ran)} of {len(threading)} cells"
    if wrong:
        measured += f", {wrong} answered wrongly"
    clean = complete and errors == 0 and not wrong
    lines.append(f"| zero errors in every cell | {measured} | {met(clean)} |")
    info = run.servers.get("threading", {})
    if "first_response_s" in info:
        first = info["first_response_s"]
        lines.append(f"| first response ≤ {FIRST_RESPONSE_LIMIT_S:g} s after start (interpreter start "
                     f"included) | {first:.2f} s | {met(first <= FIRST_RESPONSE_LIMIT_S)} |")
        rss = info["idle_rss_mb"]
        lines.append(f"| idle RSS ≤ {IDLE_RSS_LIMIT_MB:g} MB a process | {rss:.1f} MB (largest of "
                     f"{info['processes']}) | {met(rss <= IDLE_RSS_LIMIT_MB)} |")
    before = []
    for cell in CELLS:
        now = value_of(run, "forking", cell)
        if now is not None and cell.key in FORKING_BEFORE:
            before.append(f"{cell.title} {now / FORKING_BEFORE[cell.key]:.2f}×")
    if before:
        slower = [text for text in before if float(text.rsplit(" ", 1)[1].rstrip("×")) < 1.0]
        lines.append(f"| forking front at least as fast as before the engine (run of 2026-11-21) | "
                     f"{'; '.join(before)} | {met(not slower)} |")
    others = [r for r in run.results if r.server != "threading" and r.status == "ok" and r.error_total
              and r.cell in {c.key for c in CELLS}]
    if others:
        listed = "; ".join(f"{run.servers[r.server]['label']} / {cell_by_key(r.cell).title}: "
                           f"{r.error_total:,}" for r in others)
        lines += ["", f"Other servers with errors: {listed}."]
    lines.append("")
    return lines + connection_targets(run)


def connection_targets(run: Run) -> list[str]:
    fronts = [key for key in ("threading", "forking") if run.get(key, CONN_ALONE.key) is not None]
    if not fronts:
        return []
    c = connections
    lines = ["## Connection targets (threading and forking fronts)", "",
             "| front | target | measured | status |", "|---|---|---:|---|"]
    for key in fronts:
        label = run.servers[key]["label"]
        alone, idle, slow = (run.get(key, cell.key) for cell in CONN_CELLS)
        if usable(alone) and usable(idle) and alone.requests and alone.p99_ms > 0:
            share = idle.value("req/s") / alone.value("req/s")
            timeouts = idle.errors.get("timeout", 0)
            note = f" ({idle.error_total:,} errors)" if idle.error_total else ""
            shares_ok = share >= c.THROUGHPUT_SHARE and not idle.error_total
            lines.append(f"| {label} | beside idle: throughput ≥ {c.THROUGHPUT_SHARE:.0%} of alone | "
                         f"{share:.0%}{note} | {met(shares_ok)} |")
            if idle.requests:
                factor = idle.p99_ms / alone.p99_ms
                shown = (f"{factor:.1f}× ({idle.p99_ms:,.1f} vs {alone.p99_ms:,.1f} ms"
                         f"{f', {timeouts:,} timeouts' if timeouts else ''})")
                ok = factor <= c.P99_FACTOR and not timeouts
            else:
                shown, ok = "no request answered", False
            lines.append(f"| {label} | beside idle: p99 ≤ {c.P99_FACTOR:g}× alone | {shown} | {met(ok)} |")
        else:
            lines.append(f"| {label} | beside idle | n/a | not met (not measured) |")
        if usable(slow):
            timeouts = slow.errors.get("timeout", 0)
            answered = slow.requests > 0
            ok = answered and slow.p99_ms <= c.SLOW_P99_MS and not slow.error_total
            shown = f"{slow.p99_ms:,.1f} ms" if answered else "no request answered"
            if slow.error_total:
                shown += f" ({slow.error_total:,} errors, {timeouts:,} timeouts)"
            lines.append(f"| {label} | beside slow heads: p99 ≤ {c.SLOW_P99_MS:g} ms | {shown} "
                         f"| {met(ok)} |")
        else:
            lines.append(f"| {label} | beside slow heads | n/a | not met (not measured) |")
        memory = run.memory.get(key)
        if memory and memory.get("status") == "ok":
            growth = memory["rss_holding_mb"] - memory["rss_idle_mb"]
            answered = memory.get("answered", memory["held"])
            # connections waiting unaccepted in the kernel's backlog cost the server nothing: the
            # target counts only when the server answered (so holds) every one of them
            held_all = answered >= memory["held"]
            shown = f"+{growth:,.1f} MB" + ("" if held_all else f" (only {answered:,} answered)")
            lines.append(f"| {label} | RSS holding {memory['held']:,} idle ≤ {c.RSS_GROWTH_MB:g} MB more | "
                         f"{shown} | {met(growth <= c.RSS_GROWTH_MB and held_all)} |")
        else:
            lines.append(f"| {label} | RSS holding idle connections | n/a | not met (not measured) |")
    return lines + [""]
