"""The connection engine under load, on every front each point applies to: hundreds of idle and
slow connections cost no handler, pipelining survives a connection changing hands, a graceful stop
with hundreds parked, --max-connections, --processes. Timeouts are set long (60 s) so that a pass
proves nothing waited for one; no test measures speed."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import time
from pathlib import Path

import pytest

from tests.raw_clients import close_all, connect, raise_open_files, read_all
from tests.servers import read_from

LONG = ["--header-timeout", "60", "--keepalive-timeout", "60"]
HELLO = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
HELLO_BODY = b"hello, world\n"


@pytest.fixture(autouse=True, scope="module")
def enough_open_files():
    """Hundreds of client sockets in this process."""
    yield from raise_open_files(4096, 1500)


def needs_keep_alive(front: str) -> None:
    if front == "gunicorn-sync":
        pytest.skip("gunicorn's sync worker closes every connection after one response (no keep-alive)")


def exchange_on_all(socks: list[socket.socket], request: bytes, timeout: float = 60.0) -> list[bytes]:
    """Send `request` on every socket, then read until each holds a whole /hello.txt answer."""
    for sock in socks:
        sock.sendall(request)
    received = read_all(socks, HELLO_BODY, timeout)
    return [received[sock] for sock in socks]


def open_idle(server, count: int) -> list[socket.socket]:
    """`count` keep-alive connections, each having made one request, now idle."""
    socks = [connect(server) for _ in range(count)]
    replies = exchange_on_all(socks, HELLO)
    assert all(r.startswith(b"HTTP/1.1 200") and r.endswith(HELLO_BODY) for r in replies), \
        sum(1 for r in replies if not r.endswith(HELLO_BODY))
    return socks


def test_500_idle_keep_alive_connections_then_a_new_client(make_server, front):
    needs_keep_alive(front)
    server = make_server(LONG)
    idle = open_idle(server, 500)
    try:
        reply = server.request("GET", "/hello.txt", timeout=30)
        assert reply.status == 200 and reply.body == HELLO_BODY
        # and the idle ones are still there, usable
        again = exchange_on_all(idle[:20], HELLO)
        assert all(r.endswith(HELLO_BODY) for r in again)
    finally:
        close_all(idle)


def test_200_slow_heads_while_others_are_served(make_server, front):
    server = make_server(LONG)
    slow = [connect(server) for _ in range(200)]
    try:
        for sock in slow:
            sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHo")  # and never the rest
        for _ in range(20):
            reply = server.request("GET", "/hello.txt", timeout=30)
            assert reply.status == 200 and reply.body == HELLO_BODY
        # a slow one that finishes its head at last is answered too
        slow[0].sendall(b"st: x\r\nConnection: close\r\n\r\n")
        data, closed = read_from(slow[0], timeout=30)
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(HELLO_BODY) and closed
    finally:
        close_all(slow)


def test_pipelined_requests_across_the_hand_back(make_server, front):
    """A whole request, a body, and half of a third in one write: the half must survive the
    connection going back to the loop (forking: from the child to the parent) and be completed."""
    needs_keep_alive(front)
    server = make_server(LONG)
    with connect(server) as sock:
        sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"POST /cgi-bin/dump HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde"
                     b"GET /hello.txt HTTP/1.1\r\nHo")
        data, _ = read_from(sock, until=b'"stdin": "abcde"', timeout=30)
        data, _ = read_from(sock, until=b"}", data=data, timeout=30)
        data, _ = read_from(sock, until=b"\r\n0\r\n\r\n", data=data, timeout=30)
        assert data.startswith(b"HTTP/1.1 200") and data.count(b"HTTP/1.1 200") == 2
        assert b"Connection: close" not in data
        time.sleep(0.5)  # the connection is parked (the forking child has exited) with half a head
        sock.sendall(b"st: x\r\nConnection: close\r\n\r\n")
        rest, closed = read_from(sock, data=b"", timeout=30)
    assert rest.startswith(b"HTTP/1.1 200") and rest.endswith(HELLO_BODY) and closed


PPID_SCRIPT = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s\\n' \"$PPID\"\n"
# holds its --cgi-max slot until a file named "go" appears beside it (at most 20 s)
HOLD_SCRIPT = """#!/bin/sh
printf 'Content-Type: text/plain\\n\\nheld\\n'
i=0
while [ ! -e go ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
"""


@pytest.fixture
def ppid_cgi(tmp_path) -> Path:
    """A cgi-bin whose `ppid` script answers the pid of the process that ran it."""
    cgi_dir = tmp_path / "cgi-bin"
    cgi_dir.mkdir()
    for name, text in (("ppid", PPID_SCRIPT), ("hold", HOLD_SCRIPT)):
        script = cgi_dir / name
        script.write_text(text)
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return cgi_dir


def test_keep_alive_across_a_forked_child_exit(make_server, front, ppid_cgi):
    """On the forking front a connection goes from the loop to a child forked ahead and back
    each busy spell, and a child exits after --max-requests (a fresh one takes its place): the
    connection still carries request after request, none answered by the loop's process."""
    needs_keep_alive(front)
    server = make_server([*LONG, "--max-requests", "2"], cgi_dir=ppid_cgi)
    runners = []
    with connect(server) as sock:
        for _ in range(6):
            sock.sendall(b"GET /cgi-bin/ppid HTTP/1.1\r\nHost: x\r\n\r\n")
            data, closed = read_from(sock, until=b"\r\n0\r\n\r\n", timeout=30)
            assert data.startswith(b"HTTP/1.1 200") and not closed, data[:200]
            runners.append(int(re.search(rb"\r\n\r\n[0-9a-f]+\r\n(\d+)\n", data).group(1)))
            time.sleep(0.3)  # idle: the child hands the connection back
    if front == "forking":
        assert len(set(runners)) >= 3, runners
        assert max(runners.count(pid) for pid in runners) <= 2, runners
        assert server.process.pid not in runners


def test_graceful_stop_with_500_parked_connections(make_server, front):
    needs_keep_alive(front)
    server = make_server([*LONG, "--graceful-timeout", "60"])
    idle = open_idle(server, 500)
    try:
        ready = idle[0]
        ready.sendall(HELLO)  # a complete head, sent before the signal
        time.sleep(0.2)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        data, closed = read_from(ready, timeout=30)
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(HELLO_BODY), data[:200]
        assert server.process.wait(30) == 0
        # parked connections were closed, not waited for: far less than --graceful-timeout
        assert time.monotonic() - started < 30
        for sock in idle[1:]:
            _, closed = read_from(sock, timeout=10)
            assert closed
    finally:
        close_all(idle)


def test_max_connections_50_with_60_clients(make_server, front):
    """Past --max-connections the server stops accepting; the rest wait (none is dropped) and
    are answered as soon as connections close."""
    needs_keep_alive(front)
    extra = [*LONG, "--max-connections", "50"]
    # the limit is per process: one serving process (gunicorn: one worker)
    if front.startswith("gunicorn"):
        extra += ["--workers", "1", "--threads", "4"]
    elif front == "threading":
        extra += ["--processes", "1"]
    server = make_server(extra)
    socks = [connect(server) for _ in range(60)]
    try:
        for sock in socks:
            sock.sendall(HELLO)
        received = {sock: b"" for sock in socks}

        def answered() -> list[socket.socket]:
            return [s for s in socks if received[s].endswith(HELLO_BODY)]

        def read_some(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                for sock in socks:
                    if received[sock].endswith(HELLO_BODY):
                        continue
                    sock.settimeout(0.01)
                    try:
                        received[sock] += sock.recv(65536)
                    except (TimeoutError, BlockingIOError):
                        pass
                if len(answered()) == len(socks):
                    return

        deadline = time.monotonic() + 60
        while len(answered()) < 50 and time.monotonic() < deadline:
            read_some(0.5)
        read_some(1.0)  # had the limit not held, the others would be answered meanwhile
        done = answered()
        assert len(done) == 50, len(done)
        for sock in done[:10]:
            sock.close()
            socks.remove(sock)
        deadline = time.monotonic() + 60
        while len(answered()) < len(socks) and time.monotonic() < deadline:
            read_some(0.5)
        assert len(answered()) == 50 == len(socks)
    finally:
        close_all(socks)


def test_processes_2_count_together(make_server, front, ppid_cgi):
    if front != "threading":
        pytest.skip("--processes is the threading front's (forking runs requests in children forked ahead; "
                    "gunicorn has --workers)")
    server = make_server(["--processes", "2", "--cgi-max", "1"], cgi_dir=ppid_cgi)
    before = server.stats()["requests_total"]
    serving = set()
    made = 0
    while len(serving) < 2 and made < 400:
        reply = server.request("GET", "/cgi-bin/ppid")
        made += 1
        # the one --cgi-max slot is freed just after the previous response: it may still be held
        assert reply.status in (200, 503)
        if reply.status == 200:
            serving.add(int(reply.body))
    assert len(serving) == 2, "every request went to one serving process"
    assert server.process.pid not in serving  # the first process supervises, it does not serve
    # a request is counted just after its response: the last ones may need a moment
    for polls in range(50):
        counted = server.stats()["requests_total"] - before
        expected = made + 1 + polls  # the first /stats request, and the polls before this one
        assert counted <= expected
        if counted == expected:
            break
        time.sleep(0.1)
    assert counted == expected
    # the one --cgi-max slot, held by a script in one process, is busy for the other one too
    for _ in range(50):  # bounded: until the slot the last script held is free again
        holder = connect(server)
        holder.sendall(b"GET /cgi-bin/hold HTTP/1.1\r\nHost: x\r\n\r\n")
        held, _ = read_from(holder, until=b"\r\n\r\n", timeout=30)
        if held.startswith(b"HTTP/1.1 200"):
            break
        holder.close()
        time.sleep(0.1)
    with holder:
        held, _ = read_from(holder, until=b"held\n", data=held, timeout=30)
        assert held.startswith(b"HTTP/1.1 200") and b"held\n" in held
        statuses = {server.request("GET", "/cgi-bin/ppid").status for _ in range(20)}
        (ppid_cgi / "go").touch()
        rest, _ = read_from(holder, until=b"\r\n0\r\n\r\n", data=held, timeout=30)
        assert rest.endswith(b"\r\n0\r\n\r\n")
    assert statuses == {503}, statuses
    # a serving process that dies is replaced, and the server keeps answering
    victim = serving.pop()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while "starting another" not in server.errors() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"serving process {victim}" in server.errors()
    for _ in range(10):
        assert server.get("/healthz").status == 200
    assert server.stop() == 0


def test_a_connection_that_sends_nothing_gets_408(make_server):
    """Every front closes a silent new connection at --header-timeout with the core's 408 page
    (gunicorn's gthread worker alone would park it, quietly, for its keepalive timeout more)."""
    server = make_server(["--header-timeout", "1", "--keepalive-timeout", "60"])
    with connect(server) as sock:
        data, closed = read_from(sock, timeout=30)
    assert data.startswith(b"HTTP/1.1 408") and b"<html" in data and closed, data[:100]


def test_idle_connections_give_their_handler_back_for_waiting_ones(make_server, front):
    """With --threads 2 and two idle keep-alive connections (each has had an answer), a third
    connection's request is answered at once, long before any keep-alive timeout: a forked child
    waiting on an idle connection hands it back when a request needs its slot (and survives)."""
    needs_keep_alive(front)
    server = make_server([*LONG, "--threads", "2"])
    idle = open_idle(server, 2)
    try:
        for _ in range(3):
            reply = server.request("GET", "/hello.txt", timeout=30)
            assert reply.status == 200 and reply.body == HELLO_BODY
        again = exchange_on_all(idle, HELLO)
        assert all(r.endswith(HELLO_BODY) for r in again)
    finally:
        close_all(idle)


def occupy_the_only_handler(server) -> socket.socket:
    """A connection with /big.bin in flight that the client does not read: with --threads 1 its
    handler (thread or child) is blocked in a send until the client reads or IO_TIMEOUT (60 s)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(30)
    sock.connect((server.host, server.port))
    sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(16 * 1024).startswith(b"HTTP/1.1 200")
    time.sleep(0.3)
    return sock


def test_the_loop_answers_early_errors_while_every_handler_is_busy(make_server, front):
    """A bad head (400), a head that stops (408) and a body that stops (408) need no handler:
    the loop writes the core's answer itself, while the only handler is busy for a minute."""
    if front.startswith("gunicorn"):
        pytest.skip("gunicorn parses heads in its workers; the connection loop is the http.server fronts'")
    server = make_server(["--threads", "1", "--header-timeout", "1", "--body-timeout", "1",
                          "--keepalive-timeout", "60"])
    busy = occupy_the_only_handler(server)
    try:
        clients = [connect(server, timeout=30) for _ in range(3)]
        clients[0].sendall(b"NOT A REQUEST LINE\r\n\r\n")
        clients[1].sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        clients[2].sendall(b"POST /cgi-bin/dump HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nab")
        answers = [read_from(sock, timeout=20) for sock in clients]
        assert [data[:12] for data, _ in answers] == [b"HTTP/1.1 400", b"HTTP/1.1 408", b"HTTP/1.1 408"]
        assert all(closed for _, closed in answers)
        close_all(clients)
    finally:
        busy.close()
    assert server.get("/healthz").status == 200


def test_processes_2_split_a_burst_evenly(make_server, front, ppid_cgi):
    """32 connections opened at once, each kept: each serving process holds about half (an
    accept rule that reads the siblings' open connections), as a load generator's would."""
    if front != "threading":
        pytest.skip("--processes is the threading front's")
    server = make_server([*LONG, "--processes", "2", "--cgi-max", "32"], cgi_dir=ppid_cgi)
    socks = [connect(server) for _ in range(32)]
    try:
        for sock in socks:
            sock.sendall(b"GET /cgi-bin/ppid HTTP/1.1\r\nHost: x\r\n\r\n")
        replies = [read_from(sock, until=b"\r\n0\r\n\r\n", timeout=60)[0] for sock in socks]
        runners = [int(re.search(rb"\r\n\r\n[0-9a-f]+\r\n(\d+)\n", r).group(1)) for r in replies]
    finally:
        close_all(socks)
    counts = sorted(runners.count(pid) for pid in set(runners))
    assert len(counts) == 2 and counts[0] >= 13, counts
