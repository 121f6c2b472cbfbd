"""`make bench`: drive every cgibox front and `python -m http.server` with wrk on one generated corpus.

    python bench/run.py            # a few seconds per cell -> docs/benchmarks.md + docs/benchmarks.png
    python bench/run.py --quick    # ~1 s per cell -> bench/results/quick.md (proves the bench works)

Every server is started here on 127.0.0.1 and a free port, waited for, driven cell by cell and
stopped (its whole process group) before the next one starts, also on Ctrl-C or failure. A server
that does not start is reported as "not available" in the table instead of ending the run.
Figures are ratios to http.server from the same run, so they compare fronts, not machines.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:  # run as a script: `python bench/run.py`
    sys.path.insert(0, str(REPO))

from bench import chart, cpu  # noqa: E402

REPORT_LUA = BENCH / "report.lua"
RESULT_LINE = re.compile(r"^BENCH_RESULT (\{.*\})\s*$", re.M)

WRK_THREADS = 2
NOISY = 0.10  # a cell where other processes used more than this share of the machine is marked
try:
    CORES = len(os.sched_getaffinity(0))
except AttributeError:
    CORES = os.cpu_count() or 1
START_TIMEOUT = 30.0  # seconds a server has to answer its first request
STOP_TIMEOUT = 15.0  # seconds between SIGTERM and SIGKILL of a server's process group
PROBE_TIMEOUT = 30.0

# -- what is measured -------------------------------------------------------------------------

SMALL_FILE = "file-1k.bin"
LARGE_FILE = "file-64m.bin"
LARGE_SIZE = 64 * 1024 * 1024
LISTING_DIR = "listing-1000"
LISTING_COUNT = 1000
CGI_SCRIPT = "hello"
CGI_BODY = b"hello\n"


@dataclass(frozen=True)
class Cell:
    key: str
    title: str
    path: str
    connections: int
    unit: str  # "req/s" or "MB/s"
    expect: int = 200  # the status every response should have
    target: float | None = None  # threading front's ratio to http.server


CELLS = (
    Cell("file-1k", "1 KiB file", f"/{SMALL_FILE}", 32, "req/s", target=10.0),
    Cell("file-64m", "64 MiB file", f"/{LARGE_FILE}", 4, "MB/s", target=1.0),
    Cell("listing", f"listing of {LISTING_COUNT:,} files", f"/{LISTING_DIR}/", 32, "req/s", target=10.0),
    Cell("cgi", "CGI sh hello", f"/cgi-bin/{CGI_SCRIPT}", 8, "req/s", target=5.0),
    Cell("404", "404 (missing path)", "/no/such/file.txt", 32, "req/s", expect=404),
)


@dataclass(frozen=True)
class ServerSpec:
    key: str
    label: str
    kind: str  # "cgibox" or "httpserver"
    args: tuple[str, ...] = ()

    def describe(self, workers: int) -> str:
        if self.kind == "httpserver":
            cgi = " --cgi" if has_stdlib_cgi() else ""
            return f"python -m http.server{cgi} --bind 127.0.0.1 --directory ROOT PORT"
        args = " ".join(self.args).replace("{workers}", str(workers))
        return f"cgibox {args} --root ROOT --cgi-dir ROOT/cgi-bin --port PORT"


BASELINE = "http.server"
SERVERS = (
    ServerSpec(BASELINE, "http.server", "httpserver"),
    ServerSpec("threading", "cgibox threading", "cgibox", ("--front", "threading")),
    ServerSpec("forking", "cgibox forking", "cgibox", ("--front", "forking")),
    ServerSpec("gunicorn-gthread", "cgibox gunicorn gthread", "cgibox",
               ("--front", "gunicorn", "--worker-class", "gthread", "--workers", "{workers}")),
    ServerSpec("gunicorn-sync", "cgibox gunicorn sync", "cgibox",
               ("--front", "gunicorn", "--worker-class", "sync", "--workers", "{workers}")),
)


def has_stdlib_cgi() -> bool:
    """CGIHTTPRequestHandler (and `http.server --cgi`) exist up to Python 3.14."""
    import http.server

    return hasattr(http.server, "CGIHTTPRequestHandler")


# -- results ----------------------------------------------------------------------------------


@dataclass
class CellResult:
    server: str
    cell: str
    status: str = "ok"  # ok | skipped | failed | not available
    note: str = ""
    requests: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    expected_status: int = 0  # responses with the cell's expected error status (the 404 cell)
    probe: str = ""  # what one request before the load got: "200, 1024 bytes"
    probe_ok: bool = False
    framing: str = ""  # how the probe's body was delimited: length | chunked | close
    eof_bodies: int = 0  # read "errors" that were bodies ended by closing the connection (wrk #462)
    cpu: dict[str, float] = field(default_factory=dict)  # machine shares: server, client, other, steal

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    def value(self, unit: str) -> float:
        if self.duration_s <= 0:
            return 0.0
        if unit == "MB/s":
            return self.bytes / self.duration_s / 1e6
        return self.requests / self.duration_s


@dataclass
class Run:
    machine: dict[str, str]
    settings: dict[str, object]
    servers: dict[str, dict[str, str]]  # key -> {"label", "command", "status", "note"}
    results: list[CellResult]

    def get(self, server: str, cell: str) -> CellResult | None:
        for result in self.results:
            if result.server == server and result.cell == cell:
                return result
        return None

    @classmethod
    def from_json(cls, data: dict) -> Run:
        fields = {f for f in CellResult.__dataclass_fields__}
        results = [CellResult(**{k: v for k, v in r.items() if k in fields}) for r in data["results"]]
        return cls(data["machine"], data["settings"], data["servers"], results)

    def to_json(self) -> dict:
        return {"machine": self.machine, "settings": self.settings, "servers": self.servers,
                "cells": [asdict(cell) for cell in CELLS],
                "results": [dict(asdict(r), value=r.value(cell_by_key(r.cell).unit)) for r in self.results]}


def cell_by_key(key: str) -> Cell:
    return next(cell for cell in CELLS if cell.key == key)


# -- the corpus -------------------------------------------------------------------------------


def build_corpus(base: Path) -> Path:
    """ROOT with the files, the listing folder and ROOT/cgi-bin (where `http.server --cgi` looks)."""
    root = base / "www"
    root.mkdir(parents=True)
    (root / SMALL_FILE).write_bytes(os.urandom(1024))
    block = os.urandom(1024 * 1024)
    with open(root / LARGE_FILE, "wb") as out:
        for _ in range(LARGE_SIZE // len(block)):
            out.write(block)
    listing = root / LISTING_DIR
    listing.mkdir()
    for number in range(LISTING_COUNT):
        (listing / f"file-{number:04d}.txt").write_bytes(b"x" * (number % 200 + 1))
    cgi_dir = root / "cgi-bin"
    cgi_dir.mkdir()
    script = cgi_dir / CGI_SCRIPT
    script.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello\\n'\n")
    # http.server's CGI child drops to `nobody` when run as root: everything must be world-readable
    for directory in (base, root, listing, cgi_dir):
        directory.chmod(0o755)
    script.chmod(0o755)
    return root


# -- servers ----------------------------------------------------------------------------------


class NotAvailable(Exception):
    """A server did not start or never answered."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Running:
    spec: ServerSpec
    process: subprocess.Popen
    port: int
    out_path: Path
    err_path: Path

    def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL if it is still there after STOP_TIMEOUT."""
        stop_group(self.process)

    def tail(self, lines: int = 5) -> str:
        text = self.err_path.read_text("utf-8", "replace").strip().splitlines()
        return " | ".join(text[-lines:])


def stop_group(process: subprocess.Popen) -> None:
    pgid = process.pid  # started with start_new_session=True: the group is the process's own
    if process.poll() is None:
        _signal_group(pgid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    # forked children, gunicorn workers or CGI scripts may outlive the leader
    _signal_group(pgid, signal.SIGKILL)
    if process.poll() is None:
        process.wait(5)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def server_command(spec: ServerSpec, root: Path, port: int, workers: int) -> list[str]:
    if spec.kind == "httpserver":
        cgi = ["--cgi"] if has_stdlib_cgi() else []
        return [sys.executable, "-m", "http.server", *cgi, "--bind", "127.0.0.1", "--directory", str(root),
                str(port)]
    args = [arg.replace("{workers}", str(workers)) for arg in spec.args]
    return [sys.executable, "-m", "cgibox", *args, "--host", "127.0.0.1", "--port", str(port),
            "--root", str(root), "--cgi-dir", str(root / "cgi-bin")]


def start_server(spec: ServerSpec, root: Path, logs: Path, workers: int) -> Running:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CGIBOX_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "app"), env.get("PYTHONPATH")]))
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"  # http.server --cgi warns on 3.13+
    out_path, err_path = logs / f"{spec.key}.out", logs / f"{spec.key}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen(server_command(spec, root, port, workers), stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL, cwd=REPO, env=env, start_new_session=True)
    running = Running(spec, process, port, out_path, err_path)
    probe_path = "/healthz" if spec.kind == "cgibox" else f"/{SMALL_FILE}"
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise NotAvailable(f"exited with status {process.returncode}: {running.tail()}")
            try:
                status, _ = fetch(port, probe_path, timeout=2.0)
                if status == 200:
                    return running
            except OSError:
                pass
            time.sleep(0.1)
        raise NotAvailable(f"did not answer {probe_path} within {START_TIMEOUT:.0f} s: {running.tail()}")
    except BaseException:
        running.stop()
        raise


def fetch(port: int, path: str, timeout: float = PROBE_TIMEOUT) -> tuple[int, int]:
    """One GET on a fresh connection: (status, body length)."""
    status, length, _ = fetch_framed(port, path, timeout)
    return status, length


def fetch_framed(port: int, path: str, timeout: float = PROBE_TIMEOUT) -> tuple[int, int, str]:
    """One GET on a fresh connection: (status, body length, framing: length | chunked | close)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        if response.getheader("Content-Length") is not None:
            framing = "length"
        elif "chunked" in (response.getheader("Transfer-Encoding") or "").lower():
            framing = "chunked"
        else:
            framing = "close"
        length = 0
        while chunk := response.read(1024 * 1024):
            length += len(chunk)
        return response.status, length, framing
    finally:
        conn.close()


# -- wrk --------------------------------------------------------------------------------------


def wrk_version() -> str:
    try:
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (done.stdout or done.stderr).strip().splitlines()
    return re.sub(r"\s*Copyright.*$", "", first[0]) if first else "unknown"


def probe(result: CellResult, cell: Cell, port: int) -> None:
    """One request before the load: checks the answer and warms caches (listing, page cache)."""
    try:
        status, length, result.framing = fetch_framed(port, cell.path)
    except (OSError, http.client.HTTPException) as error:
        result.probe = f"failed: {error}"
        return
    result.probe = f"{status}, {length:,} bytes"
    expected_length = {"file-1k": 1024, "file-64m": LARGE_SIZE, "cgi": len(CGI_BODY)}.get(cell.key)
    result.probe_ok = status == cell.expect and (expected_length is None or length == expected_length)


def run_wrk(result: CellResult, cell: Cell, running: Running, duration: int, timeout: int) -> None:
    port = running.port
    command = ["wrk", "-t", str(WRK_THREADS), "-c", str(cell.connections), "-d", f"{duration}s",
               "--timeout", f"{timeout}s", "-s", str(REPORT_LUA), f"http://127.0.0.1:{port}{cell.path}"]
    if cell.expect != 200:
        command += ["--", f"expect={cell.expect}"]
    before = cpu.sample(running.process.pid)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + timeout + 30,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        result.status, result.note = "failed", "wrk did not finish in time"
        return
    result.cpu = cpu.shares(before, cpu.sample(running.process.pid), CORES)
    match = RESULT_LINE.search(done.stdout)
    if done.returncode != 0 or not match:
        result.status = "failed"
        result.note = f"wrk exited {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}"
        return
    data = json.loads(match.group(1))
    result.requests = int(data["requests"])
    result.bytes = int(data["bytes"])
    result.duration_s = data["duration_us"] / 1e6
    result.p50_ms = data["latency_p50_us"] / 1000
    result.p99_ms = data["latency_p99_us"] / 1000
    result.max_ms = data["latency_max_us"] / 1000
    errors = {name: int(data["errors"][name]) for name in ("connect", "read", "write", "timeout")}
    if data["checked_status"]:
        # wrk counts every status >= 400 in errors.status; here the expected one is no error
        errors["status"] = int(data["unexpected_status"])
        result.expected_status = result.requests - errors["status"]
    else:
        errors["status"] = int(data["errors"]["status"])
    if result.framing == "close":
        # wrk counts a body that ends when the server closes the connection (no Content-Length, not
        # chunked; e.g. http.server's CGI output) as a read error although the response is complete:
        # https://github.com/wg/wrk/issues/462. One per completed response is that, not a failure.
        result.eof_bodies = min(errors["read"], result.requests)
        errors["read"] -= result.eof_bodies
    result.errors = errors
    if not result.probe_ok:
        result.note = f"probe got {result.probe}"


# -- the run ----------------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError, ValueError):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    commit = ""
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        sys.path.insert(0, str(REPO / "app"))
        from cgibox import __version__ as cgibox_version
    except ImportError:
        cgibox_version = "unknown"
    return {
        "cpu": cpu,
        "cores": str(usable),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "wrk": wrk_version(),
        "cgibox": f"{cgibox_version}" + (f" ({commit})" if commit else ""),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": load_average(),
    }


def load_average() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        return "unknown"


def progress(text: str) -> None:
    print(text, flush=True)


def describe_result(cell: Cell, result: CellResult) -> str:
    if result.status != "ok":
        return f"{result.status}: {result.note}"
    errors = f"errors {result.error_total}" + (f" {result.errors}" if result.error_total else "")
    extra = f", {result.expected_status:,} expected {cell.expect}s" if result.expected_status else ""
    return (f"{result.value(cell.unit):,.1f} {cell.unit}, p99 {result.p99_ms:.1f} ms, {errors}{extra}"
            + (f", CPU {format_cpu(result.cpu)}" if result.cpu else "")
            + (f" [{result.note}]" if result.note else ""))


def format_cpu(shares: dict[str, float]) -> str:
    """server · wrk · other, as shares of the whole machine."""
    if not shares:
        return "n/a"
    text = " · ".join(f"{shares[key] * 100:.0f}%" for key in ("server", "client", "other"))
    return text + (" ⚠" if shares["other"] > NOISY else "")


def run_all(servers: list[ServerSpec], cells: list[Cell], duration: int, timeout: int, workers: int,
            keep: bool) -> Run:
    machine = machine_info()
    settings = {"duration_s": duration, "wrk_threads": WRK_THREADS, "wrk_timeout_s": timeout,
                "workers": workers, "connections": {cell.key: cell.connections for cell in cells}}
    run = Run(machine, settings, {}, [])
    cores = int(machine["cores"])
    if machine["load_before"] != "unknown" and float(machine["load_before"]) > 0.5 * cores:
        progress(f"warning: load average {machine['load_before']} on {cores} cores; "
                 "other work on this machine will skew the figures")
    base = Path(tempfile.mkdtemp(prefix="cgibox-bench-"))
    running: Running | None = None
    try:
        progress(f"corpus in {base} ...")
        root = build_corpus(base)
        logs = base / "logs"
        logs.mkdir()
        total = len(servers) * len(cells)
        number = 0
        for spec in servers:
            info = {"label": spec.label, "command": spec.describe(workers), "status": "ok", "note": ""}
            run.servers[spec.key] = info
            progress(f"== {spec.label}: starting `{spec.describe(workers)}`")
            try:
                running = start_server(spec, root, logs, workers)
            except NotAvailable as error:
                info["status"], info["note"] = "not available", str(error)[:400]
                progress(f"== {spec.label}: not available: {info['note']}")
                for cell in cells:
                    number += 1
                    run.results.append(CellResult(spec.key, cell.key, "not available",
                                                  "server did not start"))
                continue
            progress(f"== {spec.label}: listening on 127.0.0.1:{running.port}")
            try:
                for cell in cells:
                    number += 1
                    result = CellResult(spec.key, cell.key)
                    run.results.append(result)
                    tag = f"[{number:2d}/{total}] {spec.label:<24} {cell.title:<22}"
                    if cell.key == "cgi" and spec.kind == "httpserver" and not has_stdlib_cgi():
                        result.status = "skipped"
                        result.note = f"http.server has no --cgi on Python {platform.python_version()}"
                        progress(f"{tag} skipped: {result.note}")
                        continue
                    if running.process.poll() is not None:
                        result.status, result.note = "failed", f"server exited: {running.tail()}"
                        progress(f"{tag} {describe_result(cell, result)}")
                        continue
                    progress(f"{tag} running {duration:g} s, {cell.connections} connections ...")
                    probe(result, cell, running.port)
                    run_wrk(result, cell, running, duration, timeout)
                    progress(f"{tag} {describe_result(cell, result)}")
            finally:
                running.stop()
                running = None
            progress(f"== {spec.label}: stopped")
    finally:
        if running is not None:
            running.stop()
        machine["load_after"] = load_average()
        if keep:
            progress(f"kept {base} (server logs in {base / 'logs'})")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return run


# -- the report -------------------------------------------------------------------------------


def ratio_of(run: Run, server: str, cell: Cell) -> float | None:
    mine, base = run.get(server, cell.key), run.get(BASELINE, cell.key)
    if not mine or not base or mine.status != "ok" or base.status != "ok":
        return None
    if not mine.probe_ok or not base.probe_ok:  # fast wrong answers compare to nothing
        return None
    base_value = base.value(cell.unit)
    return mine.value(cell.unit) / base_value if base_value > 0 else None


def format_value(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


def format_ratio(ratio: float, target: float | None = None) -> str:
    """Two decimals, three when two would round a miss up to the target (0.996 -> "1.00")."""
    if target is not None and ratio < target <= round(ratio, 2):
        return f"{ratio:.3f}×"
    return f"{ratio:.2f}×"


def format_errors(cell: Cell, result: CellResult) -> str:
    parts = [f"{name} {count:,}" for name, count in result.errors.items() if count]
    text = f"{result.error_total:,}" + (f" ({', '.join(parts)})" if parts else "")
    if result.expected_status:
        text += f"; {result.expected_status:,} expected {cell.expect}s"
    if result.eof_bodies:
        text += f"; {result.eof_bodies:,} close-delimited bodies¹"
    return text


def markdown(run: Run, chart_name: str | None, quick: bool) -> str:
    m, s = run.machine, run.settings
    lines = ["# cgibox benchmarks", ""]
    if quick:
        lines += ["> QUICK run (about 1 s per cell): it only proves the benchmark works; its figures are "
                  "too short to compare.", ""]
    lines += [
        "Produced by `make bench` (bench/run.py); do not edit by hand. Every server ran on the same "
        "generated corpus on 127.0.0.1, one at a time, driven by wrk on the same machine (so wrk and "
        "the server share the CPUs). The ratio column is the server's figure divided by "
        "`python -m http.server`'s from this same run.",
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
        "",
        "## Servers",
        "",
        "| server | command | status |",
        "|---|---|---|",
    ]
    for info in run.servers.values():
        status = info["status"] + (f": {info['note']}" if info["note"] else "")
        lines.append(f"| {info['label']} | `{info['command']}` | {_cell_text(status)} |")
    lines += ["", "## Results", ""]
    if chart_name:
        lines += [f"![requests/s and MB/s per cell and server]({chart_name})", ""]
    lines += [
        "| cell | connections | server | requests/s or MB/s | p99 latency | errors | × http.server "
        "| CPU: server · wrk · other |",
        "|---|---:|---|---:|---:|---|---:|---:|",
    ]
    for cell in CELLS:
        for key, info in run.servers.items():
            result = run.get(key, cell.key)
            if result is None:
                continue
            head = f"| {cell.title} | {cell.connections} | {info['label']} "
            if result.status != "ok":
                lines.append(head + f"| {result.status} | | | {_cell_text(result.note)} | |")
                continue
            ratio = ratio_of(run, key, cell)
            if key == BASELINE:
                ratio_text = "baseline"
            elif ratio is not None:
                ratio_text = format_ratio(ratio, cell.target)
            else:
                ratio_text = "n/a (wrong answer)" if not result.probe_ok else "n/a"
            value = format_value(result.value(cell.unit), cell.unit)
            if result.note:
                value += f" ({_cell_text(result.note)})"
            lines.append(head + f"| {value} | {result.p99_ms:,.1f} ms | {format_errors(cell, result)} "
                         f"| {ratio_text} | {format_cpu(result.cpu)} |")
    lines += [
        "",
        "Errors are wrk's connect, read, write and timeout errors plus responses with an unexpected "
        "status (for the 404 cell, any status but 404; elsewhere any status of 400 or more). "
        "MB/s is 10^6 bytes per second, headers included. Before each cell one request checks the "
        "answer (status, and length where known); a cell answered wrongly shows what it got and has "
        "no ratio.",
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
    lines += targets_section(run)
    return "\n".join(lines) + "\n"


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


def _cell_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def targets_section(run: Run) -> list[str]:
    lines = ["## Targets (threading front)", "", "| target | measured | status |", "|---|---:|---|"]
    for cell in CELLS:
        if cell.target is None:
            continue
        ratio = ratio_of(run, "threading", cell)
        base = run.get(BASELINE, cell.key)
        mine = run.get("threading", cell.key)
        if ratio is None:
            if base is None or base.status != "ok":
                why = "no baseline" + (f": {base.note}" if base is not None and base.note else "")
            elif mine is None or mine.status != "ok":
                why = "not measured"
            elif not mine.probe_ok:
                why = f"threading answered {mine.probe}"
            else:
                why = f"http.server answered {base.probe}"
            lines.append(f"| {cell.title} ≥ {cell.target:g}× http.server | n/a | not met ({why}) |")
            continue
        met = "met" if ratio >= cell.target else "not met"
        lines.append(f"| {cell.title} ≥ {cell.target:g}× http.server | {format_ratio(ratio, cell.target)} "
                     f"| {met} |")
    threading = [r for r in run.results if r.server == "threading"]
    ran = [r for r in threading if r.status == "ok"]
    errors = sum(r.error_total for r in ran)
    wrong = sum(1 for r in ran if not r.probe_ok)
    complete = bool(threading) and len(ran) == len(threading)
    status = "met" if complete and errors == 0 and wrong == 0 else "not met"
    measured = f"{errors:,} errors in {len(ran)} of {len(threading)} cells"
    if wrong:
        measured += f", {wrong} answered wrongly"
    lines.append(f"| zero errors everywhere | {measured} | {status} |")
    others = [r for r in run.results if r.server not in ("threading",) and r.status == "ok" and r.error_total]
    if others:
        listed = "; ".join(f"{run.servers[r.server]['label']} / {cell_by_key(r.cell).title}: "
                           f"{r.error_total:,}" for r in others)
        lines += ["", f"Other servers with errors: {listed}."]
    return lines + [""]


# -- command line -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="about 1 s per cell; writes bench/results/quick.* instead of docs/")
    parser.add_argument("--duration", type=int, help="whole seconds per cell (default 5, quick 1)")
    parser.add_argument("--timeout", type=int, help="wrk --timeout in whole seconds (default 10, quick 5)")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1),
                        help="gunicorn worker processes (default: 2 x CPUs)")
    parser.add_argument("--servers", help="comma-separated subset of: " + ",".join(s.key for s in SERVERS))
    parser.add_argument("--output", type=Path, help="Markdown table (default docs/benchmarks.md, "
                                                    "quick: bench/results/quick.md)")
    parser.add_argument("--chart", type=Path, help="chart image beside it (default docs/benchmarks.png; "
                                                   "an .svg is drawn instead when matplotlib is missing)")
    parser.add_argument("--json", type=Path, help="raw results (default bench/results/latest.json "
                                                  "or quick.json)")
    parser.add_argument("--keep", action="store_true", help="keep the corpus and server logs")
    parser.add_argument("--render-only", action="store_true",
                        help="run nothing: write the table and chart again from the --json results")
    args = parser.parse_args(argv)
    results = BENCH / "results"
    if args.duration is None:
        args.duration = 1 if args.quick else 5
    if args.timeout is None:
        args.timeout = 5 if args.quick else 10
    if args.output is None:
        args.output = results / "quick.md" if args.quick else REPO / "docs" / "benchmarks.md"
    if args.chart is None:
        args.chart = args.output.with_suffix(".png")
    if args.json is None:
        args.json = results / ("quick.json" if args.quick else "latest.json")
    if not 1 <= args.duration <= 120 or not 1 <= args.timeout <= 120:  # wrk takes whole seconds
        parser.error("--duration and --timeout must be whole seconds from 1 to 120")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        run = Run.from_json(json.loads(args.json.read_text()))
        write_report(run, args)
        return 0
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (Debian/Ubuntu: apt-get install wrk)", file=sys.stderr)
        return 2
    servers = list(SERVERS)
    if args.servers:
        wanted = args.servers.split(",")
        unknown = set(wanted) - {s.key for s in SERVERS}
        if unknown:
            print(f"bench: unknown servers: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        servers = [s for s in SERVERS if s.key in wanted or s.key == BASELINE]

    def terminate(signum, frame):  # SIGTERM ends the run like Ctrl-C: servers are stopped
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    started = time.monotonic()
    try:
        run = run_all(servers, list(CELLS), args.duration, args.timeout, args.workers, args.keep)
    except KeyboardInterrupt:
        print("bench: interrupted; every server it started has been stopped", file=sys.stderr)
        return 130
    run.settings["quick"] = args.quick
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(run.to_json(), indent=1) + "\n")
    write_report(run, args)
    progress(f"took {time.monotonic() - started:.0f} s")
    return 0


def write_report(run: Run, args: argparse.Namespace) -> None:
    """The Markdown table and the chart beside it (from a fresh run or saved results)."""
    chart_path = chart.draw(run.to_json(), args.chart)
    chart_name = os.path.relpath(chart_path, args.output.parent) if chart_path is not None else None
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(markdown(run, chart_name, bool(run.settings.get("quick", args.quick))))
    progress(f"wrote {args.output}" + (f", {chart_path}" if chart_path else "") + f" from {args.json}")
    progress("")
    progress("\n".join(targets_section(run)))


if __name__ == "__main__":
    sys.exit(main())
