"""Where the time goes in a cell: py-spy (the `bench` extra) samples the server's processes while
wrk runs, only when a thread holds the GIL, so the samples are Python's own work; the report lists
the functions that took the largest shares, and the Python time per request.

Time outside those samples is spent in system calls and waiting for the GIL (thread hand-offs).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

RATE = 250  # samples a second
# frames every stack has (thread start-up, socketserver plumbing): they say nothing
BORING = re.compile(r"^(Thread\.|_bootstrap|BaseRequestHandler\.__init__|BaseServer\.finish_request|"
                    r"ThreadingMixIn\.|ThreadingServer\.process_request_thread|<module>|_run_module_as_main|"
                    r"_run_code|main \(cgibox/cli|run_httpserver|serve \(cgibox/fronts)")


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(pid: int, seconds: int, out: Path) -> subprocess.Popen | None:
    program = py_spy()
    if program is None:
        return None
    return subprocess.Popen([program, "record", "--gil", "--subprocesses", "--nonblocking", "--format", "raw",
                             "-r", str(RATE), "-d", str(seconds), "-o", str(out), "-p", str(pid)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen, seconds: int) -> str:
    """Wait for py-spy; returns "" or why there is no profile."""
    try:
        _, err = process.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return "py-spy did not finish"
    if process.returncode != 0:
        return "py-spy failed: " + err.decode("utf-8", "replace").strip()[-200:]
    return ""


def summarize(raw: Path, top: int = 12) -> dict:
    """{"samples", "top": [[share, frame], ...], "processes"} from py-spy's raw (collapsed stacks)
    output: each frame's inclusive share of the samples, counted once per stack, and how many
    processes were sampled."""
    inclusive: Counter[str] = Counter()
    processes: set[str] = set()
    total = 0
    try:
        lines = raw.read_text("utf-8", "replace").splitlines()
    except OSError:
        return {"samples": 0, "top": []}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        parts = stack.split(";")
        # a child's stacks start with its parents' "process 1234:\"command line\"" and its own
        owners = [part.split(":", 1)[0] for part in parts if part.startswith("process ")]
        if owners:
            processes.add(owners[-1])
        frames = {re.sub(r" \((.*?):\d+\)", r" (\1)", frame) for frame in parts[len(owners):]}
        for frame in frames:
            if not BORING.search(frame):
                inclusive[frame] += samples
    # a frame in (nearly) every stack is the request loop itself: it says nothing either
    common = [(frame, count) for frame, count in inclusive.most_common() if count < 0.9 * total]
    shares = [[round(count / total, 3), frame] for frame, count in common[:top]]
    return {"samples": total, "top": shares if total else [], "processes": len(processes)}
