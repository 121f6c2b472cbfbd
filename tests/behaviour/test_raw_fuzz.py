"""A raw-socket fuzz run against the real server, on every front: a few hundred malformed requests
(classic shapes, and mutations of valid ones from a fixed seed, so a run can be repeated),
bounded in count and time. The server stays up, every answer starts with a valid status line or
the connection just closes, nothing is a 500, and the access log holds no raw control character.
"""

from __future__ import annotations

import random
import re
import socket
import time

from tests.servers import read_from

SEED = 9
MUTATIONS = 260
RUN_SECONDS = 60  # the whole run stops here, however many requests are left
STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9]) [\x20-\x7e]*\r\n")

VALID = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-3,5-6\r\nIf-None-Match: \"x\"\r\n\r\n",
    b"GET /plain-dir/?format=json HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n",
    b"HEAD /cgi-bin/hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /cgi-bin/echo?upper HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /cgi-bin/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;x=y\r\nhello\r\n0\r\n\r\n",
    b"GET /cgi-bin/dump/extra%20path?a+b HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nX-Forwarded-For: 1\r\n\r\n",
    b"GET /caf%C3%A9.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /stats HTTP/1.1\r\nHost: x\r\n\r\n",
]

CLASSICS = [
    b"", b"\r\n", b"\r\n\r\n", b"\x00\x00\x00\x00", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    b"GET /\r\n\r\n", b"GET / HTTP/2.0\r\n\r\n", b"GET / HTTP/1.1 extra\r\n\r\n", b"GET  / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", b"G\x00T / HTTP/1.1\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\n\r\n", b"GET /\xff HTTP/1.1\r\n\r\n", b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nProxy\n: evil\r\n\r\n", b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: 1\r\n  continued\r\n\r\n", b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
    b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n", b"GET / HTTP/1.1\rHost: x\r\r", b"GET / HTTP/1.1\nHost: x\n\n",
    b"GET / HTTP/1.1\r\nX-A: \x1b[31mred\r\n\r\n", b"GET / HTTP/1.1\r\nX-A: \xff\xfe obs-text\r\n\r\n",
    b"POST /cgi-bin/echo HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /cgi-bin/echo HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
    b"POST /cgi-bin/echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"POST /cgi-bin/echo HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n",
    b"POST /cgi-bin/echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"POST /cgi-bin/echo HTTP/1.1\r\nContent-Length: 99999999999999999999999999999\r\n\r\n",
    b"POST /cgi-bin/echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
    b"POST /cgi-bin/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"POST /cgi-bin/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    b"POST /cgi-bin/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nX: " + b"b" * 70000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X-N: 1\r\n" * 120 + b"\r\n", b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n\r\n",
    b"GET /cgi-bin/hello/a%0Ab HTTP/1.1\r\n\r\n", b"GET /cgi-bin/hello/%00 HTTP/1.1\r\n\r\n",
    b"GET /%ED%A0%80 HTTP/1.1\r\n\r\n", b"GET /%FF%FE HTTP/1.1\r\n\r\n",
    b"GET //evil.example/ HTTP/1.1\r\n\r\n",
    b"GET http://x/hello.txt HTTP/1.1\r\n\r\n", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\n\r\n", b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nRange: bytes=99999-\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nRange: bytes=x\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nRange: bytes=" + b"0-0," * 200 + b"\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nIf-Modified-Since: Sun, 06 Nov 99999 08:49:37 GMT\r\n\r\n",
    b"GET /stats HTTP/1.1\r\nAccept: application/json\r\nExpect: 100-continue\r\n\r\n",
    b"POST /cgi-bin/echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
]
# bytes that make parsers slip
NASTY = b"\x00\r\n\t \x7f\x80\xff:;/%?#\\\x0b\x0c\x1b\"'<>"


def mutate(rng: random.Random, data: bytes) -> bytes:
    """A few random edits of a valid request: bytes replaced, inserted, deleted or cut off, a line
    repeated, line ends changed."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        position = rng.randrange(len(out) + 1)
        if kind == 0 and position < len(out):
            out[position] = rng.choice(NASTY)
        elif kind == 1:
            out[position:position] = bytes(rng.choice(NASTY) for _ in range(rng.randint(1, 3)))
        elif kind == 2:
            del out[position:position + rng.randint(1, 4)]
        elif kind == 3:
            del out[position:]
        elif kind == 4:
            lines = bytes(out).split(b"\r\n")
            index = rng.randrange(len(lines))
            lines.insert(index, lines[index])
            out = bytearray(b"\r\n".join(lines))
        else:
            out = bytearray(bytes(out).replace(b"\r\n", rng.choice([b"\n", b"\r", b"\n\r", b"\r\r\n"]), 1))
    return bytes(out)


def fuzz_requests() -> list[bytes]:
    rng = random.Random(SEED)
    return CLASSICS + [mutate(rng, rng.choice(VALID)) for _ in range(MUTATIONS)]


def exchange(server, data: bytes) -> bytes:
    """Send `data`, then end our side (so no front waits out a head timeout), and read what comes
    until the server closes."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server has already answered and closed: read what it sent
        reply, closed = read_from(sock, timeout=10)
    assert closed, f"the server kept the connection open after {data[:60]!r}"
    return reply


def test_malformed_requests_never_break_the_server(server):
    deadline = time.monotonic() + RUN_SECONDS
    requests = fuzz_requests()
    assert len(requests) >= 300
    sent = 0
    for data in requests:
        if time.monotonic() > deadline:
            break
        reply = exchange(server, data)
        sent += 1
        if not reply:
            continue  # a connection closed without an answer is a fine answer to garbage
        first = STATUS_LINE.match(reply)
        assert first, f"no valid status line for {data[:80]!r}: {reply[:80]!r}"
        statuses = [int(s) for s in re.findall(rb"(?:^|\r\n)HTTP/1\.[01] ([1-5][0-9][0-9]) ", reply)]
        assert 500 not in statuses, f"500 for {data[:80]!r}"
    assert sent >= 200, "the run stopped long before its requests were sent"
    assert server.alive()
    assert server.get("/healthz").status == 200
    log = server.log()
    control = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # tab aside; C1 too
    for line in log.split("\n"):  # not splitlines(): it would split at \x0b, \x1c... and hide them
        assert not control.search(line), f"raw control character in the log: {line!r}"
        assert not re.search(r'" 500 ', line), line
    assert "Traceback" not in server.errors()
