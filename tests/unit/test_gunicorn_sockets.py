"""fronts/gunicorn_sockets.py on socket pairs: the core's body readers over gunicorn's parser
buffer (pipelined bytes kept, --body-timeout), HeadWatch's limits, and a close that never waits."""

from __future__ import annotations

import socket
import time

import pytest
from gunicorn.http.unreader import SocketUnreader

from cgibox.core import connection, wire
from cgibox.core.errors import BodyTimeout, HTTPError
from cgibox.core.request import Headers
from cgibox.fronts.gunicorn_sockets import Closer, HeadWatch, UnreaderSource


class FakeRequest:
    def __init__(self, headers: list[tuple[str, str]], unreader: SocketUnreader) -> None:
        self.headers = headers
        self.unreader = unreader


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_chunked_body_leaves_the_next_request_in_gunicorns_buffer(pair):
    ours, theirs = pair
    unreader = SocketUnreader(ours)
    unreader.unread(b"5\r\nhel")  # what gunicorn's head parse read past the head
    theirs.sendall(b"lo\r\n0\r\n\r\nGET /next HTTP/1.1\r\n")
    reader, length = wire.body_reader(Headers([("TRANSFER-ENCODING", "chunked")]),
                                      UnreaderSource(unreader, ours, 5.0), 1000)
    assert length is None
    assert b"".join(iter(lambda: reader.read(3), b"")) == b"hello"
    assert reader.finished
    assert unreader.read() == b"GET /next HTTP/1.1\r\n"


def test_hundred_digit_chunk_size_does_not_wait(pair):
    ours, theirs = pair
    unreader = SocketUnreader(ours)
    theirs.sendall(b"1" * 100 + b"\r\nabc")
    reader, _ = wire.body_reader(Headers([("Transfer-Encoding", "chunked")]),
                                 UnreaderSource(unreader, ours, 30.0), 1000)
    with pytest.raises(HTTPError) as raised:
        reader.read(10)
    assert raised.value.status in (400, 413) and raised.value.close_connection


def test_silent_body_is_body_timeout(pair):
    ours, theirs = pair
    theirs.sendall(b"x" * 10)
    reader, _ = wire.body_reader(Headers([("Content-Length", "100")]),
                                 UnreaderSource(SocketUnreader(ours), ours, 0.2), 1000)
    assert reader.read(100) == b"x" * 10
    with pytest.raises(BodyTimeout) as raised:
        reader.read(90)
    assert raised.value.status == 408 and raised.value.close_connection
    assert ours.gettimeout() is None  # the socket is left as it was


def test_head_watch_refuses_at_the_limit():
    watch = HeadWatch(1000)
    assert watch.feed(b"GET / HTTP/1.1\r\nHost: x\r\n") is connection.NEED_DATA
    event = watch.feed(b"".join(b"X-F%d: %s\r\n" % (i, b"a" * 7000) for i in range(10)))
    assert isinstance(event, connection.EarlyError) and event.status == 431
    assert watch.seen.startswith(b"GET / HTTP/1.1")


def test_head_watch_complete_head():
    watch = HeadWatch(1000)
    event = watch.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody")
    assert isinstance(event, connection.RequestHead) and watch.done


def test_close_never_waits_for_the_peer(pair):
    ours, theirs = pair
    closer = Closer()
    started = time.monotonic()
    closer.close_graceful(ours)  # the peer keeps its side open
    assert time.monotonic() - started < 0.5
    theirs.settimeout(5)
    assert theirs.recv(10) == b""  # our FIN arrived
    assert closer.lingering == 1
    theirs.close()
    deadline = time.monotonic() + 5
    while closer.lingering and time.monotonic() < deadline:
        time.sleep(0.02)
    assert closer.lingering == 0  # closed once the peer closed
