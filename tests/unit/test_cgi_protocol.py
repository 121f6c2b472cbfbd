"""core/cgi_protocol.py: the script's environment and arguments, and parsing its head (no I/O)."""

from __future__ import annotations

import pytest

from cgibox.core.cgi_protocol import (
    SAFE_PATH,
    MalformedHead,
    build_environ,
    head_end,
    parse_head,
    parse_nph_head,
    query_argv,
    server_name,
    wire_text,
)
from cgibox.core.request import Headers, Request


def request(target="/cgi-bin/s", method="GET", headers=(), protocol="HTTP/1.1", **fields) -> Request:
    return Request(method=method, target=target, protocol=protocol, headers=Headers(headers),
                   remote_addr="192.0.2.7", remote_port=50123, server_name="0.0.0.0", server_port=8000,
                   **fields)


def environ(req: Request, **overrides) -> dict[str, str]:
    args = dict(script_name="/cgi-bin/s", path_info="", script_filename="/srv/cgi-bin/s",
                document_root="/srv/www", path_translated=None, content_length=None,
                server_software="cgibox/test")
    args.update(overrides)
    return build_environ(req, **args)


# -- environment ------------------------------------------------------------------------------

def test_the_must_variables_and_nothing_of_the_server():
    env = environ(request("/cgi-bin/s?a=1", headers=[("Host", "example.test:8000")]))
    assert env == {
        "PATH": SAFE_PATH,
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "cgibox/test",
        "SERVER_NAME": "example.test",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_METHOD": "GET",
        "QUERY_STRING": "a=1",
        "SCRIPT_NAME": "/cgi-bin/s",
        "PATH_INFO": "",
        "REMOTE_ADDR": "192.0.2.7",
        "REMOTE_HOST": "192.0.2.7",
        "REMOTE_PORT": "50123",
        "REQUEST_URI": "/cgi-bin/s?a=1",
        "REQUEST_SCHEME": "http",
        "SCRIPT_FILENAME": "/srv/cgi-bin/s",
        "DOCUMENT_ROOT": "/srv/www",
        "HTTP_HOST": "example.test:8000",
    }


def test_query_string_is_empty_without_a_query():
    assert environ(request("/cgi-bin/s"))["QUERY_STRING"] == ""


def test_server_protocol_is_the_requests():
    assert environ(request(protocol="HTTP/1.0"))["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_path_info_and_path_translated():
    env = environ(request(), path_info="/a b/é", path_translated="/srv/www/a b/é")
    assert env["PATH_INFO"] == "/a b/é"
    assert env["PATH_TRANSLATED"] == "/srv/www/a b/é"


def test_content_length_and_type_only_with_a_body():
    req = request(method="POST", headers=[("Content-Type", "text/plain"), ("Content-Length", "3")])
    env = environ(req, content_length=3)
    assert env["CONTENT_LENGTH"] == "3"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert "HTTP_CONTENT_LENGTH" not in env and "HTTP_CONTENT_TYPE" not in env
    assert "CONTENT_LENGTH" not in environ(request())
    assert "CONTENT_TYPE" not in environ(request())


def test_https_is_on_for_https():
    assert environ(request(scheme="https"))["HTTPS"] == "on"
    assert "HTTPS" not in environ(request())


@pytest.mark.parametrize("name", ["Authorization", "Proxy-Authorization", "Proxy", "Transfer-Encoding",
                                  "X_Forwarded_For", "X.Dotted", "X~Tilde"])
def test_headers_that_never_become_variables(name):
    env = environ(request(headers=[(name, "value")]))
    assert not [key for key in env if key.startswith("HTTP_")]


def test_repeated_headers_are_joined():
    env = environ(request(headers=[("X-A", "1"), ("x-a", "2"), ("Cookie", "a=1"), ("Cookie", "b=2")]))
    assert env["HTTP_X_A"] == "1, 2"
    assert env["HTTP_COOKIE"] == "a=1; b=2"


def test_header_bytes_survive_as_the_client_sent_them():
    # the front decodes header bytes as latin-1; the script must get the original bytes back
    value = b"caf\xc3\xa9 \xe9".decode("latin-1")
    env = environ(request(headers=[("X-Name", value)]))
    assert env["HTTP_X_NAME"].encode("utf-8", "surrogateescape") == b"caf\xc3\xa9 \xe9"
    assert wire_text("plain") == "plain"


@pytest.mark.parametrize(("host", "expected"), [
    ("example.test", "example.test"), ("example.test:81", "example.test"), ("[::1]:8000", "[::1]"),
    ("bad host", "0.0.0.0"), ("", "0.0.0.0"), ("evil.test/<x>", "0.0.0.0"),
])
def test_server_name_from_host(host, expected):
    headers = [("Host", host)] if host else []
    assert server_name(request(headers=headers)) == expected


def test_server_name_of_an_ipv6_address_is_bracketed():
    req = Request("GET", "/", server_name="::1")
    assert server_name(req) == "[::1]"


@pytest.mark.parametrize(("query", "argv"), [
    ("", []), ("a", ["a"]), ("a+b", ["a", "b"]), ("a%20b+c", ["a b", "c"]), ("x%3Dy", ["x=y"]),
    ("a=b", []), ("a+b=c", []), ("a++b", []), ("+a", []), ("a%00b", []), ("caf%C3%A9", ["café"]),
])
def test_query_argv(query, argv):
    assert query_argv(query) == argv


def test_query_argv_keeps_bytes_that_are_not_utf8():
    (arg,) = query_argv("%FF")
    assert arg.encode("utf-8", "surrogateescape") == b"\xff"


# -- the head -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("buffer", "end"), [
    (b"A: b\n\nbody", 6), (b"A: b\r\n\r\nbody", 8), (b"A: b\n\r\nbody", 7), (b"\nbody", 1),
    (b"\r\nbody", 2), (b"A: b\n", None), (b"A: b\r\n", None), (b"", None),
])
def test_head_end(buffer, end):
    assert head_end(buffer) == end


def test_a_document_head():
    head = parse_head(b"Content-Type: text/html\nX-One: 1\nSet-Cookie: a=1\nSet-Cookie: b=2\n\n")
    assert head.status == 200
    assert head.headers == [("Content-Type", "text/html"), ("X-One", "1"), ("Set-Cookie", "a=1"),
                            ("Set-Cookie", "b=2")]
    assert not head.local_redirect


def test_status_sets_the_status_and_is_not_sent_on():
    head = parse_head(b"Status: 404 Not Here\r\nContent-Type: text/plain\r\n\r\n")
    assert head.status == 404
    assert head.headers == [("Content-Type", "text/plain")]


def test_status_without_a_reason():
    assert parse_head(b"Status: 201\n\n").status == 201


def test_an_absolute_location_alone_is_302():
    head = parse_head(b"Location: https://example.test/x\n\n")
    assert head.status == 302
    assert ("Location", "https://example.test/x") in head.headers
    assert not head.local_redirect


def test_a_location_with_a_status_keeps_the_status():
    head = parse_head(b"Status: 301 Moved\nLocation: /elsewhere\n\n")
    assert head.status == 301
    assert not head.local_redirect


@pytest.mark.parametrize(("location", "local"), [
    ("/path", True), ("/path?q=1", True), ("/", True), ("//evil.test/", False),
    ("http://example.test/", False), ("relative", False), ("/with space", False),
])
def test_local_redirects(location, local):
    head = parse_head(f"Location: {location}\n\n".encode())
    assert head.local_redirect is local


def test_hop_by_hop_fields_are_dropped():
    head = parse_head(b"Content-Type: a/b\nConnection: close\nTransfer-Encoding: chunked\nKeep-Alive: 1\n\n")
    assert head.headers == [("Content-Type", "a/b")]


def test_content_length_is_read():
    head = parse_head(b"Content-Type: a/b\nContent-Length: 12\n\n")
    assert head.content_length == 12
    assert ("Content-Length", "12") in head.headers


def test_no_content_statuses_lose_their_length():
    head = parse_head(b"Status: 304\nContent-Length: 12\n\n")
    assert head.content_length is None
    assert head.headers == []


@pytest.mark.parametrize("raw", [
    b"\n",                                    # no field at all
    b"X-Only: other\n\n",                     # no CGI field (Content-Type, Location, Status)
    b"not a header\n\n",
    b"Content-Type: a/b\n folded\n\n",
    b"Status: abc\n\n",
    b"Status: 99 Low\n\n",
    b"Status: 100 Continue\n\n",
    b"Status: 600 High\n\n",
    b"Status: 200\nStatus: 404\n\n",
    b"Location: /a\nLocation: /b\n\n",
    b"Location:\n\n",
    b"Content-Type: a/b\nContent-Length: -1\n\n",
    b"Content-Type: a/b\nContent-Length: 1\nContent-Length: 2\n\n",
    b"Content-Type: a/b\x00c\n\n",
    b"Content-Type: a/b\rX-Injected: 1\n\n",
    b"Bad Name: x\nContent-Type: a/b\n\n",
])
def test_malformed_heads(raw):
    with pytest.raises(MalformedHead):
        parse_head(raw)


def test_an_nph_head():
    status, headers = parse_nph_head(b"HTTP/1.1 299 Whatever\r\nX-A: 1\r\nnot a field\r\n\r\n")
    assert status == 299
    assert headers == [("X-A", "1")]


@pytest.mark.parametrize("raw", [b"Content-Type: a/b\n\n", b"\n", b"HTTP/1.1 abc\n\n", b"HTTP/2 200\n\n"])
def test_an_nph_head_must_start_with_a_status_line(raw):
    with pytest.raises(MalformedHead):
        parse_nph_head(raw)


@pytest.mark.parametrize("length", [b"\xb2", b"1\xb9", b"-1", b"1e3"])
def test_a_content_length_that_is_not_ascii_digits_is_a_malformed_head(length):
    """Byte 0xB2 reads as "²" (the head is latin-1): "²".isdigit() is True but int() refuses it,
    which made a 500 instead of the 502 for a malformed head."""
    head = b"Content-Type: text/plain\nContent-Length: " + length + b"\n\n"
    with pytest.raises(MalformedHead):
        parse_head(head)
