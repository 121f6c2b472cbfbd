"""The write cells of issue 21, apart from wrk's cells (wrk sends no bodies of this size):

- upload: 4 clients at once each `PUT` a quarter of 1 GiB (streamed, Content-Length) to cgibox's
  threading front with `--write '/*'` and to nginx's dav module (`dav_methods PUT`, its body
  temporary files on the same file system): MB/s of the whole, and each server's resident memory
  (its processes together) at its peak against before. Target: >= 0.8x nginx, RSS growth < 50 MB.
- zip: `GET /folder/?download=zip` of a 1 GiB folder (16 files of 64 MiB) read to its end: MB/s and
  the server's RSS growth (flat: it streams). nginx has no archives; cgibox alone.

    .venv/bin/python -m bench.writes [--total-mib 1024] [--json bench/results/writes.json]

Servers listen on 127.0.0.1 on a free port and are stopped on every way out.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.peers import _which
from bench.servers import free_port

MIB = 1024 * 1024
CLIENTS = 4
BLOCK = os.urandom(MIB)


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (forked serving processes, workers)."""
    total, waiting = 0, [pid]
    while waiting:
        current = waiting.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = [int(child) for task in os.listdir(f"/proc/{current}/task")
                        for child in Path(f"/proc/{current}/task/{task}/children").read_text().split()]
        except (OSError, ValueError):
            continue
        total += next((int(line.split()[1]) * 1024 for line in status.splitlines()
                       if line.startswith("VmRSS:")), 0)
        waiting.extend(children)
    return total


class Peak:
    """The highest tree_rss of `pid` while the block runs (sampled every 50 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.before, self.peak = pid, tree_rss(pid), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, tree_rss(self.pid))

    def __enter__(self) -> Peak:
        self.peak = self.before
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.before) / 1e6


def wait_listening(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server never answered")


def start_cgibox(root: Path, work: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cgibox", "--front", "threading", "--host", "127.0.0.1", "--port", str(port),
         "--root", str(root), "--cgi-dir", str(work), "--write", "/*", "--max-upload", "4g"],
        stdout=subprocess.DEVNULL, stderr=open(work / "cgibox.err", "wb"), start_new_session=True)
    wait_listening(port, process)
    return process, port


def start_nginx(root: Path, work: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    temp = root / ".nginx-temp"  # on the same file system as the root, as dav's docs advise
    temp.mkdir()
    for folder in (root, temp):  # started as root, nginx's workers write as nobody
        folder.chmod(0o777)
    conf = work / "nginx.conf"
    conf.write_text(f"""daemon off;
master_process on;
worker_processes 2;
pid {work / 'nginx.pid'};
error_log {work / 'error.log'} warn;
events {{ worker_connections 1024; }}
http {{
    access_log /dev/null;
    client_body_temp_path {temp};
    client_max_body_size 4g;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        dav_methods PUT DELETE MKCOL COPY MOVE;
        dav_access user:rw group:r all:r;
    }}
}}
""")
    process = subprocess.Popen([_which("nginx") or "nginx", "-p", str(work), "-c", str(conf)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_listening(port, process)
    return process, port


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(5)


def put(port: int, path: str, size: int) -> int:
    def body():
        for _ in range(size // MIB):
            yield BLOCK

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request("PUT", path, body=body(), headers={"Content-Length": str(size)})
        reply = conn.getresponse()
        reply.read()
        return reply.status
    finally:
        conn.close()


def upload_cell(port: int, pid: int, total: int) -> dict[str, float]:
    share = total // CLIENTS
    statuses: list[int] = []
    with Peak(pid) as peak:
        started = time.monotonic()
        threads = [threading.Thread(target=lambda i=i: statuses.append(put(port, f"/up-{i}.bin", share)))
                   for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    if not set(statuses) <= {201, 204}:
        raise RuntimeError(f"PUT answered {statuses}")
    return {"mb_s": total / 1e6 / elapsed, "seconds": elapsed, "rss_growth_mb": peak.growth_mb}


def zip_cell(port: int, pid: int, folder: str, expected_at_least: int) -> dict[str, float]:
    with Peak(pid) as peak:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        conn.request("GET", f"/{folder}/?download=zip")
        reply = conn.getresponse()
        received = 0
        while chunk := reply.read(MIB):
            received += len(chunk)
        conn.close()
        elapsed = time.monotonic() - started
    if reply.status != 200 or received < expected_at_least:
        raise RuntimeError(f"zip: {reply.status}, {received} bytes")
    return {"mb_s": received / 1e6 / elapsed, "seconds": elapsed, "rss_growth_mb": peak.growth_mb,
            "bytes": received}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total-mib", type=int, default=1024,
                        help="MiB uploaded in all, and the size of the zipped folder")
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args(argv)
    total = args.total_mib * MIB
    base = Path(tempfile.mkdtemp(prefix="cgibox-bench-writes-"))
    base.chmod(0o755)  # nginx's workers (nobody) reach the root through it
    results: dict[str, dict[str, float] | str] = {}
    try:
        for kind in ("cgibox", "nginx"):
            if kind == "nginx" and _which("nginx") is None:
                results["upload-nginx"] = "nginx is not installed"
                continue
            root, work = base / kind / "www", base / kind / "work"
            root.mkdir(parents=True)
            work.mkdir(parents=True)
            root.parent.chmod(0o755)
            process, port = (start_cgibox if kind == "cgibox" else start_nginx)(root, work)
            try:
                results[f"upload-{kind}"] = upload_cell(port, process.pid, total)
                if kind == "cgibox":
                    folder = root / "zip-me"
                    folder.mkdir()
                    for index in range(max(1, total // (64 * MIB))):
                        with open(folder / f"part-{index:02d}.bin", "wb") as out:
                            for _ in range(min(64, args.total_mib)):
                                out.write(BLOCK)
                    results["zip-cgibox"] = zip_cell(port, process.pid, "zip-me", total)
            finally:
                stop(process)
            shutil.rmtree(root, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    upload, peer = results.get("upload-cgibox"), results.get("upload-nginx")
    for key, value in results.items():
        if isinstance(value, dict):
            print(f"{key:15} {value['mb_s']:8.1f} MB/s  {value['seconds']:6.1f} s  "
                  f"RSS +{value['rss_growth_mb']:.1f} MB")
        else:
            print(f"{key:15} {value}")
    if isinstance(upload, dict) and isinstance(peer, dict):
        print(f"upload: cgibox {upload['mb_s'] / peer['mb_s']:.2f}x nginx's dav module (target >= 0.8x, "
              f"RSS growth < 50 MB)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {"total_bytes": total, "clients": CLIENTS, "cells": results}
        args.json.write_text(json.dumps(document, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
