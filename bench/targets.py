"""The targets the issues set and the report's sections that judge them: issue 23's ratios to the
peers for the default (threading) front, its idle RSS and the other default-front targets kept from
issue 13; the connection targets of issue 8 (threading) and issue 19 (forking, gunicorn gthread);
then bench/previous.py's comparison with the last committed run. Every target row shows what was
measured and met, **not met**, or not measured with why."""

from __future__ import annotations

from dataclasses import dataclass

from bench import peers
from bench.cells import CELLS, CONN_ALONE, CONN_IDLE, CONN_SLOW, cell_by_key
from bench.formatting import cell_text, format_ratio, met
from bench.previous import previous_section
from bench.results import Run, best_of, ratio_to, usable

BEST_PYTHON = "best Python-hosted"  # a target's peer: the fastest Python-hosted server of the cell
# issue 23 (default front, ratios within one run)
PEER_TARGETS = (
    ("file-1k", "nginx", 0.4), ("file-1k", BEST_PYTHON, 1.5),
    ("404", "nginx", 0.35),
    ("file-64m", "nginx", 0.95),
    ("listing", "nginx", 5.0),
    ("cgi", "lighttpd", 1.05),
)
LISTING_GZIP_LIMIT = 40_000  # bytes on the wire of the 1,000-file listing to a client accepting gzip
FIRST_RESPONSE_LIMIT_S = 0.3
IDLE_RSS_LIMIT_MB = 30.0


@dataclass(frozen=True)
class ConnTargets:
    """One front's connection targets: beside the idle crowd, throughput ≥ `share` of alone and
    p99 ≤ `p99_factor` × alone, in each of `runs` runs back to back; beside the slow-head crowd p99
    ≤ `slow_p99_ms`; holding the idle crowd, every connection answered and RSS ≤ `rss_mb` more."""
    share: float
    p99_factor: float
    slow_p99_ms: float
    rss_mb: float
    runs: int
    source: str


CONN_TARGETS = {
    "threading": ConnTargets(0.90, 2.0, 50.0, 100.0, 2, "issues 8 and 19"),
    "forking": ConnTargets(0.80, 3.0, 50.0, 150.0, 1, "issue 19"),
    "gunicorn-gthread": ConnTargets(0.80, 3.0, 250.0, 150.0, 1, "issue 19"),
}


def not_measured(why: str) -> str:
    return f"not measured ({cell_text(why)})"


def targets_section(run: Run) -> list[str]:
    """The default front's targets, the connection targets, then the comparison with the last
    committed run."""
    lines = ["## Targets (threading front)", "", "| target | measured | status |", "|---|---:|---|"]
    for cell_key, peer, least in PEER_TARGETS:
        cell = cell_by_key(cell_key)
        best = best_of(run, cell, peers.PYTHON_PEERS) if peer == BEST_PYTHON else peer
        name = BEST_PYTHON if peer == BEST_PYTHON else run.servers.get(peer, {}).get("label", peer)
        target = f"{cell.title} ≥ {least:g}× {name}"
        ratio = ratio_to(run, "threading", best, cell) if best != "threading" else None
        if ratio is None:
            mine = run.get("threading", cell_key)
            if best is None:
                why = "no Python-hosted server was measured in this cell"
            elif not usable(theirs := run.get(best, cell_key)):
                theirs_name = run.servers.get(best, {}).get("label", best)
                why = f"{theirs_name}: " + (theirs.status + (f", {theirs.note}" if theirs.note else "")
                                            if theirs else "not run")
            else:
                why = "threading: " + (mine.probe if mine and mine.status == "ok" else
                                       (mine.status + (f", {mine.note}" if mine.note else "") if mine
                                        else "not run"))
            lines.append(f"| {target} | n/a | {not_measured(why)} |")
            continue
        shown = format_ratio(ratio, least)
        if peer == BEST_PYTHON:
            shown += f" ({run.servers[best]['label']}"
            # granian's static mount is Rust behind a Python supervisor: say where cgibox stands
            # against the best whose answers pass through Python too (the target stays as set)
            python = best_of(run, cell, peers.PYTHON_SERVED)
            if python not in (None, best) and (other := ratio_to(run, "threading", python, cell)):
                shown += f"; {format_ratio(other)} {run.servers[python]['label']}, the best served by Python"
            shown += ")"
        lines.append(f"| {target} | {shown} | {met(ratio >= least)} |")
    listing = run.get("threading", "listing")
    size = listing.wire_gzip if listing else 0
    lines.append(f"| listing page ≤ {LISTING_GZIP_LIMIT // 1000} KB on the wire with gzip | "
                 + (f"{size:,} B | {met(size <= LISTING_GZIP_LIMIT)} |" if size
                    else f"n/a | {not_measured('the listing cell did not run on the threading front')} |"))
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
    if "first_response_s" not in info:
        why = info.get("note") or "the threading front did not run"
        lines.append(f"| first response ≤ {FIRST_RESPONSE_LIMIT_S:g} s after start | n/a "
                     f"| {not_measured(why)} |")
        lines.append(f"| idle RSS ≤ {IDLE_RSS_LIMIT_MB:g} MB a process | n/a | {not_measured(why)} |")
    else:
        first = info["first_response_s"]
        lines.append(f"| first response ≤ {FIRST_RESPONSE_LIMIT_S:g} s after start (interpreter start "
                     f"included) | {first:.2f} s | {met(first <= FIRST_RESPONSE_LIMIT_S)} |")
        rss = info["idle_rss_mb"]
        lines.append(f"| idle RSS ≤ {IDLE_RSS_LIMIT_MB:g} MB a process | {rss:.1f} MB (largest of "
                     f"{info['processes']}) | {met(rss <= IDLE_RSS_LIMIT_MB)} |")
    others = [r for r in run.results if r.server != "threading" and r.status == "ok" and r.error_total
              and r.cell in {c.key for c in CELLS}]
    if others:
        listed = "; ".join(f"{run.servers[r.server]['label']} / {cell_by_key(r.cell).title}: "
                           f"{r.error_total:,}" for r in others)
        lines += ["", f"Other servers with errors: {listed}."]
    lines.append("")
    return lines + connection_targets(run) + previous_section(run)


def connection_targets(run: Run) -> list[str]:
    """Each front of CONN_TARGETS that ran: its connection targets, measured or why not."""
    fronts = [key for key in CONN_TARGETS if key in run.servers]
    if not fronts:
        return []
    names = ", ".join(run.servers[key]["label"].removeprefix("cgibox ") for key in fronts)
    lines = [f"## Connection targets ({names} fronts)", "",
             "| front | target | measured | status |", "|---|---|---:|---|"]
    for key in fronts:
        lines += [f"| {run.servers[key]['label']} | {target} | {measured} | {status} |"
                  for target, measured, status in front_targets(run, key, CONN_TARGETS[key])]
    return lines + [""]


def front_targets(run: Run, key: str, goal: ConnTargets) -> list[tuple[str, str, str]]:
    """(target, measured, status) rows of one front."""
    rows = []
    runs = run.repeats(key, CONN_ALONE.key)
    share_target = f"beside idle: throughput ≥ {goal.share:.0%} of alone"
    p99_target = f"beside idle: p99 ≤ {goal.p99_factor:g}× alone"
    if goal.runs > 1:
        share_target += f", in {goal.runs} runs back to back"
        p99_target += f", in {goal.runs} runs back to back"
    if not runs:
        why = "connection cells not run on this front (--connection-fronts)"
        return [(share_target, "n/a", not_measured(why)), (p99_target, "n/a", not_measured(why)),
                (f"beside slow heads: p99 ≤ {goal.slow_p99_ms:g} ms", "n/a", not_measured(why)),
                (f"holding idle connections: all answered, RSS ≤ {goal.rss_mb:g} MB more", "n/a",
                 not_measured(why))]
    shares, factors = [], []
    for repeat in runs:
        alone, idle = run.get(key, CONN_ALONE.key, repeat), run.get(key, CONN_IDLE.key, repeat)
        if usable(alone) and idle is not None and idle.status == "ok" and alone.requests and alone.p99_ms > 0:
            share = idle.value("req/s") / alone.value("req/s")
            note = f" ({idle.error_total:,} errors)" if idle.error_total else ""
            shares.append((f"{share:.0%}{note}", share >= goal.share and not idle.error_total))
            timeouts = idle.errors.get("timeout", 0)
            if idle.requests:
                factor = idle.p99_ms / alone.p99_ms
                factors.append((f"{factor:.1f}× ({idle.p99_ms:,.1f} vs {alone.p99_ms:,.1f} ms"
                                f"{f', {timeouts:,} timeouts' if timeouts else ''})",
                                factor <= goal.p99_factor and not timeouts))
            else:
                factors.append(("no request answered", False))
        else:
            why = ((idle.note or idle.status) if idle is not None and idle.status != "ok"
                   else "alone not measured")
            shares.append((f"n/a ({cell_text(why)})", False))
            factors.append(("n/a", False))
    for target, measured in ((share_target, shares), (p99_target, factors)):
        shown = "; ".join(text for text, _ in measured)
        if all(ok for _, ok in measured) and len(measured) < goal.runs:
            status = not_measured(f"{len(measured)} run of {goal.runs}: --idle-rounds {goal.runs}")
        else:
            status = met(all(ok for _, ok in measured))
        rows.append((target, shown, status))
    slow = run.get(key, CONN_SLOW.key)
    slow_target = f"beside slow heads: p99 ≤ {goal.slow_p99_ms:g} ms"
    if slow is not None and slow.status == "ok":
        answered = slow.requests > 0
        shown = f"{slow.p99_ms:,.1f} ms" if answered else "no request answered"
        if slow.error_total:
            shown += f" ({slow.error_total:,} errors, {slow.errors.get('timeout', 0):,} timeouts)"
        ok = answered and slow.p99_ms <= goal.slow_p99_ms and not slow.error_total
        rows.append((slow_target, shown, met(ok)))
    else:
        rows.append((slow_target, "n/a", not_measured(slow.note or slow.status if slow else "not run")))
    memory = run.memory.get(key)
    if memory and memory.get("status") == "ok":
        growth = memory["rss_holding_mb"] - memory["rss_idle_mb"]
        answered = memory.get("answered", memory["held"])
        # connections waiting unaccepted in the kernel's backlog cost the server nothing: the
        # target counts only when the server answered (so holds) every one of them
        held_all = answered >= memory["held"]
        shown = f"+{growth:,.1f} MB" + ("" if held_all else f" (only {answered:,} answered)")
        rows.append((f"RSS holding {memory['held']:,} idle ≤ {goal.rss_mb:g} MB more", shown,
                     met(growth <= goal.rss_mb and held_all)))
    else:
        why = memory.get("crowd", "the crowd did not get ready") if memory else "not run"
        rows.append((f"RSS holding idle connections ≤ {goal.rss_mb:g} MB more", "n/a", not_measured(why)))
    return rows
