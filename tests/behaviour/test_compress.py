"""Compressed generated pages (listings, error pages, /stats) and --compress-files, on every front."""

from __future__ import annotations

import gzip
import importlib.util
import json
import socket

import pytest

from tests.servers import read_from, serving

LISTING_LIMIT = 40_000  # bytes on the wire, head included, for the 1,000-file listing with gzip


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("compress-site")
    root, cgi_dir = base / "www", base / "cgi-bin"
    (root / "many").mkdir(parents=True)
    cgi_dir.mkdir()
    for number in range(1000):
        (root / "many" / f"file-{number:04d}.txt").write_bytes(b"x" * (number % 200 + 1))
    (root / "text.txt").write_bytes(b"a line of text that compresses well\n" * 300)
    (root / "sib.txt").write_bytes(b"the plain file\n" * 100)
    (root / "sib.txt.gz").write_bytes(gzip.compress(b"from the sibling\n"))
    base.chmod(0o755)
    return root, cgi_dir


@pytest.fixture(scope="module")
def compressing(front, site, tmp_path_factory):
    """A server with --compress-files on (generated pages are compressed with or without it)."""
    yield from serving(front, site, tmp_path_factory.mktemp("logs"), ["--compress-files"])


def wire_bytes(server, path: str, headers: str = "") -> bytes:
    """Everything the server sends for one GET (Connection: close), head included."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode())
        return read_from(sock, timeout=10)[0]


def test_the_1000_file_listing_is_under_40_kb_on_the_wire_with_gzip(compressing):
    wire = wire_bytes(compressing, "/many/", "Accept-Encoding: gzip, deflate\r\n")
    head, _, body = wire.partition(b"\r\n\r\n")
    assert b"\r\ncontent-encoding: gzip" in head.lower()
    assert len(wire) <= LISTING_LIMIT
    plain = compressing.get("/many/")
    assert len(plain.body) > LISTING_LIMIT and gzip.decompress(body) == plain.body


def test_listing_vary_etag_per_encoding_and_304(compressing):
    plain = compressing.get("/many/")
    encoded = compressing.request("GET", "/many/", {"Accept-Encoding": "gzip"})
    for reply in (plain, encoded):
        assert reply.header("Vary") == "Accept-Encoding"
        assert reply.header("ETag")
    assert plain.header("Content-Encoding") is None
    assert encoded.header("ETag") != plain.header("ETag")
    again = compressing.request("GET", "/many/", {"Accept-Encoding": "gzip",
                                                  "If-None-Match": encoded.header("ETag")})
    assert again.status == 304 and again.body == b""
    assert again.header("ETag") == encoded.header("ETag")
    # the gzip tag does not name what an identity client gets
    assert compressing.request("GET", "/many/", {"If-None-Match": encoded.header("ETag")}).status == 200


def test_head_has_the_headers_of_get_with_the_encoded_length(compressing):
    get = compressing.request("GET", "/many/?format=json", {"Accept-Encoding": "gzip"})
    head = compressing.request("HEAD", "/many/?format=json", {"Accept-Encoding": "gzip"})
    assert head.body == b""
    assert json.loads(gzip.decompress(get.body))["path"] == "/many/"
    for name in ("Content-Length", "Content-Encoding", "ETag", "Vary", "Content-Type"):
        assert head.header(name) == get.header(name), name
    assert int(get.header("Content-Length")) == len(get.body)


def test_error_pages_and_stats_are_gzipped(compressing):
    missing = compressing.request("GET", "/no/such/page", {"Accept-Encoding": "gzip"})
    assert missing.status == 404 and missing.header("Content-Encoding") == "gzip"
    assert b"/no/such/page" in gzip.decompress(missing.body)
    stats = compressing.request("GET", "/stats", {"Accept-Encoding": "gzip"})
    assert stats.header("Content-Encoding") == "gzip"
    assert b"<html" in gzip.decompress(stats.body).lower()


def test_no_accept_encoding_or_a_refusal_gets_identity(compressing):
    for headers in ({}, {"Accept-Encoding": "gzip;q=0"}, {"Accept-Encoding": "identity"},
                    {"Accept-Encoding": "gzip;q=0.5, identity"}):
        reply = compressing.request("GET", "/many/", headers)
        assert reply.header("Content-Encoding") is None, headers
        assert b"file-0999.txt" in reply.body


@pytest.mark.skipif(importlib.util.find_spec("brotli") is None, reason="the Brotli package is not installed")
def test_br_when_brotli_is_installed(compressing):
    import brotli

    reply = compressing.request("GET", "/many/", {"Accept-Encoding": "gzip, br"})
    assert reply.header("Content-Encoding") == "br"
    assert b"file-0999.txt" in brotli.decompress(reply.body)


def test_compress_files_gzips_text_but_never_a_range(compressing, site):
    content = (site[0] / "text.txt").read_bytes()
    encoded = compressing.request("GET", "/text.txt", {"Accept-Encoding": "gzip"})
    assert encoded.header("Content-Encoding") == "gzip" and gzip.decompress(encoded.body) == content
    ranged = compressing.request("GET", "/text.txt", {"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
    assert ranged.status == 206 and ranged.header("Content-Encoding") is None and ranged.body == content[:10]
    sibling = compressing.request("GET", "/sib.txt", {"Accept-Encoding": "gzip"})
    assert gzip.decompress(sibling.body) == b"from the sibling\n"


def test_files_are_sent_as_they_are_without_the_flag(server):
    reply = server.request("GET", "/hello.txt", {"Accept-Encoding": "gzip"})
    assert reply.header("Content-Encoding") is None and reply.body == b"hello, world\n"


def test_compress_files_validators_hold_for_every_representation(compressing):
    """Issue 18 point 9: the plain representation's 304 lacked Vary, and If-Match with the gzip
    ETag got 412: each representation's validators now work for it."""
    plain = compressing.request("GET", "/text.txt")
    encoded = compressing.request("GET", "/text.txt", {"Accept-Encoding": "gzip"})
    plain_tag, gzip_tag = plain.header("ETag"), encoded.header("ETag")
    assert plain_tag != gzip_tag and plain.header("Vary") == "Accept-Encoding"
    not_modified = compressing.request("GET", "/text.txt", {"If-None-Match": plain_tag})
    assert not_modified.status == 304 and not_modified.header("Vary") == "Accept-Encoding"
    gzip_304 = compressing.request("GET", "/text.txt", {"Accept-Encoding": "gzip", "If-None-Match": gzip_tag})
    assert gzip_304.status == 304 and gzip_304.header("ETag") == gzip_tag
    matched = compressing.request("GET", "/text.txt", {"Accept-Encoding": "gzip", "If-Match": gzip_tag})
    assert matched.status == 200 and matched.header("Content-Encoding") == "gzip"
    assert compressing.request("GET", "/text.txt", {"If-Match": plain_tag}).status == 200


@pytest.mark.parametrize(("accept", "expected"), [("x-gzip", "gzip"), ("gzip;q=1.5", None),
                                                  ("gzip;q=0.5, identity", None)])
def test_a_sibling_and_a_generated_page_read_accept_encoding_alike(compressing, accept, expected):
    """Issue 24 B7: static.accepted_codings and compress.choose gave these opposite answers."""
    sibling = compressing.request("GET", "/sib.txt", {"Accept-Encoding": accept})
    listing = compressing.request("GET", "/many/", {"Accept-Encoding": accept})
    assert sibling.header("Content-Encoding") == listing.header("Content-Encoding") == expected
