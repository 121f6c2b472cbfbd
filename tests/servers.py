"""Start the real `cgibox` command on an ephemeral port and talk to it (used by every suite)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# CGIBOX_TEST_PARSER=hand: servers start without httptools (this folder's stand-in goes first on
# PYTHONPATH), so the suites run on the hand parser alone as well as with llhttp in front
HAND_PARSER_PATH = REPO / "tests" / "hand_parser"


def parser_env(environ: dict[str, str]) -> dict[str, str]:
    """`environ` with PYTHONPATH set so that cgibox runs the parser CGIBOX_TEST_PARSER names."""
    wanted = os.environ.get("CGIBOX_TEST_PARSER", "")
    if wanted not in ("", "hand"):
        raise ValueError(f"CGIBOX_TEST_PARSER is 'hand' or unset, not {wanted!r}")
    if wanted == "hand":
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HAND_PARSER_PATH),
                                                              environ.get("PYTHONPATH")]))
    return environ
STARTUP = re.compile(r"^cgibox \S+ \((\w+)\) serving .* on (https?://\S+)/$", re.M)

# every front the behaviour suite runs on: (test id, cgibox flags)
ALL_FRONTS = {
    "threading": ["--front", "threading"],
    "forking": ["--front", "forking"],
    "gunicorn-gthread": ["--front", "gunicorn", "--worker-class", "gthread", "--workers", "2"],
    "gunicorn-sync": ["--front", "gunicorn", "--worker-class", "sync", "--workers", "2"],
}


def selected_fronts() -> list[str]:
    """CGIBOX_TEST_FRONTS=threading,forking narrows the run while working on one front."""
    wanted = os.environ.get("CGIBOX_TEST_FRONTS")
    if not wanted:
        return list(ALL_FRONTS)
    return [name for name in wanted.split(",") if name in ALL_FRONTS]


@dataclass
class Reply:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Server:
    """A running cgibox process."""

    front: str
    process: subprocess.Popen
    host: str
    port: int
    log_path: Path
    err_path: Path
    root: Path
    cgi_dir: Path
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connection(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None, timeout: float = 10.0) -> Reply:
        """One request on a fresh connection."""
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return Reply(resp.status, resp.reason, resp.headers, data)
        finally:
            conn.close()

    def get(self, path: str, **headers: str) -> Reply:
        return self.request("GET", path, {k.replace("_", "-"): v for k, v in headers.items()})

    def raw(self, data: bytes, timeout: float = 10.0, read_until_close: bool = True) -> bytes:
        """Send bytes as they are and return everything the server sends until it closes (or,
        with read_until_close=False, the first bytes it sends)."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(data)
            if not read_until_close:
                return read_from(sock, until=b"", timeout=timeout)[0]
            return read_from(sock, timeout=timeout)[0]

    def stats(self) -> dict:
        return self.get("/stats?format=json").json()

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def errors(self) -> str:
        return self.err_path.read_text("utf-8", "replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def read_from(sock: socket.socket, until: bytes | None = None, data: bytes = b"",
              timeout: float = 10.0) -> tuple[bytes, bool]:
    """Read until `until` has arrived (b"": any bytes at all; None: until the peer closes) or
    `timeout` passes. Returns what was read after `data`, and whether the peer closed (or reset)."""
    deadline = time.monotonic() + timeout
    while until is None or until not in data or (until == b"" and not data):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return data, False
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def cgibox_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cgibox", *args]


def start_server(front: str, root: Path, cgi_dir: Path, tmp: Path, extra: list[str] | None = None,
                 env: dict[str, str] | None = None, host: str = "127.0.0.1",
                 timeout: float = 30.0, prefix: list[str] | None = None) -> Server:
    """Run `cgibox` for `front` on port 0 and wait for its start-up line."""
    tmp.mkdir(parents=True, exist_ok=True)
    stamp = f"{front}-{time.monotonic_ns()}"
    log_path, err_path = tmp / f"{stamp}.out", tmp / f"{stamp}.err"
    args = [*ALL_FRONTS[front], "--host", host, "--port", "0", "--root", str(root),
            "--cgi-dir", str(cgi_dir), *(extra or [])]
    child_env = parser_env({k: v for k, v in os.environ.items() if not k.startswith("CGIBOX_")})
    child_env.update(env or {})
    with open(log_path, "wb") as out, open(err_path, "wb") as err:
        # `prefix`: a command to run cgibox under (e.g. setpriv, to serve as another user)
        process = subprocess.Popen([*(prefix or []), *cgibox_command(*args)], stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL, env=child_env, cwd=REPO, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = STARTUP.search(log_path.read_text("utf-8", "replace"))
        if match:
            url = match.group(2)
            port = int(url.rsplit(":", 1)[1])
            connect_host = "::1" if ":" in host else host
            if host in ("0.0.0.0",):
                connect_host = "127.0.0.1"
            if host == "::":
                connect_host = "::1"
            server = Server(front, process, connect_host, port, log_path, err_path, root, cgi_dir, args)
            if url.startswith("https:"):
                _wait_listening(server, deadline)  # plain-HTTP /healthz cannot answer there
                return server
            _wait_healthy(server, deadline)
            return server
        if process.poll() is not None:
            raise RuntimeError(f"cgibox exited with {process.returncode}: {err_path.read_text()}")
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"cgibox printed no start-up line in {timeout} s: {err_path.read_text()}")


def serving(front: str, site_dirs: tuple[Path, Path], tmp: Path,
            extra: list[str] | None = None) -> Iterator[Server]:
    """For a module-scoped fixture: `yield from serving(...)` runs one server for the module."""
    root, cgi_dir = site_dirs
    running = start_server(front, root, cgi_dir, tmp, extra)
    try:
        yield running
    finally:
        running.stop()


def _wait_listening(server: Server, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection((server.host, server.port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("cgibox never accepted a connection")


def _wait_healthy(server: Server, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if server.get("/healthz").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("cgibox never answered /healthz")
