"""One cell under wrk: the probe request before the load, wrk's command line (with report.lua,
which prints one BENCH_RESULT JSON line) and the parsing of its figures into a CellResult."""

from __future__ import annotations

import http.client
import json
import re
import subprocess

from bench import BENCH, cpu
from bench.cells import CGI_BODY, CONN_CELLS, LARGE_SIZE, Cell
from bench.results import CellResult
from bench.servers import Running, fetch_framed

REPORT_LUA = BENCH / "report.lua"
RESULT_LINE = re.compile(r"^BENCH_RESULT (\{.*\})\s*$", re.M)

WRK_THREADS = 2


def wrk_version() -> str:
    try:
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (done.stdout or done.stderr).strip().splitlines()
    return re.sub(r"\s*Copyright.*$", "", first[0]) if first else "unknown"


def probe(result: CellResult, cell: Cell, running: Running) -> None:
    """One request before the load: checks the answer and warms caches (listing, page cache)."""
    port = running.port
    try:
        status, length, result.framing = fetch_framed(port, cell.path, tls=running.tls_client)
    except (OSError, http.client.HTTPException) as error:
        result.probe = f"failed: {error}"
        return
    result.probe = f"{status}, {length:,} bytes"
    expected_length = {"file-1k": 1024, "file-64m": LARGE_SIZE, "cgi": len(CGI_BODY), "tls-1k": 1024,
                       "tls-64m": LARGE_SIZE}.get(cell.key)
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
    command = ["wrk", "-t", str(WRK_THREADS), "-c", str(cell.connections), "-d", f"{duration}s",
               "--timeout", f"{timeout}s", "-s", str(REPORT_LUA), f"{running.url}{cell.path}"]
    if cell.expect != 200:
        command += ["--", f"expect={cell.expect}"]
    before = cpu.sample(running.process.pid)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + timeout + grace,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        result.cpu = cpu.shares(before, cpu.sample(running.process.pid), cpu.CORES)
        if cell in CONN_CELLS:
            # a server whose every thread is held by the crowd never answers wrk's connections,
            # and wrk then waits for them past its own duration: no request was answered
            result.duration_s = float(duration)
            result.note = "wrk never finished: no request answered"
            return
        result.status, result.note = "failed", "wrk did not finish in time"
        return
    result.cpu = cpu.shares(before, cpu.sample(running.process.pid), cpu.CORES)
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
