"""A whole run: every server started in turn on one corpus and driven through its cells (and, for
the fronts asked, the profiled cells and the connection cells), always stopped before the next;
then the servers asked started once more over TLS for the TLS cells."""

from __future__ import annotations

import platform
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench import certs, connections, peers, profile, python_peers
from bench.cells import (
    CONN_ALONE,
    CONN_CELLS,
    CONN_IDLE,
    CONN_SLOW,
    TLS_CELLS,
    Cell,
    build_corpus,
    cell_by_key,
)
from bench.formatting import describe_result, progress
from bench.machine import load_average, machine_info, raise_nofile
from bench.results import CellResult, Run
from bench.servers import NotAvailable, Refused, Running, ServerSpec, cgibox_flags, start_server
from bench.wrk import WRK_THREADS, probe, run_wrk


def run_all(servers: list[ServerSpec], cells: list[Cell], duration: int, timeout: int, workers: int,
            keep: bool, sizes: connections.Sizes | None = None, conn_fronts: tuple[str, ...] = (),
            profile_fronts: tuple[str, ...] = (), tls_servers: tuple[str, ...] = (), idle_rounds: int = 1,
            install_peers: bool = True) -> Run:
    """Every server through every cell; the cgibox fronts in `conn_fronts` also through the
    connection cells (crowds of `sizes`; the alone and beside-idle pair `idle_rounds` times back to
    back); the servers in `tls_servers` also through the TLS cells. The Python-hosted peers are
    installed first into their own venv (`install_peers`), where they are not yet."""
    machine = machine_info()
    flags = cgibox_flags()
    settings = {"duration_s": duration, "wrk_threads": WRK_THREADS, "wrk_timeout_s": timeout,
                "workers": workers, "connections": {cell.key: cell.connections for cell in cells},
                "engine_flags": sorted(flags & {"--max-connections", "--keepalive-timeout", "--processes"}),
                "crowds": asdict(sizes) if sizes else {}, "idle_rounds": idle_rounds}
    run = Run(machine, settings, {}, [])
    hosted = [spec.kind for spec in servers if spec.kind in python_peers.KINDS]
    if hosted and install_peers:
        python_peers.install(hosted, progress)
    elif hosted:
        progress("== Python-hosted peers: not installed by this run (--no-peer-install); those already in "
                 f"{python_peers.VENV} run")
    cores = int(machine["cores"])
    if machine["load_before"] != "unknown" and float(machine["load_before"]) > 0.5 * cores:
        progress(f"warning: load average {machine['load_before']} on {cores} cores; "
                 "other work on this machine will skew the figures")
    # the connection cells' servers inherit this: 10,000 idle connections need as many descriptors
    connections_limit = raise_nofile(connections.FULL.held + 2000)
    base = Path(tempfile.mkdtemp(prefix="cgibox-bench-"))
    base.chmod(0o755)
    running: Running | None = None
    try:
        progress(f"corpus in {base} ...")
        root = build_corpus(base)
        logs = base / "logs"
        logs.mkdir()
        logs.chmod(0o755)
        with_conn = [s for s in servers if s.key in conn_fronts] if sizes else []
        profiled = [s for s in servers if s.key in profile_fronts]
        with_tls = [s for s in servers if s.key in tls_servers]
        conn_count = len(CONN_CELLS) + 1 + 2 * (idle_rounds - 1)
        total = (len(servers) * len(cells) + len(with_conn) * conn_count
                 + len(profiled) * len(PROFILED_CELLS) + len(with_tls) * len(TLS_CELLS))
        counter = [0]

        def tag(spec: ServerSpec, title: str) -> str:
            counter[0] += 1
            return f"[{counter[0]:2d}/{total}] {spec.label:<24} {title:<28}"

        for spec in servers:
            info: dict = {"label": spec.label, "kind": spec.kind, "command": spec.describe(workers, flags),
                          "status": "ok", "note": ""}
            run.servers[spec.key] = info
            progress(f"== {spec.label}: starting `{info['command']}`")
            server_started = time.monotonic()
            try:
                running = start_server(spec, root, logs, workers, flags)
            except NotAvailable as error:
                info["status"], info["note"] = "not available", str(error)[:400]
                progress(f"== {spec.label}: not available: {info['note']}")
                for cell in cells:
                    run.results.append(CellResult(spec.key, cell.key, "not available", info["note"][:120]))
                    progress(f"{tag(spec, cell.title)} not available")
                if spec in with_conn:
                    counter[0] += conn_count
                if spec in profiled:
                    counter[0] += len(PROFILED_CELLS)
                continue
            info["first_response_s"] = round(running.first_response_s, 3)
            idle = connections.group_memory(running.process.pid)
            info["idle_rss_mb"] = round(idle.largest_rss_mb, 1)
            info["processes"] = idle.processes
            progress(f"== {spec.label}: listening on 127.0.0.1:{running.port}, first response after "
                     f"{running.first_response_s:.2f} s, {idle.processes} processes, largest "
                     f"{idle.largest_rss_mb:.1f} MB RSS")
            try:
                for cell in cells:
                    result = CellResult(spec.key, cell.key)
                    run.results.append(result)
                    label = tag(spec, cell.title)
                    why = peers.CANNOT_SERVE.get((spec.kind, cell.key))
                    if cell.key == "cgi" and spec.kind == "http.server" and not peers.has_stdlib_cgi():
                        why = f"http.server has no --cgi on Python {platform.python_version()}"
                    if why:
                        result.status, result.note = "not served", why
                        progress(f"{label} not served: {why}")
                        continue
                    measure(result, cell, running, label, duration, timeout)
                if spec in profiled:
                    profile_cells(run, spec, running, duration, timeout, logs, tag)
                if spec in with_conn and sizes is not None:
                    if connections_limit < sizes.held + 200:
                        progress(f"note: RLIMIT_NOFILE is {connections_limit}: "
                                 "the crowds will not all connect")
                    connection_cells(run, spec, running, duration, timeout, sizes, tag, idle_rounds)
            finally:
                running.stop()
                running = None
            info["seconds"] = round(time.monotonic() - server_started)
            progress(f"== {spec.label}: stopped after {info['seconds']} s of cells")
        if with_tls:
            tls_cells(run, with_tls, root, base / "tls", logs, workers, flags, duration, timeout, tag)
    finally:
        if running is not None:
            running.stop()
        machine["load_after"] = load_average()
        if keep:
            progress(f"kept {base} (server logs in {base / 'logs'})")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return run


def measure(result: CellResult, cell: Cell, running: Running, label: str, duration: int,
            timeout: int) -> None:
    """One cell on a running server: the probe, then wrk; the progress line says what it got."""
    if running.process.poll() is not None:
        result.status, result.note = "failed", f"server exited: {running.tail()}"
    else:
        progress(f"{label} running {duration:g} s, {cell.connections} connections ...")
        probe(result, cell, running)
        run_wrk(result, cell, running, duration, timeout)
    progress(f"{label} {describe_result(cell, result)}")


NO_TLS = "no TLS on this front"


def tls_cells(run: Run, specs: list[ServerSpec], root: Path, cert_dir: Path, logs: Path, workers: int,
              flags: frozenset[str], duration: int, timeout: int, tag) -> None:
    """Each server of `specs` started anew serving HTTPS on a certificate made for the run, through
    the TLS cells. A cgibox front that refuses --tls-cert (exit status 2) is reported as having no
    TLS, and measured as soon as it accepts it."""
    try:
        pair: certs.TlsPair | None = certs.make_pair(cert_dir)
        unavailable = ""
    except OSError as error:
        pair, unavailable = None, str(error)
    for spec in specs:
        status, why, running = "not available", unavailable, None
        if pair is not None:
            progress(f"== {spec.label}: starting over TLS")
            try:
                running = start_server(spec, root, logs, workers, flags, pair)
            except NotAvailable as error:
                why = str(error)
                if isinstance(error, Refused) and "--tls-cert" in why:
                    # "exited with status 2: cgibox: error: --tls-cert: … front; use …": its first clause
                    status, why = NO_TLS, why.partition(": ")[2].split(";")[0]
        if running is None:
            progress(f"== {spec.label} over TLS: {status}: {why[:400]}")
            for cell in TLS_CELLS:
                run.results.append(CellResult(spec.key, cell.key, status, why[:120]))
                progress(f"{tag(spec, cell.title)} {status}")
            continue
        try:
            progress(f"== {spec.label}: listening over TLS on 127.0.0.1:{running.port}")
            for cell in TLS_CELLS:
                result = CellResult(spec.key, cell.key)
                run.results.append(result)
                measure(result, cell, running, tag(spec, cell.title), duration, timeout)
        finally:
            running.stop()
        progress(f"== {spec.label} over TLS: stopped")


PROFILED_CELLS = ("file-1k", "404")


def profile_cells(run: Run, spec: ServerSpec, running: Running, duration: int, timeout: int, logs: Path,
                  tag) -> None:
    """The 1 KiB and 404 cells once more with py-spy sampling the server: where the time goes."""
    for key in PROFILED_CELLS:
        cell = cell_by_key(key)
        label = tag(spec, f"profile: {cell.title}")
        raw = logs / f"profile-{spec.key}-{key}.txt"
        spy = profile.start(running.process.pid, duration + 1, raw)
        entry: dict = {}
        run.profiles.setdefault(spec.key, {})[key] = entry
        if spy is None:
            entry["error"] = "py-spy is not installed (pip install -e '.[bench]')"
            progress(f"{label} {entry['error']}")
            continue
        progress(f"{label} running {duration:g} s under py-spy ...")
        result = CellResult(spec.key, key)
        result.probe_ok, result.framing = True, "length"
        time.sleep(0.3)  # py-spy attaches
        run_wrk(result, cell, running, duration, timeout)
        why = profile.finish(spy, duration + 1)
        if why:
            entry["error"] = why
            progress(f"{label} {why}")
            continue
        entry.update(profile.summarize(raw), requests=result.requests, rate=profile.RATE,
                     value=round(result.value(cell.unit), 1))
        processes = entry["processes"]
        per_request = entry["samples"] / profile.RATE / result.requests * 1e6 if result.requests else 0
        # py-spy takes a single-threaded process blocked in a system call for one holding its GIL
        # (the GIL's last holder), so across a child per connection the sum means nothing
        entry["python_us_per_request"] = round(per_request, 1) if processes == 1 else None
        leaders = ", ".join(f"{share:.0%} {frame.split(' (')[0]}" for share, frame in entry["top"][:5])
        held = (f"GIL held {per_request:.1f} µs a request" if entry["python_us_per_request"] is not None
                else f"{processes} processes")
        progress(f"{label} {entry['value']:,.0f} req/s under py-spy; {held}; {leaders}")


def connection_cells(run: Run, spec: ServerSpec, running: Running, duration: int, timeout: int,
                     sizes: connections.Sizes, tag, idle_rounds: int = 1) -> None:
    """The issue-8 cells on one running cgibox front: wrk's 32 connections alone and beside an idle
    crowd (that pair `idle_rounds` times back to back: issue 19 asks the beside-idle target to hold
    in two runs), then beside a slow crowd; then the group's memory idle and holding `sizes.held`
    idle ones."""
    crowds = {CONN_ALONE.key: None, CONN_IDLE.key: ("idle", sizes.idle), CONN_SLOW.key: ("slow", sizes.slow)}
    order = [(cell, 1) for cell in (CONN_ALONE, CONN_IDLE)]
    for repeat in range(2, idle_rounds + 1):
        order += [(CONN_ALONE, repeat), (CONN_IDLE, repeat)]
    order.append((CONN_SLOW, 1))
    for cell, repeat in order:
        result = CellResult(spec.key, cell.key, repeat=repeat)
        run.results.append(result)
        label = tag(spec, cell.title + (f" (run {repeat})" if repeat > 1 else ""))
        if running.process.poll() is not None:
            result.status, result.note = "failed", f"server exited: {running.tail()}"
            progress(f"{label} {result.note}")
            continue
        crowd = None
        if crowds[cell.key] is not None:
            mode, count = crowds[cell.key]
            progress(f"{label} putting {count:,} {mode} clients in place ...")
            crowd = connections.Crowd(mode, running.port, count, sizes.ramp_s)
            if not crowd.wait_ready():
                result.status, result.note = "failed", crowd.stop().summary()
                progress(f"{label} failed: {result.note}")
                continue
        progress(f"{label} running {duration:g} s, 32 connections"
                 + (f" beside {crowd.report.summary()}" if crowd else "") + " ...")
        # the URL was checked in the 1 KiB cell; a probe here could wait behind the crowd
        result.probe, result.probe_ok, result.framing = "checked in the 1 KiB file cell", True, "length"
        try:
            run_wrk(result, cell, running, duration, timeout, grace=5)
        finally:
            if crowd is not None:
                result.crowd = crowd.stop().summary()
        progress(f"{label} {describe_result(cell, result)}" + (f" [{result.crowd}]" if result.crowd else ""))
    label = tag(spec, f"RSS holding {sizes.held:,} idle")
    memory: dict = {"held": sizes.held}
    run.memory[spec.key] = memory
    time.sleep(0.5)  # connections closed by the crowds are gone, CGI scripts reaped
    before = connections.group_memory(running.process.pid)
    crowd = connections.Crowd("idle", running.port, sizes.held, sizes.ramp_s)
    ready = crowd.wait_ready()
    if ready:
        time.sleep(0.5)
    during = connections.group_memory(running.process.pid)
    report = crowd.stop()
    memory["crowd"] = report.summary()
    memory["answered"] = report.ready.get("answered", 0)
    memory.update(status="ok" if ready else "failed", processes_idle=before.processes,
                  processes_holding=during.processes, rss_idle_mb=round(before.rss_mb, 1),
                  rss_holding_mb=round(during.rss_mb, 1), pss_idle_mb=round(before.pss_mb, 1),
                  pss_holding_mb=round(during.pss_mb, 1))
    progress(f"{label} RSS {before.rss_mb:.1f} MB idle ({before.processes} processes) -> "
             f"{during.rss_mb:.1f} MB holding ({during.processes} processes); PSS {before.pss_mb:.1f} -> "
             f"{during.pss_mb:.1f} MB [{memory['crowd']}]")
