"""core.connection fed the request corpus (tests/requests/{valid,invalid}/*.http, each with the
.json it must give) split at every byte position, and its keep-alive decisions. No sockets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cgibox.core import connection as conn_module
from cgibox.core import fast_head
from cgibox.core.connection import (
    BUSY,
    CLOSED_EVENT,
    IDLE,
    MUST_CLOSE,
    NEED_DATA,
    Connection,
    EarlyError,
    ProtocolStateError,
    RequestHead,
)
from cgibox.core.errors import HTTPError
from cgibox.core.response import Response
from tests.servers import parser_env
from tests.unit.test_cgi_runner import make_app

CORPUS = Path(__file__).resolve().parent.parent / "requests"
MAX_BODY = 1 << 20


def load(path: Path) -> bytes:
    """A corpus file: one wire line per text line, with \\r \\n \\t \\xNN escapes for the bytes."""
    text = path.read_text("ascii").replace("\n", "")
    return text.encode("ascii").decode("unicode_escape").encode("latin-1")


def corpus(kind: str) -> list[pytest.param]:
    files = sorted((CORPUS / kind).glob("*.http"))
    assert files, f"no corpus under {CORPUS / kind}"
    return [pytest.param(load(f), json.loads(f.with_suffix(".json").read_text()), id=f.stem) for f in files]


# every corpus test runs with the hand parser alone and with llhttp in front of it
PARSERS = [pytest.param(False, id="hand"),
           pytest.param(True, id="llhttp", marks=pytest.mark.skipif(
               not fast_head.AVAILABLE, reason="httptools is not installed"))]


@pytest.fixture(params=PARSERS)
def fast(request) -> bool:
    return request.param


def run(chunks: list[bytes], fast: bool = False) -> tuple[list[dict], int | None]:
    """Drive a Connection as a front does: feed chunks when it needs data (the body reads from the
    same chunks through `recv`), answer each request 200. Returns the requests and an early status."""
    pending = [chunk for chunk in chunks if chunk]  # b"" would mean the end of the stream
    connection = Connection(MAX_BODY, peer=("192.0.2.1", 4000), server=("localhost", 80), fast=fast)
    connection.recv = lambda: pending.pop(0) if pending else b""
    requests: list[dict] = []
    for _ in range(10_000):  # bounded: a corpus file is far shorter
        event = connection.next_event()
        if event is NEED_DATA:
            connection.receive_data(pending.pop(0) if pending else b"")
            continue
        if isinstance(event, RequestHead):
            request = event.request
            try:
                body = request.body.read()
            except HTTPError as error:  # a body the core refuses: the front answers it and closes
                return requests, error.status
            head, chunked = connection.start_response(
                Response(200, [("Content-Length", "0")]))
            keep, _ = connection.end_response(completed=True)
            requests.append({"method": request.method, "target": request.target,
                             "protocol": request.protocol, "headers": [list(h) for h in request.headers],
                             "body": body.decode("latin-1"), "keep_alive": keep})
            assert not chunked and head.startswith(b"HTTP/1.")
            assert (b"Connection: close" in head) is (not keep)
            if not keep:
                return requests, None
            continue
        if isinstance(event, EarlyError):
            connection.early_error_answered()
            return requests, event.status
        assert event is CLOSED_EVENT
        return requests, None
    raise AssertionError("the connection never settled")


def splits(data: bytes) -> range:
    """Every byte position, or a stride of them for the few big files (8 KiB lines, 64 KiB heads)."""
    return range(0, len(data) + 1, 1 if len(data) <= 4096 else 509)


@pytest.mark.parametrize(("data", "expected"), corpus("valid"))
def test_valid_requests_split_anywhere(data, expected, fast):
    for position in splits(data):
        requests, status = run([data[:position], data[position:]], fast)
        assert status is None, position
        assert requests == expected, position


@pytest.mark.parametrize(("data", "expected"), corpus("invalid"))
def test_invalid_requests_split_anywhere(data, expected, fast):
    for position in splits(data):
        requests, status = run([data[:position], data[position:]], fast)
        assert (requests, status) == ([], expected["status"]), position


@pytest.mark.parametrize(("data", "expected"), corpus("valid") + corpus("invalid"))
def test_a_byte_at_a_time(data, expected, fast):
    size = 1 if len(data) <= 4096 else 97
    chunks = [data[i:i + size] for i in range(0, len(data), size)]
    requests, status = run(chunks, fast)
    if isinstance(expected, list):
        assert (requests, status) == (expected, None)
    else:
        assert (requests, status) == ([], expected["status"])


# -- keep-alive, decided once -------------------------------------------------------------------------

def head_of(data: bytes) -> tuple[Connection, RequestHead]:
    connection = Connection(MAX_BODY)
    connection.receive_data(data)
    event = connection.next_event()
    assert isinstance(event, RequestHead)
    return connection, event


def test_response_asking_to_close_closes():
    connection, _ = head_of(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _ = connection.start_response(Response(500, [("Content-Length", "0")], close_connection=True))
    assert b"Connection: close" in head
    assert connection.end_response(True) == (False, False)
    assert connection.state == MUST_CLOSE and connection.next_event() is CLOSED_EVENT


def test_stopping_server_closes():
    connection, _ = head_of(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _ = connection.start_response(Response(200, [("Content-Length", "0")]), stopping=True)
    assert b"Connection: close" in head and connection.end_response(True) == (False, False)


def test_unread_body_closes_and_lingers():
    connection, event = head_of(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    head, _ = connection.start_response(Response(413, [("Content-Length", "0")]))
    assert b"Connection: close" in head
    assert connection.end_response(True) == (False, True)


def test_unknown_length_on_http10_closes():
    connection, _ = head_of(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    head, chunked = connection.start_response(Response(200, [], iter([b"x"])))
    assert not chunked and b"Connection: close" in head
    assert connection.end_response(True) == (False, False)


def test_nph_head_is_sent_untouched_and_closes():
    connection, _ = head_of(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head, chunked = connection.start_response(Response(200, raw_head=b"HTTP/1.1 200 OK\r\n\r\n"))
    assert head == b"HTTP/1.1 200 OK\r\n\r\n" and not chunked
    assert connection.end_response(True) == (False, False)


def test_incomplete_response_closes():
    connection, _ = head_of(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    connection.start_response(Response(200, [("Content-Length", "5")], b"hello"))
    assert connection.end_response(completed=False) == (False, False)


def test_pipelined_bytes_stay_buffered_for_the_next_request():
    connection, _ = head_of(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HT")
    connection.start_response(Response(200, [("Content-Length", "0")]))
    assert connection.end_response(True) == (True, False)
    assert bytes(connection.buffer) == b"GET /2 HT" and not connection.idle
    assert connection.next_event() is NEED_DATA
    connection.receive_data(b"TP/1.1\r\nHost: x\r\n\r\n")
    event = connection.next_event()
    assert isinstance(event, RequestHead) and event.request.target == "/2"


def test_timeouts_408_before_the_first_request_quiet_after():
    fresh = Connection(MAX_BODY)
    event = fresh.timed_out()
    assert isinstance(event, EarlyError) and event.status == 408
    connection, _ = head_of(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    connection.start_response(Response(200, [("Content-Length", "0")]))
    connection.end_response(True)
    assert connection.idle and connection.state == IDLE
    assert connection.timed_out() is CLOSED_EVENT
    half = Connection(MAX_BODY)
    half.receive_data(b"GET / HTTP/1.1\r\nHo")
    assert half.next_event() is NEED_DATA
    timed = half.timed_out()
    assert isinstance(timed, EarlyError) and timed.status == 408 and timed.request_line == "GET / HTTP/1.1"


def test_eof_between_requests_is_closed():
    connection = Connection(MAX_BODY)
    connection.receive_data(b"")
    assert connection.next_event() is CLOSED_EVENT


def test_client_half_close_after_its_request_is_answered_then_closed():
    connection, _ = head_of(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    connection.receive_data(b"")
    assert connection.state == BUSY
    connection.start_response(Response(200, [("Content-Length", "0")]))
    assert connection.end_response(True) == (False, False)


def test_continue_is_asked_of_the_front_before_the_body_is_read():
    sent = []
    connection = Connection(MAX_BODY)
    connection.receive_data(b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    event = connection.next_event()
    # the front that reads the body (a handler thread, not the loop) sets these after the head
    connection.send_continue = lambda: sent.append(True)
    connection.recv = lambda: b"abc"
    assert isinstance(event, RequestHead) and not sent
    assert event.request.body.read() == b"abc" and sent == [True]


def test_moves_outside_the_table_are_refused():
    connection, _ = head_of(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(ProtocolStateError):
        connection.next_event()
    assert (conn_module.IDLE, conn_module.KEEP) not in conn_module.TRANSITIONS


def test_a_bad_host_is_refused_before_its_body_is_touched():
    """Host and HTTP/1.0 framing are answered from the head: no body reader, the logged line is the
    request line, and the body bytes are never parsed as a next request (the connection closes)."""
    for head in (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                 b"POST / HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 5\r\n\r\n"):
        connection = Connection(MAX_BODY)
        connection.receive_data(head + b"5\r\nGET /smuggled HTTP/1.1\r\n\r\n")
        event = connection.next_event()
        assert isinstance(event, EarlyError) and event.status == 400
        assert event.request_line == "POST / " + head[7:15].decode()
        assert connection.state == MUST_CLOSE and connection.next_event() is CLOSED_EVENT


def test_early_answer_is_one_templated_closing_page(tmp_path):
    app = make_app(tmp_path, header=(("X-Frame-Options", "DENY"),))
    data, length = app.early_answer(414)
    assert b"X-Frame-Options: DENY" in data  # --header reaches the fronts' early answers too
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 ") and b"Connection: close" in head
    assert len(body) == length and b"414" in body and f"Content-Length: {length}".encode() in head


# -- llhttp in front (core/fast_head.py) ------------------------------------------------------------

needs_httptools = pytest.mark.skipif(not fast_head.AVAILABLE, reason="httptools is not installed")


@needs_httptools
def test_a_whole_crlf_head_takes_the_fast_path():
    data = bytearray(b"GET /a?b HTTP/1.1\r\nHost: x\r\nX-Sp:  v v \t\r\nX-E:\r\nAccept: caf\xe9\r\n\r\nBODY")
    (line, headers, size) = fast_head.parse_head(data)
    assert line == ("GET", "/a?b", "HTTP/1.1") and bytes(data[size:]) == b"BODY"
    assert list(headers) == [("Host", "x"), ("X-Sp", "v v"), ("X-E", ""), ("Accept", "caf\xe9")]


@needs_httptools
@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: x\r\n",  # not whole yet
    b"GET / HTTP/1.1\nHost: x\n\n",  # bare LF: the hand parser takes it
    b"GET / HTTP/1.1\r\nHost: x\nA: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: 1\r\n fold\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: \x7f\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",  # llhttp takes 2.0; the hand parser answers 505
    b"GET / HTTP/1.2\r\nHost: x\r\n\r\n",
    b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n",  # not in llhttp's method list; the core answers 501
    b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nHost: x\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",  # 414 by our own measure
    b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * 101 + b"\r\n",  # 431 by our own measure
    b"GET / HTTP/1.1\r\nX: " + b"b" * 70000 + b"\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
])
def test_anything_else_is_left_to_the_hand_parser(data):
    assert fast_head.parse_head(bytearray(data)) is None


def test_the_hand_parser_runs_alone_where_the_suites_ask_for_it(monkeypatch):
    """CGIBOX_TEST_PARSER=hand (make test's second pass) starts servers without httptools."""
    probe = [sys.executable, "-c", "from cgibox.core import fast_head; print(fast_head.AVAILABLE)"]
    monkeypatch.setenv("CGIBOX_TEST_PARSER", "hand")
    env = parser_env(dict(os.environ))
    answer = subprocess.run(probe, env=env, capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "False"
