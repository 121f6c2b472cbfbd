"""The connection cells' tools: a crowd of idle or slow clients (bench/clients.py, run as its own
process so its CPU and file descriptors are its own) and the memory of a server's process group.

The cells themselves (issue 8): 32 active connections beside 5,000 idle keep-alive ones, against
the same cell alone; 1,000 slow-head clients beside 32 active ones; the server's RSS holding
10,000 idle connections against its RSS idle.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CLIENTS = Path(__file__).resolve().parent / "clients.py"


@dataclass(frozen=True)
class Sizes:
    idle: int  # idle keep-alive connections beside the active ones
    slow: int  # slow-head clients beside the active ones
    held: int  # idle connections held while the RSS is read
    ramp_s: float  # at most this long to put a crowd in place


FULL = Sizes(idle=5000, slow=1000, held=10000, ramp_s=8.0)
QUICK = Sizes(idle=300, slow=100, held=1000, ramp_s=3.0)


@dataclass
class CrowdReport:
    ready: dict = field(default_factory=dict)
    done: dict = field(default_factory=dict)
    error: str = ""

    def summary(self) -> str:
        if self.error:
            return self.error
        ready, done = self.ready, self.done
        if not ready:
            return "crowd never ready"
        text = f"{ready['opened']:,} of {ready['count']:,} connected in {ready['seconds']:.1f} s"
        if ready["mode"] == "idle":
            text += f", {ready['answered']:,} answered"
        if ready.get("failed"):
            text += f", {ready['failed']:,} failed to connect"
        if done:
            text += f"; {done['open_now']:,} still open at the end"
            if done.get("closed_by_server"):
                text += f", {done['closed_by_server']:,} closed by the server"
        return text


class Crowd:
    """bench/clients.py in a child process: started, waited for until ready, then told to go."""

    def __init__(self, mode: str, port: int, count: int, ramp_s: float, path: str = "/healthz") -> None:
        self.report = CrowdReport()
        self.process = subprocess.Popen(
            [sys.executable, str(CLIENTS), mode, "--port", str(port), "--count", str(count), "--path", path,
             "--ramp-seconds", str(ramp_s), "--max-seconds", str(ramp_s + 150)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.ramp_s = ramp_s

    def _line(self, timeout: float) -> dict | None:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            wait = max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([self.process.stdout], [], [], wait)
            if not readable:
                break
            line = self.process.stdout.readline()
            if not line:
                return None
            try:
                return json.loads(line)
            except ValueError:
                continue
        return None

    def wait_ready(self) -> bool:
        ready = self._line(self.ramp_s + 20)
        if ready is None:
            self.report.error = "the client crowd did not get ready: " + self._stderr()
            return False
        self.report.ready = ready
        return True

    def stop(self) -> CrowdReport:
        """Ask the crowd to go (stdin closes), read its last line, and make sure it is gone."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
        except OSError:
            pass
        done = self._line(15)
        if done is not None:
            self.report.done = done
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(5)
        return self.report

    def _stderr(self) -> str:
        if self.process.poll() is None:
            return "still running"
        assert self.process.stderr is not None
        return self.process.stderr.read().decode("utf-8", "replace").strip()[-300:]


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            rest = Path(entry.path, "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(rest[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def _kib(path: str, key: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


@dataclass
class Memory:
    processes: int
    rss_mb: float  # resident set of every process, summed (shared pages counted in each)
    pss_mb: float  # proportional set: shared pages divided among the processes sharing them
    largest_rss_mb: float  # the biggest single process


def group_memory(pgid: int) -> Memory:
    """RSS and PSS of every process of the server's process group (CGI scripts included)."""
    rss = [_kib(f"/proc/{pid}/status", "VmRSS:") for pid in group_pids(pgid)]
    pss = [_kib(f"/proc/{pid}/smaps_rollup", "Pss:") for pid in group_pids(pgid)]
    return Memory(len(rss), sum(rss) / 1024, sum(pss) / 1024, max(rss, default=0) / 1024)
