"""The connection layer on every front: keep-alive, HTTP/1.0, pipelining, no Nagle stall, the
contract's limits (414, 431, 408), idle connections holding no handler, TLS on the plain port, IPv6."""

from __future__ import annotations

import http.client
import socket
import ssl
import statistics
import time

import pytest

from tests.behaviour.site_static import RANGE_BYTES
from tests.servers import read_from, serving


def skip_without_keep_alive(server) -> None:
    if server.front == "gunicorn-sync":
        pytest.skip("gunicorn's sync worker closes every connection after one response (no keep-alive)")


def read_until_close(sock: socket.socket, timeout: float = 10.0) -> tuple[bytes, bool]:
    """Everything the server sends, and whether it closed the connection within `timeout`."""
    return read_from(sock, timeout=timeout)


def one_response(sock: socket.socket, method: str = "GET") -> http.client.HTTPResponse:
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    response.body = response.read()  # type: ignore[attr-defined]
    return response


def connect(server, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=timeout)


# -- keep-alive ------------------------------------------------------------------------------------------

def test_keep_alive_on_one_connection(server):
    skip_without_keep_alive(server)
    conn = server.connection()
    try:
        conn.request("GET", "/hello.txt")
        first = conn.getresponse()
        assert first.read() == b"hello, world\n" and not first.will_close
        sock = conn.sock
        for path in ("/range.bin", "/plain-dir/", "/missing", "/healthz", "/pattern.bin", "/stats"):
            conn.request("GET", path)
            reply = conn.getresponse()
            reply.read()
            assert not reply.will_close, path
            assert conn.sock is sock, f"{path}: the connection was not kept"
    finally:
        conn.close()


def test_http10_without_keep_alive_closes(server):
    with connect(server) as sock:
        sock.sendall(b"GET /hello.txt HTTP/1.0\r\n\r\n")
        data, closed = read_until_close(sock)
    assert closed, "an HTTP/1.0 connection without keep-alive must be closed after the response"
    assert data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0]
    assert data.endswith(b"\r\n\r\nhello, world\n")


def test_http10_with_keep_alive(server):
    skip_without_keep_alive(server)
    with connect(server) as sock:
        for _ in range(3):
            sock.sendall(b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            reply = one_response(sock)
            assert reply.status == 200 and reply.body == b"hello, world\n"
            assert (reply.getheader("Connection") or "").lower() == "keep-alive"


def test_http11_connection_close(server):
    with connect(server) as sock:
        sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data, closed = read_until_close(sock)
    assert closed and data.endswith(b"hello, world\n")


def test_pipelined_requests_are_answered_in_order(server):
    with connect(server) as sock:
        sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /range.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data, closed = read_until_close(sock)
    if server.front == "gunicorn-sync":
        assert data.count(b"HTTP/1.1 200") >= 1
        return
    assert closed and data.count(b"HTTP/1.1 200 OK") == 2
    assert data.index(b"hello, world\n") < data.index(RANGE_BYTES) and data.endswith(RANGE_BYTES)


def test_absolute_form_target(server):
    reply = server.raw(b"GET http://localhost/hello.txt HTTP/1.1\r\n"
                       b"Host: localhost\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"hello, world\n")


# -- no Nagle stall ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/hello.txt", "/pattern.bin", "/plain-dir/", "/missing",
                                  "/stats?format=json"])
def test_no_nagle_stall(server, path):
    """Nagle + delayed ACK stall a response written in two small sends by ~40 ms. Sequential
    requests on one connection must each complete far below that: the median of 20 must be
    under 30 ms even on a loaded machine (a stall puts every one of them at 40 ms or more)."""
    skip_without_keep_alive(server)
    conn = server.connection()
    try:
        timings = []
        for i in range(23):
            started = time.perf_counter()
            conn.request("GET", path)
            conn.getresponse().read()
            if i >= 3:  # the first few warm caches and the connection up
                timings.append(time.perf_counter() - started)
    finally:
        conn.close()
    assert statistics.median(timings) < 0.030, [round(t * 1000, 1) for t in timings]


# -- limits ---------------------------------------------------------------------------------------------

def test_request_line_over_8_kib_is_414(server):
    data = server.raw(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 414"), data[:100]


def test_request_line_just_under_8_kib_is_fine(server):
    target = b"/" + b"a" * (8000 - len(b"GET  HTTP/1.1"))
    data = server.raw(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 404"), data[:100]


def test_more_than_100_header_fields_is_431(server):
    fields = b"".join(b"X-Field-%d: v\r\n" % i for i in range(101))
    data = server.raw(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert data.startswith(b"HTTP/1.1 431"), data[:100]


def test_100_header_fields_are_fine(server):
    fields = b"".join(b"X-Field-%d: v\r\n" % i for i in range(98))
    data = server.raw(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + fields + b"\r\n")
    assert data.startswith(b"HTTP/1.1 200"), data[:100]


def test_more_than_64_kib_of_headers_is_431(server):
    fields = b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 7000) for i in range(10))
    data = server.raw(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert data.startswith(b"HTTP/1.1 431"), data[:100]


@pytest.mark.parametrize("head", [
    b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost : x\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
    b"GET /hel lo.txt HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_malformed_heads_are_400(server, head):
    data = server.raw(head)
    assert data.startswith(b"HTTP/1.1 400"), data[:100]


# -- header timeout ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def slow_server(front, site_dirs, tmp_path_factory):
    yield from serving(front, site_dirs, tmp_path_factory.mktemp("slow"),
                       ["--header-timeout", "1", "--keepalive-timeout", "1"])


def test_unfinished_head_is_408_and_closed(slow_server):
    with connect(slow_server) as sock:
        sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n")
        data, closed = read_until_close(sock, timeout=8)
    assert data.startswith(b"HTTP/1.1 408"), data[:100]
    assert closed


def test_trickled_head_is_408_too(slow_server):
    """A byte every 0.2 s keeps each read busy, but the head as a whole has only 1 s."""
    payload = b"GET /" + b"a" * 200  # the request line itself never ends
    received = b""
    with connect(slow_server) as sock:
        sock.settimeout(0.2)
        started = time.monotonic()
        for byte in payload:
            try:
                chunk = sock.recv(65536)
                received += chunk
                if not chunk or received:
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                break
            if time.monotonic() - started > 8:
                break
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
        elapsed = time.monotonic() - started
        if not received:
            received, _ = read_until_close(sock, timeout=2)
    assert received.startswith(b"HTTP/1.1 408"), (received[:100], elapsed)
    assert elapsed < 6, f"the 408 came after {elapsed:.1f} s of trickling, header timeout 1 s"


def test_silent_connection_is_closed(slow_server):
    with connect(slow_server) as sock:
        data, closed = read_until_close(sock, timeout=8)
    assert closed
    assert data == b"" or data.startswith(b"HTTP/1.1 408")


def test_idle_keep_alive_connection_is_closed(slow_server):
    skip_without_keep_alive(slow_server)
    with connect(slow_server) as sock:
        sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert one_response(sock).status == 200
        _, closed = read_until_close(sock, timeout=8)
    assert closed


def test_finished_head_is_not_cut_by_the_timeout(slow_server):
    """The deadline covers the head only: a normal request right after connecting is answered."""
    with connect(slow_server) as sock:
        time.sleep(0.3)
        sock.sendall(b"GET /pattern.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data, closed = read_until_close(sock)
    assert data.startswith(b"HTTP/1.1 200") and closed


# -- body timeout ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def body_server(front, site_dirs, tmp_path_factory):
    yield from serving(front, site_dirs, tmp_path_factory.mktemp("body"),
                       ["--body-timeout", "1", "--header-timeout", "60", "--keepalive-timeout", "60"])


POST_HEAD = b"POST /cgi-bin/dump HTTP/1.1\r\nHost: x\r\n"


def assert_408_and_closed(sock: socket.socket) -> None:
    data, closed = read_until_close(sock, timeout=20)
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert b"body" in data  # the page names the body deadline
    assert closed


def test_body_cut_short_is_408_and_closed(body_server):
    """Content-Length 100 and 10 bytes, then silence: 408 at --body-timeout, not a script's 504."""
    with connect(body_server, timeout=30) as sock:
        sock.sendall(POST_HEAD + b"Content-Length: 100\r\n\r\n" + b"x" * 10)
        assert_408_and_closed(sock)
    assert body_server.get("/healthz").status == 200


def test_slow_chunked_body_is_408_and_closed(body_server):
    with connect(body_server, timeout=30) as sock:
        sock.sendall(POST_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        assert_408_and_closed(sock)


def test_big_chunked_body_stalling_is_408(body_server):
    """A body past what the loop holds back is read by the handler under the same deadline."""
    chunk = b"x" * 65536
    with connect(body_server, timeout=30) as sock:
        sock.sendall(POST_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
                     + (b"10000\r\n" + chunk + b"\r\n") * 3)
        assert_408_and_closed(sock)


def test_a_body_with_pauses_shorter_than_the_timeout_is_read(body_server):
    """--body-timeout counts silence, not the whole body."""
    with connect(body_server, timeout=30) as sock:
        sock.sendall(POST_HEAD + b"Content-Length: 30\r\nConnection: close\r\n\r\n")
        for _ in range(3):
            time.sleep(0.4)
            sock.sendall(b"y" * 10)
        data, closed = read_until_close(sock, timeout=20)
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert b"y" * 30 in data


# -- bounded concurrency -------------------------------------------------------------------------------------

def test_idle_connections_take_no_handler(make_server, front):
    """With --threads 2, two connections that send nothing do not hold up a third: waiting
    connections sit in the loop (gunicorn: its poller), not in a handler. gunicorn's sync worker
    has one connection per worker, so there the third is answered once one of them closes."""
    server = make_server(["--threads", "2"])
    idle = [connect(server) for _ in range(2)]
    try:
        time.sleep(0.5)  # both are accepted
        with connect(server) as third:
            third.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if front == "gunicorn-sync":
                idle[0].close()
            data, closed = read_until_close(third, timeout=10)
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello, world\n")
        assert closed
    finally:
        for sock in idle:
            sock.close()
    assert server.get("/healthz").status == 200


# -- TLS on the plain port -----------------------------------------------------------------------------------

def client_hello() -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("hello", [
    pytest.param(client_hello, id="real-client-hello"),
    # a ClientHello with no LF byte in it: the server must not wait for a line end
    pytest.param(lambda: b"\x16\x03\x01\x00\x2f\x01\x00\x00\x2b\x03\x03" + bytes(range(32, 75)),
                 id="client-hello-without-lf"),
])
def test_tls_handshake_on_the_plain_port(server, hello):
    data = hello()
    with connect(server) as sock:
        sock.sendall(data)
        reply, closed = read_until_close(sock, timeout=5)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:100]
    assert closed
    deadline = time.monotonic() + 5
    while "HTTPS" not in server.errors() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "HTTPS" in server.errors()


def test_tls_client_gets_a_clean_error(server):
    context = ssl.create_default_context()
    with connect(server) as raw, pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with context.wrap_socket(raw, server_hostname="localhost"):
            pass
    assert server.get("/healthz").status == 200


# -- IPv6 ----------------------------------------------------------------------------------------------------

def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_ipv6(make_server):
    server = make_server(host="::1")
    assert "http://[::1]:" in server.log().splitlines()[0]
    reply = server.get("/hello.txt")
    assert reply.status == 200 and reply.body == b"hello, world\n"
    with socket.create_connection(("::1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
        data, _ = read_until_close(sock)
    assert data.startswith(b"HTTP/1.1 200")


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_ipv6_any_address_answers_both_families(make_server):
    """--host :: listens on every address, IPv4 ones included (dual stack)."""
    server = make_server(host="::")
    # the start-up line names a reachable address (announce.py: a LAN one for "::"), and the port
    assert f":{server.port}/" in server.log().splitlines()[0]
    for address in ("::1", "127.0.0.1"):
        with socket.create_connection((address, server.port), timeout=10) as sock:
            sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data, _ = read_until_close(sock)
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello, world\n"), address
