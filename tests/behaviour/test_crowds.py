"""Crowds beside ordinary clients, on every front each applies to: thousands of idle connections
then a burst of new clients, slow heads, hundreds of connections timing out at once, stalled TLS
requests, and a child killed in the middle of a request. Timeouts are long (60 s) where nothing
should wait for one, so a pass proves nothing did; every crowd is bounded in count and time."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time

import pytest

from tests.behaviour.site_cgi import outside_of, tag, wait_for_file
from tests.behaviour.test_connection_engine import (
    HELLO,
    HELLO_BODY,
    LONG,
    exchange_on_all,
    needs_keep_alive,
    open_idle,
)
from tests.behaviour.test_tls import client_context, make_pair
from tests.raw_clients import close_all, connect, raise_open_files
from tests.servers import read_from, start_server

HTTP_SERVER_FRONTS = ("threading", "forking")


@pytest.fixture(autouse=True, scope="module")
def enough_open_files():
    """Two thousand client sockets and more in this process."""
    yield from raise_open_files(8192, 3000)


def only_http_server_fronts(front: str, why: str) -> None:
    if front not in HTTP_SERVER_FRONTS:
        pytest.skip(why)


def test_2000_idle_connections_then_a_burst_of_200_new_clients(make_server, front):
    needs_keep_alive(front)
    server = make_server(LONG)
    idle = open_idle(server, 2000)
    try:
        burst = [connect(server) for _ in range(200)]
        try:
            replies = exchange_on_all(burst, HELLO)
            assert sum(1 for r in replies if r.startswith(b"HTTP/1.1 200") and r.endswith(HELLO_BODY)) == 200
        finally:
            close_all(burst)
        again = exchange_on_all(idle[:50], HELLO)
        assert all(r.endswith(HELLO_BODY) for r in again)
    finally:
        close_all(idle)
    assert server.get("/healthz").status == 200


def test_300_slow_heads_beside_ordinary_clients(make_server, front):
    only_http_server_fronts(front, "gunicorn reads a head that has started arriving in a worker "
                                   "(fronts/gunicorn_app.py's, issue 19 point 4)")
    server = make_server(LONG)
    slow = [connect(server) for _ in range(300)]
    try:
        for sock in slow:
            sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n")  # the head never ends (yet)
        time.sleep(0.5)
        for _ in range(30):
            reply = server.request("GET", "/hello.txt", timeout=60)
            assert reply.status == 200 and reply.body == HELLO_BODY
        replies = exchange_on_all(slow, b"\r\n")  # now each head ends
        assert all(r.startswith(b"HTTP/1.1 200") and r.endswith(HELLO_BODY) for r in replies)
    finally:
        close_all(slow)


def test_500_connections_timing_out_at_once_beside_ordinary_clients(make_server, front):
    """Each gets its 408 (written by the loop, no handler) while others are answered."""
    only_http_server_fronts(front, "gunicorn's head deadline is fronts/gunicorn_app.py's")
    server = make_server(["--header-timeout", "2", "--keepalive-timeout", "60"])
    silent = [connect(server) for _ in range(500)]
    try:
        answered = 0
        deadline = time.monotonic() + 4  # across the moment all 500 time out
        while time.monotonic() < deadline:
            reply = server.request("GET", "/hello.txt", timeout=60)
            assert reply.status == 200 and reply.body == HELLO_BODY
            answered += 1
        assert answered > 0
        timed_out = 0
        for sock in silent:
            data, closed = read_from(sock, timeout=60)
            timed_out += data.startswith(b"HTTP/1.1 408") and closed
        assert timed_out == 500
    finally:
        close_all(silent)


def test_stalled_tls_requests_beside_other_https_clients(front, site_dirs, tmp_path):
    """--threads 2 and eight HTTPS connections whose next head starts and stalls: other HTTPS
    clients are answered at once (the stalled ones wait in the loop, not in a handler)."""
    only_http_server_fronts(front, "gunicorn reads a head that has started arriving in a worker")
    cert, key = make_pair(tmp_path)
    root, cgi_dir = site_dirs
    server = start_server(front, root, cgi_dir, tmp_path / "logs",
                          ["--tls-cert", str(cert), "--tls-key", str(key), "--threads", "2", *LONG])
    context = client_context(cert)
    stalled: list[ssl.SSLSocket] = []
    try:
        for _ in range(8):
            sock = context.wrap_socket(socket.create_connection((server.host, server.port), timeout=60),
                                       server_hostname="localhost")
            sock.sendall(HELLO)
            answer, _ = read_from(sock, until=HELLO_BODY, timeout=60)
            assert answer.startswith(b"HTTP/1.1 200")
            sock.sendall(b"GET /hello.txt HTTP/1.1\r\n")  # the next head starts, then stalls
            stalled.append(sock)
        time.sleep(0.5)
        for _ in range(5):
            with context.wrap_socket(socket.create_connection((server.host, server.port), timeout=60),
                                     server_hostname="localhost") as sock:
                sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer, closed = read_from(sock, timeout=30)  # well before the stalled ones' 60 s
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(HELLO_BODY) and closed
    finally:
        for sock in stalled:
            sock.close()
        server.stop()


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def children_of(pid: int) -> list[int]:
    return [int(child) for task in os.listdir(f"/proc/{pid}/task")
            for child in open(f"/proc/{pid}/task/{task}/children").read().split()]


def test_a_killed_template_process_is_replaced(make_server, front):
    """The forking front's template (the small process that forks children ahead) is killed:
    the loop forks another, so children keep coming after the ones already made have exited
    (--max-requests 1: each child answers one request; before, the server stopped answering)."""
    if front != "forking":
        pytest.skip("the forking front's template process")
    server = make_server([*LONG, "--threads", "2", "--max-requests", "1"])
    reply = server.request("GET", "/hello.txt", timeout=60)
    assert reply.status == 200
    (template,) = children_of(server.process.pid)
    os.kill(template, signal.SIGKILL)
    for _ in range(8):
        reply = server.request("GET", "/hello.txt", timeout=60)
        assert reply.status == 200 and reply.body == HELLO_BODY
    assert server.alive()
    (replacement,) = children_of(server.process.pid)
    assert replacement != template
    assert "template process exited; starting another" in server.errors()


def test_a_child_killed_mid_request(make_server, front):
    """The child answering a script's request is killed: that connection is closed; the server
    and other clients carry on (a fresh child takes the slot)."""
    if front != "forking":
        pytest.skip("the forking front's children; a serving process killed is test_connection_engine's")
    server = make_server([*LONG, "--threads", "2"])
    name = tag("gate")
    with connect(server) as sock:
        sock.sendall(f"GET /cgi-bin/gate?{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        first, _ = read_from(sock, until=b"first\n", timeout=30)
        assert b"first\n" in first
        script = int(wait_for_file(outside_of(server.cgi_dir) / f"{name}.pid").strip())
        child = parent_of(script)
        assert child not in (server.process.pid, os.getpid())
        os.kill(child, signal.SIGKILL)
        rest, closed = read_from(sock, timeout=30)
        assert closed and b"second" not in rest
    (outside_of(server.cgi_dir) / f"{name}.go").touch()  # the orphaned script ends itself
    for _ in range(10):
        reply = server.request("GET", "/hello.txt", timeout=60)
        assert reply.status == 200 and reply.body == HELLO_BODY
    assert server.alive()
    assert f"child {child} ended" in server.errors()
