"""The servers under test: which ones (SERVERS), the command each is started with, starting one on a
free 127.0.0.1 port and waiting for its first answer, stopping its whole process group, and one
plain GET to it (`fetch_framed`)."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import REPO, connections, peers
from bench.cells import SMALL_FILE
from bench.certs import TlsPair
from bench.cpu import CORES

START_TIMEOUT = 30.0  # seconds a server has to answer its first request
STOP_TIMEOUT = 15.0  # seconds between SIGTERM and SIGKILL of a server's process group
PROBE_TIMEOUT = 30.0


@dataclass(frozen=True)
class ServerSpec:
    key: str
    label: str
    kind: str  # "cgibox", or a peer: "http.server", "nginx", "lighttpd", "twisted", "uvicorn", …
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
    ServerSpec("uvicorn", "uvicorn + Starlette", "uvicorn"),
    ServerSpec("aiohttp", "aiohttp", "aiohttp"),
    ServerSpec("granian", "granian", "granian"),
    ServerSpec("threading", "cgibox threading", "cgibox", ("--front", "threading")),
    ServerSpec("forking", "cgibox forking", "cgibox", ("--front", "forking")),
    ServerSpec("gunicorn-gthread", "cgibox gunicorn gthread", "cgibox",
               ("--front", "gunicorn", "--worker-class", "gthread", "--workers", "{workers}")),
    ServerSpec("gunicorn-sync", "cgibox gunicorn sync", "cgibox",
               ("--front", "gunicorn", "--worker-class", "sync", "--workers", "{workers}")),
)


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


class NotAvailable(Exception):
    """A server did not start or never answered."""


class Refused(NotAvailable):
    """The server refused its command line (cgibox's exit status 2), e.g. --tls-cert on a front
    that has no TLS yet."""


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
    tls_client: ssl.SSLContext | None = None  # trusts its certificate, when it serves HTTPS

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_client else 'http'}://127.0.0.1:{self.port}"

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
                   flags: frozenset[str], tls: TlsPair | None = None) -> list[str]:
    if not spec.is_cgibox:
        return peers.command(spec.kind, root, port, work, CORES, tls)
    tls_args = ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)] if tls else []
    return [sys.executable, "-m", "cgibox", *spec.cgibox_args(workers, flags), *tls_args, "--host",
            "127.0.0.1", "--port", str(port), "--root", str(root), "--cgi-dir", str(root / "cgi-bin")]


def start_server(spec: ServerSpec, root: Path, logs: Path, workers: int,
                 flags: frozenset[str] = frozenset(), tls: TlsPair | None = None) -> Running:
    """Start a server (serving HTTPS with `tls`) and wait for its first answer; records how long
    that took (`first_response_s`)."""
    why = peers.missing(spec.kind, tls is not None) if not spec.is_cgibox else None
    if why:
        raise NotAvailable(why)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CGIBOX_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "app"), env.get("PYTHONPATH")]))
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"  # http.server --cgi warns on 3.13+
    name = f"{spec.key}-tls" if tls else spec.key
    out_path, err_path = logs / f"{name}.out", logs / f"{name}.err"
    command = server_command(spec, root, port, workers, logs / name, flags, tls)
    # access logs go to /dev/null for every server but twisted: cgibox's and http.server's are their
    # stdout and stderr (http.server has no other), nginx's and lighttpd's are configured so; twistd's
    # goes to a file of the run (see peers.py: it renames its log file to rotate it); uvicorn, aiohttp
    # and granian write none
    err_target = os.devnull if spec.kind == "http.server" else err_path
    with open(os.devnull, "wb") as out, open(err_target, "wb") as err:
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO,
                                   env=env, start_new_session=True)
    err_path.touch()
    running = Running(spec, process, port, out_path, err_path,
                      tls_client=tls.client_context() if tls else None)
    probe_path = "/healthz" if spec.is_cgibox else f"/{SMALL_FILE}"
    deadline = started + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                failed = Refused if spec.is_cgibox and process.returncode == 2 else NotAvailable
                raise failed(f"exited with status {process.returncode}: {running.tail()}")
            try:
                status, _ = fetch(port, probe_path, timeout=2.0, tls=running.tls_client)
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


def fetch(port: int, path: str, timeout: float = PROBE_TIMEOUT,
          tls: ssl.SSLContext | None = None) -> tuple[int, int]:
    """One GET on a fresh connection: (status, body length)."""
    status, length, _ = fetch_framed(port, path, timeout, tls=tls)
    return status, length


def fetch_framed(port: int, path: str, timeout: float = PROBE_TIMEOUT, headers: dict[str, str] | None = None,
                 tls: ssl.SSLContext | None = None) -> tuple[int, int, str]:
    """One GET on a fresh connection (over TLS with `tls`): (status, body length as sent, framing:
    length | chunked | close)."""
    conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=tls) if tls
            else http.client.HTTPConnection("127.0.0.1", port, timeout=timeout))
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
