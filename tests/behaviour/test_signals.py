"""SIGTERM / SIGINT on every front: stop accepting, finish what is in flight, exit 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from tests.behaviour.site_static import BIG_SIZE
from tests.servers import ALL_FRONTS, STARTUP, cgibox_command


def refuses_connections(server, timeout: float = 5.0) -> bool:
    """True once a new connection is refused (the listening socket is closed everywhere)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((server.host, server.port), timeout=2).close()
        except OSError:
            return True
        time.sleep(0.1)
    return False


def timed_stop(server, sig: int = signal.SIGTERM) -> tuple[int, float]:
    started = time.monotonic()
    code = server.stop(sig)
    return code, time.monotonic() - started


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_idle_server_exits_0_at_once(make_server, sig):
    server = make_server()
    assert server.get("/healthz").status == 200
    code, elapsed = timed_stop(server, sig)
    assert code == 0
    assert elapsed < 5, f"an idle server took {elapsed:.1f} s to stop"


def test_idle_keep_alive_connection_does_not_delay_the_stop(make_server):
    """An idle keep-alive connection is not a request in flight: it is closed, not waited for."""
    server = make_server()
    conn = server.connection()
    try:
        conn.request("GET", "/hello.txt")
        conn.getresponse().read()
        code, elapsed = timed_stop(server)
    finally:
        conn.close()
    assert code == 0
    assert elapsed < 5, f"stopping took {elapsed:.1f} s (graceful timeout is 10 s)"


def start_slow_download(server) -> tuple[socket.socket, bytes]:
    """A connection with /big.bin in flight: the client has read only the first bytes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)  # keep the rest on the server
    sock.settimeout(20)
    sock.connect((server.host, server.port))
    sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    received = sock.recv(16 * 1024)
    assert received.startswith(b"HTTP/1.1 200")
    time.sleep(0.3)
    return sock, received


def finish_download(sock: socket.socket, received: bytes) -> int:
    """Read the rest of /big.bin; the number of body bytes received in all."""
    head, _, body = received.partition(b"\r\n\r\n")
    assert f"content-length: {BIG_SIZE}".encode() in head.lower()
    total = len(body)
    deadline = time.monotonic() + 20
    while total < BIG_SIZE and time.monotonic() < deadline:
        chunk = sock.recv(1024 * 1024)
        if not chunk:
            break
        total += len(chunk)
    return total


def test_in_flight_response_completes(make_server):
    """A 16 MiB file read slowly is still in flight when SIGTERM arrives: it completes and the
    process exits 0."""
    server = make_server()
    sock, received = start_slow_download(server)
    try:
        server.process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert server.alive(), "the server exited with a response in flight"
        total = finish_download(sock, received)
        assert total == BIG_SIZE, f"the response was cut at {total} of {BIG_SIZE} bytes"
    finally:
        sock.close()
    assert server.process.wait(15) == 0


def test_stops_accepting_while_finishing(make_server):
    """Between SIGTERM and the end of the last response, new connections are refused (not
    left in a backlog nobody accepts from)."""
    server = make_server()
    sock, received = start_slow_download(server)
    try:
        server.process.send_signal(signal.SIGTERM)
        refused = refuses_connections(server)
        total = finish_download(sock, received)
    finally:
        sock.close()
    assert refused, "new connections were still accepted 5 s after SIGTERM, a response in flight"
    assert total == BIG_SIZE
    assert server.process.wait(15) == 0


def test_graceful_timeout_bounds_the_wait(make_server):
    """A client that never reads keeps its response in flight: the server gives up after
    --graceful-timeout and still exits 0."""
    server = make_server(["--graceful-timeout", "1"])
    sock, _ = start_slow_download(server)
    try:
        code, elapsed = timed_stop(server)
    finally:
        sock.close()
    assert code == 0
    assert elapsed < 8, f"stopping took {elapsed:.1f} s with --graceful-timeout 1"


# Every os.fork() in the server is followed, in the child, by a second's sleep: the window between
# a serving process's fork and its own signal handlers, made wide enough to land a signal in.
SLOW_CHILD = """
import os, time
_fork = os.fork
def fork():
    pid = _fork()
    if pid == 0:
        time.sleep(1.0)
    return pid
os.fork = fork
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_while_serving_processes_start_is_not_lost(front, site_dirs, tmp_path, sig):
    """A signal that reaches a serving process before its handlers are set waits for them: it is
    not run by the parent's handler in the child's copy and lost. The graceful timeout is long, so
    a lost signal shows as a stop that does not come."""
    extra = {"threading": ["--processes", "2"], "forking": []}.get(front, [])
    (tmp_path / "sitecustomize.py").write_text(SLOW_CHILD)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CGIBOX_")},
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    root, cgi_dir = site_dirs
    out = tmp_path / "out"
    with open(out, "wb") as log:
        process = subprocess.Popen(
            cgibox_command(*ALL_FRONTS[front], "--host", "127.0.0.1", "--port", "0", "--root", str(root),
                           "--cgi-dir", str(cgi_dir), "--graceful-timeout", "120", *extra),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not STARTUP.search(out.read_text("utf-8", "replace")):
            assert process.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.02)
        process.send_signal(sig)  # the serving processes are in their first second
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_scripts_start_with_no_signal_blocked(make_server, tmp_path):
    """Serving processes are forked with the stop signals blocked until their handlers are set;
    a script inherits the mask of the thread that starts it, so none may be left blocked there."""
    cgi_dir = tmp_path / "cgi"
    cgi_dir.mkdir()
    script = cgi_dir / "mask"
    script.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n"
                      "grep '^SigBlk' /proc/self/status\n")
    script.chmod(0o755)
    server = make_server(cgi_dir=cgi_dir)
    for _ in range(3):  # on the forking front, more than one child
        reply = server.get("/cgi-bin/mask")
        assert reply.status == 200
        assert reply.text.split() == ["SigBlk:", "0" * 16]
