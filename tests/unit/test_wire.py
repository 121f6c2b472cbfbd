"""core/wire.py: request line and header syntax, body framing (smuggling shapes), response framing;
the door's head rules (core/request.py): Host, HTTP/1.0 framing, absolute-form targets."""

from __future__ import annotations

import io

import pytest

from cgibox.core import wire
from cgibox.core.errors import HTTPError
from cgibox.core.request import Headers, Request, framing_problem, request_problem
from cgibox.core.response import Response


def status_of(call, *args):
    with pytest.raises(HTTPError) as info:
        call(*args)
    return info.value.status


# -- request line ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "expected"), [
    (b"GET / HTTP/1.1", ("GET", "/", "HTTP/1.1")),
    (b"HEAD /a/b?c=d HTTP/1.0", ("HEAD", "/a/b?c=d", "HTTP/1.0")),
    (b"GET http://example.com/x HTTP/1.1", ("GET", "http://example.com/x", "HTTP/1.1")),
    (b"OPTIONS * HTTP/1.1", ("OPTIONS", "*", "HTTP/1.1")),
    (b"PROPFIND /x HTTP/1.1", ("PROPFIND", "/x", "HTTP/1.1")),
    (b"GET /%2e%2e HTTP/1.1", ("GET", "/%2e%2e", "HTTP/1.1")),  # decoding is the router's job
    (b"GET / HTTP/1.2", ("GET", "/", "HTTP/1.0")),  # a later 1.x minor is answered as 1.0
])
def test_request_line_valid(line, expected):
    assert wire.parse_request_line(line) == expected


@pytest.mark.parametrize(("line", "status"), [
    (b"GET /", 400),
    (b"GET", 400),
    (b"", 400),
    (b"GET  / HTTP/1.1", 400),  # two spaces
    (b"GET / HTTP/1.1 extra", 400),
    (b"GET /\tx HTTP/1.1", 400),
    (b"GET /a\x00b HTTP/1.1", 400),
    (b"GET /a\x1bb HTTP/1.1", 400),
    (b"GET /a\x7fb HTTP/1.1", 400),
    (b"GET /caf\xc3\xa9 HTTP/1.1", 400),  # raw non-ASCII
    (b"G(T / HTTP/1.1", 400),  # not a token
    (b"GET / HTTP/1", 400),
    (b"GET / http/1.1", 400),
    (b"GET / HTTP/11", 400),
    (b"GET x HTTP/1.1", 400),  # neither origin-form, absolute-form nor *
    (b"GET / HTTP/2.0", 505),
    (b"GET / HTTP/0.9", 505),
    (b"GET /" + b"a" * 8200 + b" HTTP/1.1", 414),
])
def test_request_line_invalid(line, status):
    with pytest.raises(HTTPError) as info:
        wire.parse_request_line(line)
    assert info.value.status == status
    assert info.value.close_connection


def test_request_line_limit_is_8_kib():
    prefix, suffix = b"GET /", b" HTTP/1.1"
    fits = prefix + b"a" * (wire.MAX_REQUEST_LINE - len(prefix) - len(suffix)) + suffix
    assert len(fits) == wire.MAX_REQUEST_LINE
    wire.parse_request_line(fits)
    assert status_of(wire.parse_request_line, fits.replace(b"/a", b"/aa", 1)) == 414


# -- header lines ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "expected"), [
    (b"Host: example.com", ("Host", "example.com")),
    (b"Host:example.com", ("Host", "example.com")),
    (b"X-Empty:", ("X-Empty", "")),
    (b"X-Spaces:   a b  \t", ("X-Spaces", "a b")),
    (b"X-Tab: a\tb", ("X-Tab", "a\tb")),
    (b"X-Obs: caf\xe9", ("X-Obs", "caf\xe9")),  # obs-text kept as latin-1
    (b"X-Colon: a:b", ("X-Colon", "a:b")),
])
def test_header_line_valid(line, expected):
    assert wire.parse_header_line(line) == expected


@pytest.mark.parametrize("line", [
    b" folded: value",
    b"\tfolded",
    b"Host : example.com",  # space before the colon (RFC 9112 5.1: 400)
    b"Ho st: x",
    b": no name",
    b"no colon",
    b"X-Nul: a\x00b",
    b"X-Esc: a\x1bb",
    b"X-Cr: a\rb",
    b"X-Lf: a\nb",
    b"X-Del: a\x7fb",
    b"X-\xe9: x",
])
def test_header_line_invalid(line):
    assert status_of(wire.parse_header_line, line) == 400


def test_check_limits_for_fronts_that_parse_themselves():
    ok = Request("GET", "/", headers=Headers([("X", "y")] * wire.MAX_HEADER_FIELDS))
    wire.check_limits(ok)
    many = Request("GET", "/", headers=Headers([("X", "y")] * (wire.MAX_HEADER_FIELDS + 1)))
    assert status_of(wire.check_limits, many) == 431
    big = Request("GET", "/", headers=Headers([("X", "y" * 40_000), ("Z", "y" * 30_000)]))
    assert status_of(wire.check_limits, big) == 431
    long_target = Request("GET", "/" + "a" * wire.MAX_REQUEST_LINE)
    assert status_of(wire.check_limits, long_target) == 414


# -- keep-alive --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("protocol", "connection", "expected"), [
    ("HTTP/1.1", None, True),
    ("HTTP/1.1", "close", False),
    ("HTTP/1.1", "Close", False),
    ("HTTP/1.1", "keep-alive, close", False),
    ("HTTP/1.1", "upgrade", True),
    ("HTTP/1.0", None, False),
    ("HTTP/1.0", "keep-alive", True),
    ("HTTP/1.0", "Keep-Alive", True),
    ("HTTP/1.0", "close", False),
])
def test_wants_keep_alive(protocol, connection, expected):
    headers = Headers() if connection is None else Headers([("Connection", connection)])
    assert wire.wants_keep_alive(protocol, headers) is expected


def test_expects_continue():
    assert wire.expects_continue(Request("POST", "/", headers=Headers([("Expect", "100-continue")])))
    assert not wire.expects_continue(Request("POST", "/", protocol="HTTP/1.0",
                                             headers=Headers([("Expect", "100-continue")])))
    assert not wire.expects_continue(Request("POST", "/"))


# -- request bodies -----------------------------------------------------------------------------------

def reader_for(fields: list[tuple[str, str]], data: bytes, max_body: int = 1000):
    return wire.body_reader(Headers(fields), io.BufferedReader(io.BytesIO(data)), max_body)


def read_all(reader) -> bytes:
    parts = []
    for _ in range(10_000):
        part = reader.read(7)
        if not part:
            return b"".join(parts)
        parts.append(part)
    raise AssertionError("the reader never ended")


def test_no_body():
    reader, length = reader_for([], b"GET / HTTP/1.1\r\n\r\n")
    assert length == 0 and reader.finished and reader.read() == b""


def test_content_length_body_stops_at_its_length():
    reader, length = reader_for([("Content-Length", "5")], b"helloGET / HTTP/1.1\r\n")
    assert length == 5
    assert not reader.finished
    assert read_all(reader) == b"hello"
    assert reader.finished
    assert reader.read() == b""


def test_content_length_read_zero_bytes():
    reader, _ = reader_for([("Content-Length", "5")], b"hello")
    assert reader.read(0) == b""
    assert reader.read() == b"hello"


def test_content_length_body_cut_short_is_400():
    reader, _ = reader_for([("Content-Length", "10")], b"hello")
    assert reader.read(5) == b"hello"
    assert status_of(reader.read) == 400


def test_readinto():
    reader, _ = reader_for([("Content-Length", "5")], b"hello")
    buffer = bytearray(3)
    assert reader.readinto(buffer) == 3 and bytes(buffer) == b"hel"


@pytest.mark.parametrize("value", ["5", "5, 5", " 5 "])
def test_repeated_identical_lengths_are_one_length(value):
    reader, length = reader_for([("Content-Length", value)], b"hello")
    assert length == 5 and read_all(reader) == b"hello"


@pytest.mark.parametrize(("fields", "status"), [
    # request smuggling shapes (RFC 9112 6.3)
    ([("Content-Length", "5"), ("Transfer-Encoding", "chunked")], 400),
    ([("Transfer-Encoding", "chunked"), ("Content-Length", "0")], 400),
    ([("Content-Length", "5"), ("Content-Length", "6")], 400),
    ([("Content-Length", "5, 6")], 400),
    ([("Content-Length", "-1")], 400),
    ([("Content-Length", "+5")], 400),
    ([("Content-Length", "0x5")], 400),
    ([("Content-Length", "5.0")], 400),
    ([("Content-Length", "")], 400),
    ([("Content-Length", "1 2")], 400),
    ([("Content-Length", "\u00b2")], 400),  # "²".isdigit() is True, int("²") raises
    ([("Content-Length", "\u0665")], 400),  # an Arabic-Indic five: not ASCII
    ([("Content-Length", "9" * 5000)], 413),  # beyond int()'s digit limit: too large, not a 500
    ([("Transfer-Encoding", "gzip")], 501),
    ([("Transfer-Encoding", "gzip, chunked")], 501),
    ([("Transfer-Encoding", "chunked, chunked")], 501),
    ([("Transfer-Encoding", "identity")], 501),
    ([("Transfer-Encoding", "xchunked")], 501),
    ([("Content-Length", "1001")], 413),  # over max_body: refused before reading
])
def test_body_framing_errors(fields, status):
    with pytest.raises(HTTPError) as info:
        reader_for(fields, b"")
    assert info.value.status == status
    assert info.value.close_connection


def test_transfer_encoding_is_case_insensitive():
    reader, length = reader_for([("Transfer-Encoding", " Chunked ")], b"0\r\n\r\n")
    assert length is None and read_all(reader) == b""


@pytest.mark.parametrize(("data", "body"), [
    (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
    (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
    (b"5;ext=1\r\nhello\r\n0\r\n\r\n", b"hello"),  # chunk extensions ignored
    (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),  # hex, either case
    (b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
    (b"005\r\nhello\r\n0\r\n\r\n", b"hello"),
    (b"5\r\nhello\r\n0\r\nX-Trailer: yes\r\n\r\n", b"hello"),  # trailers discarded
    (b"0\r\n\r\n", b""),
    # extensions per RFC 9112 7.1.1: BWS around ";" and "=", token or quoted-string values
    (b"5 ;a\r\nhello\r\n0\r\n\r\n", b"hello"),
    (b"5\t; a = b ;c\r\nhello\r\n0\r\n\r\n", b"hello"),
    (b'5;a="q \\" ;=\t\xff"\r\nhello\r\n0;last=1\r\n\r\n', b"hello"),
    (b"0" * 40 + b"5\r\nhello\r\n0\r\n\r\n", b"hello"),  # leading zeros are not size
    (b"5\r\nhello\r\n0\r\nA: 1\r\nB:\r\nC: x y\t\r\n\r\n", b"hello"),
])
def test_chunked_bodies(data, body):
    reader, length = reader_for([("Transfer-Encoding", "chunked")], data + b"NEXT REQUEST")
    assert length is None
    assert read_all(reader) == body
    assert reader.finished
    assert reader.source.read() == b"NEXT REQUEST"  # not a byte of the next request consumed


def test_chunked_read_all_at_once():
    reader, _ = reader_for([("Transfer-Encoding", "chunked")], b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")
    assert reader.read() == b"abcdef"


@pytest.mark.parametrize("data", [
    b"5\r\nhelloX\r\n0\r\n\r\n",  # chunk longer than its size line says
    b"5\r\nhel",  # cut short
    b"x\r\nhello\r\n0\r\n\r\n",  # not hex
    b"-5\r\nhello\r\n0\r\n\r\n",
    b"0x5\r\nhello\r\n0\r\n\r\n",
    b"\r\nhello\r\n0\r\n\r\n",  # empty size
    b" 5\r\nhello\r\n0\r\n\r\n",
    b"5 5\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhello",  # no CRLF after the data
    b"5" + b"0" * 5000 + b"\r\n",  # a chunk-size line longer than the limit
    b"5\r\nhello\r\n0\r\n" + b"X: " + b"y" * 5000 + b"\r\n\r\n",  # a trailer line too long
    # CRLF only (RFC 9112 7.1): a bare LF or CR anywhere in the framing
    b"5\nhello\r\n0\r\n\r\n",
    b"5\r\nhello\r\n0\n\r\n",
    b"5\r\nhello\r\n0\r\n\n",
    b"5\r\nhello\r\n0\r\nX: y\n\r\n",
    b"5\rhello\r\n0\r\n\r\n",
    b"5;a\rb\r\nhello\r\n0\r\n\r\n",
    b"5;a\r\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhello\r\n0\r\nX: a\rb\r\n\r\n",
    # sizes bounded: never a wait for a body of that size
    b"1" * 100 + b"\r\n",
    b"1" + b"0" * 16 + b"\r\n",
    # extensions off the grammar
    b"5;\r\nhello\r\n0\r\n\r\n",
    b"5;=x\r\nhello\r\n0\r\n\r\n",
    b"5;a=\r\nhello\r\n0\r\n\r\n",
    b"5;a b\r\nhello\r\n0\r\n\r\n",
    b'5;a="x\r\nhello\r\n0\r\n\r\n',
    b"5;a=\x00\r\nhello\r\n0\r\n\r\n",
    b"5 \r\nhello\r\n0\r\n\r\n",  # whitespace after a size with no extension
    b"5,6\r\nhello\r\n0\r\n\r\n",
    # trailer lines that are not field lines
    b"5\r\nhello\r\n0\r\nnot a field\r\n\r\n",
    b"5\r\nhello\r\n0\r\n: x\r\n\r\n",
    b"5\r\nhello\r\n0\r\nX : y\r\n\r\n",
    b"5\r\nhello\r\n0\r\nA: 1\r\n folded\r\n\r\n",
    b"5\r\nhello\r\n0\r\nA: \x00\r\n\r\n",
    b"5\r\nhello\r\n0\r\n\r",  # cut inside the last CRLF
])
def test_chunked_errors(data):
    reader, _ = reader_for([("Transfer-Encoding", "chunked")], data)
    with pytest.raises(HTTPError) as info:
        read_all(reader)
    assert info.value.status == 400


def test_chunked_over_max_body_is_413():
    reader, _ = reader_for([("Transfer-Encoding", "chunked")], b"400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n",
                           max_body=1000)
    assert status_of(read_all, reader) == 413


def test_chunked_many_small_chunks_over_max_body_is_413():
    data = b"".join(b"a\r\n0123456789\r\n" for _ in range(101)) + b"0\r\n\r\n"
    reader, _ = reader_for([("Transfer-Encoding", "chunked")], data, max_body=1000)
    assert status_of(read_all, reader) == 413


def test_many_trailer_fields_are_431():
    data = b"0\r\n" + b"X: 1\r\n" * (wire.MAX_HEADER_FIELDS + 1) + b"\r\n"
    reader, _ = reader_for([("Transfer-Encoding", "chunked")], data)
    assert status_of(read_all, reader) == 431


def test_endless_trailers_are_refused():
    """Trailer fields count against the header limit, so a client cannot stream them forever."""
    trailer = b"X-T: " + b"y" * 1000 + b"\r\n"
    data = b"0\r\n" + trailer * 200 + b"\r\n"
    reader, _ = reader_for([("Transfer-Encoding", "chunked")], data)
    with pytest.raises(HTTPError) as info:
        read_all(reader)
    assert info.value.status in (400, 431)


def test_continue_is_sent_before_the_first_read_only():
    calls = []
    reader, _ = wire.body_reader(Headers([("Content-Length", "3")]), io.BytesIO(b"abc"), 100,
                                 lambda: calls.append(1))
    assert calls == []
    assert reader.read(1) == b"a"
    assert reader.read() == b"bc"
    assert calls == [1]


def test_no_continue_for_an_empty_body():
    calls = []
    reader, _ = wire.body_reader(Headers(), io.BytesIO(b""), 100, lambda: calls.append(1))
    reader.read()
    assert calls == []


# -- response framing --------------------------------------------------------------------------------

def head_of(protocol: str, keep_alive: bool, response: Response, method: str = "GET"):
    head, chunked, close = wire.frame_response(method, protocol, keep_alive, response)
    text = head.decode("latin-1")
    assert text.endswith("\r\n\r\n")
    lines = text[:-4].split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        fields.setdefault(name.lower(), []).append(value)
    return lines[0], fields, chunked, close


def test_frame_known_length_keep_alive():
    status, fields, chunked, close = head_of(
        "HTTP/1.1", True, Response(200, [("Content-Length", "5")], b"hello"))
    assert status == "HTTP/1.1 200 OK"
    assert not chunked and not close
    assert "connection" not in fields
    assert fields["content-length"] == ["5"]
    assert fields["server"][0].startswith("cgibox/")
    assert fields["date"][0].endswith(" GMT")


def test_frame_unknown_length_is_chunked_on_http11():
    _, fields, chunked, close = head_of("HTTP/1.1", True, Response(200, [], iter([b"x"])))
    assert chunked and not close
    assert fields["transfer-encoding"] == ["chunked"]


def test_frame_unknown_length_closes_on_http10():
    status, fields, chunked, close = head_of("HTTP/1.0", True, Response(200, [], iter([b"x"])))
    assert status.startswith("HTTP/1.0 200")
    assert not chunked and close
    assert "transfer-encoding" not in fields
    assert fields["connection"] == ["close"]


def test_frame_http10_keep_alive_is_announced():
    _, fields, _, close = head_of("HTTP/1.0", True, Response(200, [("Content-Length", "0")]))
    assert not close and fields["connection"] == ["keep-alive"]


def test_frame_close_requested_by_client_or_response():
    _, fields, _, close = head_of("HTTP/1.1", False, Response(200, [("Content-Length", "0")]))
    assert close and fields["connection"] == ["close"]
    _, fields, _, close = head_of("HTTP/1.1", True,
                                  Response(400, [("Content-Length", "0")], close_connection=True))
    assert close and fields["connection"] == ["close"]


def test_frame_never_chunks_bodiless_responses():
    for response in (Response(304, [("ETag", '"x"')]), Response(204), Response(101),
                     Response(200, [], b"", omit_body=True)):
        _, fields, chunked, close = head_of("HTTP/1.1", True, response)
        assert not chunked and not close, response.status
        assert "transfer-encoding" not in fields


def test_frame_drops_hop_by_hop_headers_from_the_core():
    response = Response(200, [("Content-Length", "1"), ("Connection", "keep-alive"),
                              ("Transfer-Encoding", "chunked")], b"x")
    _, fields, chunked, _ = head_of("HTTP/1.1", True, response)
    assert not chunked
    assert "connection" not in fields and "transfer-encoding" not in fields


def test_frame_keeps_the_core_date_and_server():
    response = Response(200, [("Content-Length", "0"), ("Date", "then"), ("Server", "other")])
    _, fields, _, _ = head_of("HTTP/1.1", True, response)
    assert fields["date"] == ["then"] and fields["server"] == ["other"]


def test_frame_unknown_status_reason():
    status, _, _, _ = head_of("HTTP/1.1", True, Response(599, [("Content-Length", "0")]))
    assert status == "HTTP/1.1 599 Unknown"


def test_chunk_encoding():
    assert wire.chunk(b"hello") == b"5\r\nhello\r\n"
    assert wire.chunk(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    assert wire.LAST_CHUNK == b"0\r\n\r\n"


def test_looks_like_tls():
    assert wire.looks_like_tls(b"\x16\x03\x01\x02\x00\x01")
    assert not wire.looks_like_tls(b"GET / HTTP/1.1")
    assert wire.looks_like_tls(b"\x16")  # the first byte may arrive alone
    assert not wire.looks_like_tls(b"\x16\x04")
    assert not wire.looks_like_tls(b"")


# -- the door's head rules: Host (RFC 9112 3.2), HTTP/1.0 framing (6.1), absolute form (3.2.2) -------

def door(target: str = "/", protocol: str = "HTTP/1.1", fields=(("Host", "example.com"),)):
    request = Request("GET", target, protocol=protocol, headers=Headers(fields))
    return request_problem(request), request


@pytest.mark.parametrize("host", [
    "example.com", "example.com:8080", "EXAMPLE.com:", "127.0.0.1", "127.0.0.1:80", "[::1]",
    "[::1]:8000", "[2001:db8::ffff:192.0.2.1]", "a-b_c~d.e", "%41b", "!$&'()*+,;=", "",
])
def test_valid_hosts(host):
    assert door(fields=[("Host", host)])[0] is None


@pytest.mark.parametrize("host", [
    "evil.example/", "a/b", "a?b", "a#b", "user@a", "a b", "a\tb", " a:b:c", "a:b", "a:80:80",
    "[::1", "[::g]", "[1.2.3.4]", "[v1.x]", ":80", "caf\xe9", "%4", "a%zz", "a\\b", "[::1]x", "a\"b",
])
def test_malformed_hosts_are_400(host):
    assert door(fields=[("Host", host)])[0] == "malformed Host field"


@pytest.mark.parametrize(("protocol", "fields", "problem"), [
    ("HTTP/1.1", [], "HTTP/1.1 request without a Host field"),
    ("HTTP/1.1", [("Host", "a"), ("Host", "a")], "more than one Host field"),
    ("HTTP/1.1", [("Host", "a"), ("host", "b")], "more than one Host field"),
    ("HTTP/1.0", [("Host", "a"), ("Host", "b")], "more than one Host field"),
    ("HTTP/1.0", [("Host", "a/b")], "malformed Host field"),
    ("HTTP/1.0", [("Transfer-Encoding", "chunked")], "Transfer-Encoding in an HTTP/1.0 request"),
    ("HTTP/1.0", [("Transfer-Encoding", "chunked"), ("Content-Length", "5")],
     "Transfer-Encoding in an HTTP/1.0 request"),
    ("HTTP/1.0", [], None),
    ("HTTP/1.0", [("Content-Length", "5")], None),
    ("HTTP/1.1", [("Host", "a"), ("Transfer-Encoding", "chunked")], None),
])
def test_host_and_framing_rules(protocol, fields, problem):
    assert framing_problem(protocol, Headers(fields)) == problem
    assert door(protocol=protocol, fields=fields)[0] == problem


@pytest.mark.parametrize(("target", "fields", "path", "host"), [
    ("http://example.com/p?q", [("Host", "other")], "/p?q", "example.com"),
    ("HTTPS://example.com:8443/a/b", [("Host", "x")], "/a/b", "example.com:8443"),
    ("http://example.com", [("Host", "x")], "/", "example.com"),
    ("http://example.com?q=1", [("Host", "x")], "/?q=1", "example.com"),
    ("http://[::1]:80//x", [("Host", "x")], "//x", "[::1]:80"),
])
def test_absolute_form_authority_replaces_host(target, fields, path, host):
    problem, request = door(target, fields=fields)
    assert problem is None
    assert request.target == path and request.raw_path == path.split("?")[0]
    assert request.headers.get_all("host") == [host]


def test_absolute_form_on_http10_without_host_gets_one():
    problem, request = door("http://example.com/p", protocol="HTTP/1.0", fields=[])
    assert problem is None and request.target == "/p" and request.headers.get("Host") == "example.com"


@pytest.mark.parametrize(("target", "fields"), [
    ("http://example.com/p", []),  # HTTP/1.1 still needs its Host line (RFC 9112 3.2)
    ("http://example.com/p", [("Host", "a"), ("Host", "b")]),
    ("http://example.com/p", [("Host", "a/b")]),
    ("ftp://example.com/p", [("Host", "x")]),
    ("http:///p", [("Host", "x")]),
    ("http://user@example.com/p", [("Host", "x")]),
    ("http://user:pw@example.com/p", [("Host", "x")]),
    ("http://a:b/p", [("Host", "x")]),
    ("http://:80/p", [("Host", "x")]),
    ("http://example.com#f", [("Host", "x")]),
    ("1http://example.com/", [("Host", "x")]),
    ("x/http://example.com/", [("Host", "x")]),
])
def test_bad_absolute_forms_are_400(target, fields):
    problem, request = door(target, fields=fields)
    assert problem is not None and request.target == target
