"""Files over the wire on every front: types, validators, 304s, ranges, HEAD, 405/501, precompressed."""

from __future__ import annotations

import gzip
import re

import pytest

from tests.behaviour.site_static import PATTERN_BYTES, RANGE_BYTES, TYPED_FILES

# what a 304 may carry: the core's allow-list plus what the connection layer adds
NOT_MODIFIED_ALLOWED = {"cache-control", "content-location", "date", "etag", "expires", "vary",
                        "server", "connection", "keep-alive"}


def test_text_file(server):
    reply = server.get("/hello.txt")
    assert reply.status == 200 and reply.body == b"hello, world\n"
    assert reply.header("Content-Type") == "text/plain; charset=utf-8"
    assert reply.header("Content-Length") == "13"
    assert reply.header("Accept-Ranges") == "bytes"
    assert re.fullmatch(r'"[^"]+"', reply.header("ETag"))  # strong
    assert reply.header("Last-Modified").endswith(" GMT")
    assert reply.header("Date") and reply.header("Server")


@pytest.mark.parametrize("name", sorted(TYPED_FILES))
def test_content_types(server, name):
    content, expected = TYPED_FILES[name]
    reply = server.get("/" + name)
    assert reply.status == 200 and reply.body == content
    assert reply.header("Content-Type") == expected
    assert reply.header("Content-Encoding") is None


def test_last_modified(server):
    assert server.get("/dated.txt").header("Last-Modified") == "Tue, 14 Nov 2023 22:13:20 GMT"


def test_names_with_spaces_and_non_ascii(server):
    assert server.get("/space%20name.txt").body == b"spaced\n"
    assert server.get("/caf%C3%A9.txt").body == "café\n".encode()
    assert server.get("/link-in").body == b"hello, world\n"


def test_large_file_is_sent_whole(server):
    reply = server.get("/pattern.bin")
    assert reply.status == 200 and reply.body == PATTERN_BYTES
    assert reply.header("Content-Length") == str(len(PATTERN_BYTES))


def test_empty_file(server):
    reply = server.get("/empty.txt")
    assert reply.status == 200 and reply.body == b"" and reply.header("Content-Length") == "0"


# -- conditional requests --------------------------------------------------------------------------

def assert_bare_304(reply) -> None:
    assert reply.status == 304 and reply.body == b""
    names = {name.lower() for name in reply.headers.keys()}
    assert names <= NOT_MODIFIED_ALLOWED, names - NOT_MODIFIED_ALLOWED


def test_if_none_match_304(server):
    etag = server.get("/comp.txt").header("ETag")
    reply = server.get("/comp.txt", If_None_Match=etag)
    assert_bare_304(reply)
    assert reply.header("ETag") == etag and reply.header("Vary") == "Accept-Encoding"
    assert_bare_304(server.get("/comp.txt", If_None_Match=f'"a", W/{etag}'))
    assert_bare_304(server.get("/comp.txt", If_None_Match="*"))
    assert server.get("/comp.txt", If_None_Match='"stale"').status == 200


def test_if_modified_since_304(server):
    assert_bare_304(server.get("/dated.txt", If_Modified_Since="Tue, 14 Nov 2023 22:13:20 GMT"))
    assert_bare_304(server.get("/dated.txt", If_Modified_Since="Wed, 15 Nov 2023 00:00:00 GMT"))
    assert server.get("/dated.txt", If_Modified_Since="Mon, 13 Nov 2023 00:00:00 GMT").status == 200
    assert server.get("/dated.txt", If_Modified_Since="soon").status == 200


def test_head_304(server):
    etag = server.get("/hello.txt").header("ETag")
    assert_bare_304(server.request("HEAD", "/hello.txt", {"If-None-Match": etag}))


def test_if_match_412(server):
    etag = server.get("/hello.txt").header("ETag")
    assert server.get("/hello.txt", If_Match=etag).status == 200
    reply = server.get("/hello.txt", If_Match='"other"')
    assert reply.status == 412 and b"412" in reply.body
    assert server.get("/dated.txt", If_Unmodified_Since="Mon, 13 Nov 2023 00:00:00 GMT").status == 412


# -- ranges -------------------------------------------------------------------------------------------

def test_single_range(server):
    reply = server.get("/range.bin", Range="bytes=100-199")
    assert reply.status == 206 and reply.body == RANGE_BYTES[100:200]
    assert reply.header("Content-Range") == f"bytes 100-199/{len(RANGE_BYTES)}"
    assert reply.header("Content-Length") == "100"


def test_suffix_and_open_ranges_of_a_large_file(server):
    size = len(PATTERN_BYTES)
    reply = server.get("/pattern.bin", Range="bytes=-70000")
    assert reply.status == 206 and reply.body == PATTERN_BYTES[-70000:]
    reply = server.get("/pattern.bin", Range="bytes=123457-")
    assert reply.body == PATTERN_BYTES[123457:]
    assert reply.header("Content-Range") == f"bytes 123457-{size - 1}/{size}"


def multipart_parts(reply) -> list[tuple[str, bytes]]:
    match = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", reply.header("Content-Type"))
    assert match
    delimiter = b"--" + match.group(1).encode()
    body = reply.body
    assert body.startswith(delimiter + b"\r\n") and body.endswith(b"\r\n" + delimiter + b"--\r\n")
    parts = []
    for part in body[len(delimiter) + 2:-(len(delimiter) + 6)].split(b"\r\n" + delimiter + b"\r\n"):
        head, _, data = part.partition(b"\r\n\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append((fields["Content-Range"], data))
    return parts


def test_multiple_ranges(server):
    size = len(PATTERN_BYTES)
    reply = server.get("/pattern.bin", Range="bytes=0-9,100000-199999,-5")
    assert reply.status == 206
    assert reply.header("Content-Length") == str(len(reply.body))
    assert multipart_parts(reply) == [
        (f"bytes 0-9/{size}", PATTERN_BYTES[:10]),
        (f"bytes 100000-199999/{size}", PATTERN_BYTES[100000:200000]),
        (f"bytes {size - 5}-{size - 1}/{size}", PATTERN_BYTES[-5:]),
    ]


def test_overlapping_ranges_coalesce(server):
    reply = server.get("/range.bin", Range="bytes=0-50,25-99")
    assert reply.status == 206 and reply.body == RANGE_BYTES[:100]
    assert reply.header("Content-Range") == f"bytes 0-99/{len(RANGE_BYTES)}"


def test_416(server):
    size = len(RANGE_BYTES)
    reply = server.get("/range.bin", Range=f"bytes={size}-")
    assert reply.status == 416
    assert reply.header("Content-Range") == f"bytes */{size}"
    assert b"416" in reply.body
    assert server.get("/range.bin", Range="bytes=5000-6000,7000-8000").status == 416


def test_malformed_range(server):
    assert server.get("/range.bin", Range="bytes=9-1").status == 400
    assert server.get("/range.bin", Range="bytes=x").status == 400
    reply = server.get("/range.bin", Range="lines=1-2")  # an unknown unit is ignored
    assert reply.status == 200 and reply.body == RANGE_BYTES


def test_if_range(server):
    first = server.get("/range.bin")
    etag, date = first.header("ETag"), first.header("Last-Modified")
    assert server.get("/range.bin", Range="bytes=0-1", If_Range=etag).status == 206
    assert server.get("/range.bin", Range="bytes=0-1", If_Range=date).status == 206
    reply = server.get("/range.bin", Range="bytes=0-1", If_Range='"changed"')
    assert reply.status == 200 and reply.body == RANGE_BYTES
    assert server.get("/range.bin", Range="bytes=0-1",
                      If_Range="Sat, 01 Jan 2000 00:00:00 GMT").status == 200


# -- HEAD and methods -----------------------------------------------------------------------------------

def test_head(server):
    get = server.get("/pattern.bin")
    head = server.request("HEAD", "/pattern.bin")
    assert head.status == 200 and head.body == b""
    for name in ("Content-Type", "Content-Length", "ETag", "Last-Modified", "Accept-Ranges"):
        assert head.header(name) == get.header(name), name


def test_head_sends_no_body_bytes(server):
    """On one connection: if HEAD leaked body bytes, the next response would not parse."""
    conn = server.connection()
    try:
        for path in ("/pattern.bin", "/hello.txt", "/plain-dir/", "/missing", "/healthz"):
            conn.request("HEAD", path)
            reply = conn.getresponse()
            assert reply.read() == b""
            conn.request("GET", "/hello.txt")
            reply = conn.getresponse()
            assert reply.status == 200 and reply.read() == b"hello, world\n"
    finally:
        conn.close()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_405(server, method):
    reply = server.request(method, "/hello.txt", body=b"x" if method in ("POST", "PUT", "PATCH") else None)
    assert reply.status == 405
    assert reply.header("Allow") == "GET, HEAD"
    assert reply.header("Content-Type") == "text/html; charset=utf-8" and b"405" in reply.body


@pytest.mark.parametrize("method", ["PROPFIND", "BREW", "FOO"])
def test_unknown_methods_501(server, method):
    """RFC 9110 9.1: a method the server does not know is 501, on files, folders and its own pages."""
    for path in ("/hello.txt", "/plain-dir/", "/missing", "/healthz"):
        reply = server.request(method, path)
        assert reply.status == 501, path
        assert reply.header("Allow") is None
        assert reply.header("Content-Type") == "text/html; charset=utf-8" and b"Not Implemented" in reply.body


def test_405_then_the_connection_still_works(server):
    conn = server.connection()
    try:
        conn.request("POST", "/hello.txt", body=b"some body")
        first = conn.getresponse()
        first.read()
        assert first.status == 405
        conn.request("GET", "/hello.txt")  # http.client reconnects if the server closed: both fine
        assert conn.getresponse().read() == b"hello, world\n"
    finally:
        conn.close()


# -- precompressed siblings -------------------------------------------------------------------------------

def test_gzip_sibling(server):
    reply = server.get("/comp.txt", Accept_Encoding="gzip")
    assert reply.status == 200
    assert reply.header("Content-Encoding") == "gzip"
    assert reply.header("Vary") == "Accept-Encoding"
    assert reply.header("Content-Type") == "text/plain; charset=utf-8"
    assert gzip.decompress(reply.body) == b"from the gz sibling\n"


def test_br_sibling_preferred(server):
    reply = server.get("/comp.txt", Accept_Encoding="gzip, deflate, br")
    assert reply.header("Content-Encoding") == "br" and reply.body == b"pretend-brotli"


def test_no_accept_encoding_gets_the_plain_file_with_vary(server):
    reply = server.get("/comp.txt")
    assert reply.header("Content-Encoding") is None and reply.body == b"plain text, not compressed\n"
    assert reply.header("Vary") == "Accept-Encoding"
    reply = server.get("/comp.txt", Accept_Encoding="gzip;q=0, br;q=0")
    assert reply.header("Content-Encoding") is None


def test_only_gz(server):
    reply = server.get("/only-gz.txt", Accept_Encoding="br")
    assert reply.header("Content-Encoding") is None and reply.header("Vary") == "Accept-Encoding"
    reply = server.get("/only-gz.txt", Accept_Encoding="gzip")
    assert gzip.decompress(reply.body) == b"from only-gz.txt.gz\n"


def test_sibling_symlinked_out_is_not_sent(server):
    reply = server.get("/leaky.txt", Accept_Encoding="gzip")
    assert reply.body == b"leaky original\n" and reply.header("Content-Encoding") is None


def test_compressed_file_asked_for_by_name(server):
    reply = server.get("/comp.txt.gz", Accept_Encoding="gzip")
    assert reply.header("Content-Type") == "application/gzip"
    assert reply.header("Content-Encoding") is None
    assert gzip.decompress(reply.body) == b"from the gz sibling\n"
