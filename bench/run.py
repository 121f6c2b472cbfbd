"""`make bench`: drive every cgibox front and the servers people would pick instead (nginx,
lighttpd, twisted, `python -m http.server`) with wrk on one generated corpus.

    python bench/run.py            # a few seconds per cell -> docs/benchmarks.md + docs/benchmarks.png
    python bench/run.py --quick    # ~1 s per cell -> bench/results/quick.md (proves the bench works)

Every server is started here on 127.0.0.1 and a free port, waited for, driven cell by cell and
stopped (its whole process group) before the next one starts, also on Ctrl-C or failure. A server
that is not installed or does not start is reported as "not available" instead of ending the run.
Each cgibox front's figures are ratios to the best C server, the best Python server and http.server
of the same run, so they compare servers, not machines. The cgibox fronts also run the connection
cells (idle keep-alive crowd, slow-head crowd, memory holding idle connections; bench/connections.py).
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

from bench import chart, connections, cpu, peers, profile  # noqa: E402

REPORT_LUA = BENCH / "report.lua"
# hand-written findings (profiles: where the time goes) appended to docs/benchmarks.md on every run
NOTES = BENCH / "notes.md"
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


CELLS = (
    Cell("file-1k", "1 KiB file", f"/{SMALL_FILE}", 32, "req/s"),
    Cell("file-64m", "64 MiB file", f"/{LARGE_FILE}", 4, "MB/s"),
    Cell("listing", f"listing of {LISTING_COUNT:,} files", f"/{LISTING_DIR}/", 16, "req/s"),
    Cell("cgi", "CGI sh hello", f"/cgi-bin/{CGI_SCRIPT}", 8, "req/s"),
    Cell("404", "404 (missing path)", "/no/such/file.txt", 16, "req/s", expect=404),
)
# the connection cells (issue 8), cgibox fronts only: 32 active connections on the 1 KiB file,
# alone, beside an idle keep-alive crowd, beside a slow-head crowd; then memory holding idle ones
CONN_ALONE = Cell("conn-alone", "32 active, alone", f"/{SMALL_FILE}", 32, "req/s")
CONN_IDLE = Cell("conn-idle", "32 active + idle crowd", f"/{SMALL_FILE}", 32, "req/s")
CONN_SLOW = Cell("conn-slow", "32 active + slow-head crowd", f"/{SMALL_FILE}", 32, "req/s")
CONN_CELLS = (CONN_ALONE, CONN_IDLE, CONN_SLOW)

# threading front's target ratios to a peer (issue 13): (cell, peer, at least)
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


@dataclass(frozen=True)
class ServerSpec:
    key: str
    label: str
    kind: str  # "cgibox", or a peer: "http.server", "nginx", "lighttpd", "twisted"
    args: tuple[str, ...] = ()

    @property
    def is_cgibox(self) -> bool:
        return self.kind == "cgibox"

    def cgibox_args(self, workers: int, flags: frozenset[str]) -> list[str]:
        """The front's flags, plus the connection engine's where this cgibox has them: the
        connection cells hold 10,000 idle connections for a minute, and the threading front
        serves with a process per CPU (its default once the engine is in)."""
        args = [arg.replace("{workers}", str(workers)) for arg in self.args]
        if "--max-connections" in flags:
            args += ["--max-connections", str(connections.FULL.held + 1000)]
        if "--keepalive-timeout" in flags:
            args += ["--keepalive-timeout", "60"]
        if "--processes" in flags and self.key == "threading":
            args += ["--processes", str(CORES)]
        return args

    def describe(self, workers: int, flags: frozenset[str]) -> str:
        if not self.is_cgibox:
            return peers.describe(self.kind, CORES)
        args = " ".join(self.cgibox_args(workers, flags))
        return f"cgibox {args} --root ROOT --cgi-dir ROOT/cgi-bin --port PORT"


BASELINE = "http.server"
SERVERS = (
    ServerSpec(BASELINE, "http.server", "http.server"),
    ServerSpec("nginx", "nginx", "nginx"),
    ServerSpec("lighttpd", "lighttpd", "lighttpd"),
    ServerSpec("twisted", "twisted web", "twisted"),
    ServerSpec("threading", "cgibox threading", "cgibox", ("--front", "threading")),
    ServerSpec("forking", "cgibox forking", "cgibox", ("--front", "forking")),
    ServerSpec("gunicorn-gthread", "cgibox gunicorn gthread", "cgibox",
               ("--front", "gunicorn", "--worker-class", "gthread", "--workers", "{workers}")),
    ServerSpec("gunicorn-sync", "cgibox gunicorn sync", "cgibox",
               ("--front", "gunicorn", "--worker-class", "sync", "--workers", "{workers}")),
)
has_stdlib_cgi = peers.has_stdlib_cgi


def cgibox_flags() -> frozenset[str]:
    """The flags this checkout's `cgibox --help` lists (the engine's are passed only if present)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "app"),
                                                                   os.environ.get("PYTHONPATH")])))
    try:
        done = subprocess.run([sys.executable, "-m", "cgibox", "--help"], capture_output=True, text=True,
                              timeout=30, env=env, cwd=REPO, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(re.findall(r"(--[a-z][a-z-]+)", done.stdout))


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
    wire_gzip: int = 0  # the listing's body on the wire to a client that accepts gzip (0: not probed)
    crowd: str = ""  # connection cells: what the idle or slow crowd beside the load did

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
    servers: dict[str, dict]  # key -> {"label", "kind", "command", "status", "note", "first_response_s", ...}
    results: list[CellResult]
    memory: dict[str, dict] = field(default_factory=dict)  # cgibox front -> the RSS cell's figures
    profiles: dict[str, dict] = field(default_factory=dict)  # front -> cell -> py-spy summary

    def get(self, server: str, cell: str) -> CellResult | None:
        for result in self.results:
            if result.server == server and result.cell == cell:
                return result
        return None

    @classmethod
    def from_json(cls, data: dict) -> Run:
        fields = {f for f in CellResult.__dataclass_fields__}
        results = [CellResult(**{k: v for k, v in r.items() if k in fields}) for r in data["results"]]
        return cls(data["machine"], data["settings"], data["servers"], results, data.get("memory", {}),
                   data.get("profiles", {}))

    def to_json(self) -> dict:
        results = []
        for r in self.results:
            cell = cell_by_key(r.cell)
            results.append(dict(asdict(r), value=r.value(cell.unit),
                                ratio_text=ratio_summary(self, r.server, cell) if cell in CELLS else ""))
        return {"machine": self.machine, "settings": self.settings, "servers": self.servers,
                "cells": [asdict(cell) for cell in CELLS], "results": results, "memory": self.memory,
                "profiles": self.profiles}


def cell_by_key(key: str) -> Cell:
    return next(cell for cell in (*CELLS, *CONN_CELLS) if cell.key == key)


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
    first_response_s: float = 0.0

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


def server_command(spec: ServerSpec, root: Path, port: int, workers: int, work: Path,
                   flags: frozenset[str]) -> list[str]:
    if not spec.is_cgibox:
        return peers.command(spec.kind, root, port, work, CORES)
    return [sys.executable, "-m", "cgibox", *spec.cgibox_args(workers, flags), "--host", "127.0.0.1",
            "--port", str(port), "--root", str(root), "--cgi-dir", str(root / "cgi-bin")]


def start_server(spec: ServerSpec, root: Path, logs: Path, workers: int,
                 flags: frozenset[str] = frozenset()) -> Running:
    """Start a server and wait for its first answer; records how long that took (`first_response_s`)."""
    why = peers.missing(spec.kind) if not spec.is_cgibox else None
    if why:
        raise NotAvailable(why)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CGIBOX_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "app"), env.get("PYTHONPATH")]))
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"  # http.server --cgi warns on 3.13+
    out_path, err_path = logs / f"{spec.key}.out", logs / f"{spec.key}.err"
    command = server_command(spec, root, port, workers, logs / spec.key, flags)
    # access logs go to /dev/null for every server but twisted: cgibox's and http.server's are their
    # stdout and stderr (http.server has no other), nginx's and lighttpd's are configured so; twistd's
    # goes to a file of the run (see peers.py: it renames its log file to rotate it)
    err_target = os.devnull if spec.kind == "http.server" else err_path
    with open(os.devnull, "wb") as out, open(err_target, "wb") as err:
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO,
                                   env=env, start_new_session=True)
    err_path.touch()
    running = Running(spec, process, port, out_path, err_path)
    probe_path = "/healthz" if spec.is_cgibox else f"/{SMALL_FILE}"
    deadline = started + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise NotAvailable(f"exited with status {process.returncode}: {running.tail()}")
            try:
                status, _ = fetch(port, probe_path, timeout=2.0)
                if status == 200:
                    running.first_response_s = time.monotonic() - started
                    return running
            except OSError:
                pass
            time.sleep(0.01)
        raise NotAvailable(f"did not answer {probe_path} within {START_TIMEOUT:.0f} s: {running.tail()}")
    except BaseException:
        running.stop()
        raise


def fetch(port: int, path: str, timeout: float = PROBE_TIMEOUT) -> tuple[int, int]:
    """One GET on a fresh connection: (status, body length)."""
    status, length, _ = fetch_framed(port, path, timeout)
    return status, length


def fetch_framed(port: int, path: str, timeout: float = PROBE_TIMEOUT,
                 headers: dict[str, str] | None = None) -> tuple[int, int, str]:
    """One GET on a fresh connection: (status, body length as sent, framing: length | chunked | close)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
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
    if cell.key == "listing":
        # what a browser gets: the page as sent to a client that accepts gzip (http.client does not
        # decode it, so this is the length on the wire without the head)
        try:
            _, result.wire_gzip, _ = fetch_framed(port, cell.path, headers={"Accept-Encoding": "gzip"})
        except (OSError, http.client.HTTPException):
            pass


def run_wrk(result: CellResult, cell: Cell, running: Running, duration: int, timeout: int,
            grace: int = 30) -> None:
    port = running.port
    command = ["wrk", "-t", str(WRK_THREADS), "-c", str(cell.connections), "-d", f"{duration}s",
               "--timeout", f"{timeout}s", "-s", str(REPORT_LUA), f"http://127.0.0.1:{port}{cell.path}"]
    if cell.expect != 200:
        command += ["--", f"expect={cell.expect}"]
    before = cpu.sample(running.process.pid)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + timeout + grace,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        result.cpu = cpu.shares(before, cpu.sample(running.process.pid), CORES)
        if cell in CONN_CELLS:
            # a server whose every thread is held by the crowd never answers wrk's connections,
            # and wrk then waits for them past its own duration: no request was answered
            result.duration_s = float(duration)
            result.note = "wrk never finished: no request answered"
            return
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
            keep: bool, sizes: connections.Sizes | None = None, conn_fronts: tuple[str, ...] = (),
            profile_fronts: tuple[str, ...] = ()) -> Run:
    """Every server through every cell; the cgibox fronts in `conn_fronts` also through the
    connection cells (crowds of `sizes`)."""
    machine = machine_info()
    flags = cgibox_flags()
    settings = {"duration_s": duration, "wrk_threads": WRK_THREADS, "wrk_timeout_s": timeout,
                "workers": workers, "connections": {cell.key: cell.connections for cell in cells},
                "engine_flags": sorted(flags & {"--max-connections", "--keepalive-timeout", "--processes"}),
                "crowds": asdict(sizes) if sizes else {}}
    run = Run(machine, settings, {}, [])
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
        total = (len(servers) * len(cells) + len(with_conn) * (len(CONN_CELLS) + 1)
                 + len(profiled) * len(PROFILED_CELLS))
        counter = [0]

        def tag(spec: ServerSpec, title: str) -> str:
            counter[0] += 1
            return f"[{counter[0]:2d}/{total}] {spec.label:<24} {title:<28}"

        for spec in servers:
            info: dict = {"label": spec.label, "kind": spec.kind, "command": spec.describe(workers, flags),
                          "status": "ok", "note": ""}
            run.servers[spec.key] = info
            progress(f"== {spec.label}: starting `{info['command']}`")
            try:
                running = start_server(spec, root, logs, workers, flags)
            except NotAvailable as error:
                info["status"], info["note"] = "not available", str(error)[:400]
                progress(f"== {spec.label}: not available: {info['note']}")
                for cell in cells:
                    run.results.append(CellResult(spec.key, cell.key, "not available", info["note"][:120]))
                    progress(f"{tag(spec, cell.title)} not available")
                if spec in with_conn:
                    counter[0] += len(CONN_CELLS) + 1
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
                    if cell.key == "cgi" and spec.kind == "http.server" and not has_stdlib_cgi():
                        why = f"http.server has no --cgi on Python {platform.python_version()}"
                    if why:
                        result.status, result.note = "not served", why
                        progress(f"{label} not served: {why}")
                        continue
                    if running.process.poll() is not None:
                        result.status, result.note = "failed", f"server exited: {running.tail()}"
                        progress(f"{label} {describe_result(cell, result)}")
                        continue
                    progress(f"{label} running {duration:g} s, {cell.connections} connections ...")
                    probe(result, cell, running.port)
                    run_wrk(result, cell, running, duration, timeout)
                    progress(f"{label} {describe_result(cell, result)}")
                if spec in profiled:
                    profile_cells(run, spec, running, duration, timeout, logs, tag)
                if spec in with_conn and sizes is not None:
                    if connections_limit < sizes.held + 200:
                        progress(f"note: RLIMIT_NOFILE is {connections_limit}: "
                                 "the crowds will not all connect")
                    connection_cells(run, spec, running, duration, timeout, sizes, tag)
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


def raise_nofile(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE toward `wanted` (the servers started inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            pass
    return soft


def connection_cells(run: Run, spec: ServerSpec, running: Running, duration: int, timeout: int,
                     sizes: connections.Sizes, tag) -> None:
    """The issue-8 cells on one running cgibox front: wrk's 32 connections alone, beside an idle
    crowd and beside a slow crowd; then the group's memory idle and holding `sizes.held` idle ones."""
    crowds = {CONN_ALONE.key: None, CONN_IDLE.key: ("idle", sizes.idle), CONN_SLOW.key: ("slow", sizes.slow)}
    for cell in CONN_CELLS:
        result = CellResult(spec.key, cell.key)
        run.results.append(result)
        label = tag(spec, cell.title)
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


# -- the report -------------------------------------------------------------------------------


def usable(result: CellResult | None) -> bool:
    """Measured, and answered rightly: fast wrong answers (a wrong probe, or more than 1 % of the
    responses in error) compare to nothing."""
    return (result is not None and result.status == "ok" and result.probe_ok and result.duration_s > 0
            and result.error_total <= 0.01 * max(result.requests, 1))


def value_of(run: Run, server: str, cell: Cell) -> float | None:
    result = run.get(server, cell.key)
    return result.value(cell.unit) if usable(result) else None


def best_of(run: Run, cell: Cell, kinds: tuple[str, ...]) -> str | None:
    """The key of the fastest server of these kinds in this cell, or None when none was measured."""
    measured = [(value, key) for key, info in run.servers.items() if info.get("kind") in kinds
                and (value := value_of(run, key, cell)) is not None]
    return max(measured)[1] if measured else None


def ratio_to(run: Run, server: str, other: str | None, cell: Cell) -> float | None:
    if other is None:
        return None
    mine, theirs = value_of(run, server, cell), value_of(run, other, cell)
    if mine is None or not theirs:
        return None
    return mine / theirs


def ratio_of(run: Run, server: str, cell: Cell) -> float | None:
    """The server's figure over http.server's in the same cell."""
    return ratio_to(run, server, BASELINE, cell)


def references(run: Run, cell: Cell) -> list[tuple[str, str | None]]:
    """(what, server key): the best C server, the best Python server and http.server of the run."""
    return [("best C", best_of(run, cell, peers.C_PEERS)),
            ("best Python", best_of(run, cell, peers.PYTHON_PEERS)), ("http.server", BASELINE)]


def ratio_summary(run: Run, server: str, cell: Cell) -> str:
    """"0.13× nginx · 1.20× twisted web · 8.30× http.server" for the chart and the progress lines."""
    parts, seen = [], {server}
    for _, key in references(run, cell):
        if key in seen:
            continue
        seen.add(key)
        ratio = ratio_to(run, server, key, cell)
        if ratio is not None and key is not None:
            parts.append(f"{ratio:.2f}× {run.servers[key]['label']}")
    return " · ".join(parts)


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
        lines += ["> QUICK run (about 1 s per cell, small crowds): it only proves the benchmark works; "
                  "its figures are too short to compare.", ""]
    if s.get("label"):
        lines += [f"> {s['label']}", ""]
    lines += [
        "Produced by `make bench` (bench/run.py); do not edit by hand. Every server ran on the same "
        "generated corpus on 127.0.0.1, one at a time, driven by wrk on the same machine (so wrk and "
        "the server share the CPUs), every access log going to /dev/null. Each figure is compared "
        "with the best C server (nginx, lighttpd), the best Python server (twisted web, "
        "`python -m http.server`) and `python -m http.server` of this same run.",
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
        lines.append(f"| {info['label']} | `{info['command']}` | {_cell_text(status)} | {first} | {rss} |")
    lines += ["", "## Results", ""]
    if chart_name:
        lines += [f"![requests/s and MB/s per cell and server]({chart_name})", ""]
    lines += [
        "| cell | connections | server | requests/s or MB/s | p99 latency | errors | × best C "
        "| × best Python | × http.server | CPU: server · wrk · other |",
        "|---|---:|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for cell in CELLS:
        refs = references(run, cell)
        for key, info in run.servers.items():
            result = run.get(key, cell.key)
            if result is None:
                continue
            head = f"| {cell.title} | {cell.connections} | {info['label']} "
            if result.status != "ok":
                lines.append(head + f"| {result.status} | | {_cell_text(result.note)} | | | | |")
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
                value += f" ({_cell_text(result.note)})"
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
                lines += [f"- {title}: no profile ({_cell_text(entry['error'])})"]
                continue
            top = "; ".join(f"{share:.0%} `{_cell_text(frame)}`" for share, frame in entry["top"])
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
        for cell in CONN_CELLS:
            result = run.get(key, cell.key)
            if result is None:
                continue
            if result.status != "ok":
                lines.append(f"| {label} | {cell.title} | {result.status} | | {_cell_text(result.note)} | |")
                continue
            if result.requests:
                value, p99 = format_value(result.value(cell.unit), cell.unit), f"{result.p99_ms:,.1f} ms"
            else:
                value, p99 = "none answered", "—"
            if result.note and result.note != f"probe got {result.probe}":
                value += f" ({_cell_text(result.note)})"
            lines.append(f"| {label} | {cell.title} | {value} | {p99} | {format_errors(cell, result)} "
                         f"| {_cell_text(result.crowd)} |")
        memory = run.memory.get(key)
        if memory:
            lines.append(f"| {label} | RSS holding {memory['held']:,} idle | "
                         f"{memory['rss_idle_mb']:.1f} → {memory['rss_holding_mb']:.1f} MB RSS "
                         f"({memory['processes_idle']} → {memory['processes_holding']} processes) | "
                         f"PSS {memory['pss_idle_mb']:.1f} → {memory['pss_holding_mb']:.1f} MB | | "
                         f"{_cell_text(memory['crowd'])} |")
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


def _cell_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


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
            lines.append(f"| {target} | n/a | not met ({_cell_text(why)}) |")
            continue
        lines.append(f"| {target} | {format_ratio(ratio, least)} | {_met(ratio >= least)} |")
    listing = run.get("threading", "listing")
    size = listing.wire_gzip if listing else 0
    lines.append(f"| listing page ≤ {LISTING_GZIP_LIMIT // 1000} KB on the wire with gzip | "
                 + (f"{size:,} B | {_met(size <= LISTING_GZIP_LIMIT)} |" if size else "n/a | not met |"))
    threading = [r for r in run.results if r.server == "threading" and r.cell in {c.key for c in CELLS}]
    ran = [r for r in threading if r.status == "ok"]
    errors = sum(r.error_total for r in ran)
    wrong = sum(1 for r in ran if not r.probe_ok)
    complete = bool(threading) and len(ran) == len(threading)
    measured = f"{errors:,} errors in {len(ran)} of {len(threading)} cells"
    if wrong:
        measured += f", {wrong} answered wrongly"
    clean = complete and errors == 0 and not wrong
    lines.append(f"| zero errors in every cell | {measured} | {_met(clean)} |")
    info = run.servers.get("threading", {})
    if "first_response_s" in info:
        first = info["first_response_s"]
        lines.append(f"| first response ≤ {FIRST_RESPONSE_LIMIT_S:g} s after start (interpreter start "
                     f"included) | {first:.2f} s | {_met(first <= FIRST_RESPONSE_LIMIT_S)} |")
        rss = info["idle_rss_mb"]
        lines.append(f"| idle RSS ≤ {IDLE_RSS_LIMIT_MB:g} MB a process | {rss:.1f} MB (largest of "
                     f"{info['processes']}) | {_met(rss <= IDLE_RSS_LIMIT_MB)} |")
    before = []
    for cell in CELLS:
        now = value_of(run, "forking", cell)
        if now is not None and cell.key in FORKING_BEFORE:
            before.append(f"{cell.title} {now / FORKING_BEFORE[cell.key]:.2f}×")
    if before:
        slower = [text for text in before if float(text.rsplit(" ", 1)[1].rstrip("×")) < 1.0]
        lines.append(f"| forking front at least as fast as before the engine (run of 2026-11-21) | "
                     f"{'; '.join(before)} | {_met(not slower)} |")
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
                         f"{share:.0%}{note} | {_met(shares_ok)} |")
            if idle.requests:
                factor = idle.p99_ms / alone.p99_ms
                shown = (f"{factor:.1f}× ({idle.p99_ms:,.1f} vs {alone.p99_ms:,.1f} ms"
                         f"{f', {timeouts:,} timeouts' if timeouts else ''})")
                ok = factor <= c.P99_FACTOR and not timeouts
            else:
                shown, ok = "no request answered", False
            lines.append(f"| {label} | beside idle: p99 ≤ {c.P99_FACTOR:g}× alone | {shown} | {_met(ok)} |")
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
                         f"| {_met(ok)} |")
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
                         f"{shown} | {_met(growth <= c.RSS_GROWTH_MB and held_all)} |")
        else:
            lines.append(f"| {label} | RSS holding idle connections | n/a | not met (not measured) |")
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
    parser.add_argument("--connection-fronts",
                        help="cgibox fronts that also run the connection cells, comma-separated, or "
                             "'none' (default: every cgibox front; quick: threading)")
    parser.add_argument("--keep", action="store_true", help="keep the corpus and server logs")
    parser.add_argument("--profile-fronts",
                        help="cgibox fronts whose 1 KiB and 404 cells also run under py-spy, "
                             "comma-separated, or 'none' (default: threading,forking; quick: none)")
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
        sizes = connections.QUICK if args.quick else connections.FULL
        run = run_all(servers, list(CELLS), args.duration, args.timeout, args.workers, args.keep, sizes,
                      args.connection_fronts, args.profile_fronts)
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
