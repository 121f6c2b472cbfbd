"""core/compress.py: the Accept-Encoding choice, encoded pages cached per state, ETags per encoding,
304s, HEAD, and --compress-files; through the module and through App.handle, without sockets."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from cgibox.config import Config
from cgibox.core import compress
from cgibox.core.compress import Compressor, choose, parse_accept_encoding, tagged
from cgibox.core.request import Headers, Request
from cgibox.core.response import FileRegion, Response
from cgibox.core.router import App
from cgibox.core.stats import Stats

GZIP_ONLY = ("gzip",)


@pytest.mark.parametrize(("header", "expected"), [
    (None, "identity"),  # the client said nothing: nothing is encoded
    ("", "identity"),  # only identity is acceptable (RFC 9110 12.5.3)
    ("gzip", "gzip"),
    ("GZip ; Q=1", "gzip"),
    ("x-gzip", "gzip"),
    ("deflate", "identity"),  # a coding we do not make
    ("gzip;q=0", "identity"),
    ("gzip;q=0.5, identity", "identity"),  # identity preferred by q
    ("gzip;q=0.5", "gzip"),  # identity not named: acceptable but least preferred
    ("gzip;q=1, identity;q=1", "gzip"),  # a tie goes to the smaller body
    ("identity;q=0", "identity"),  # nothing acceptable: identity anyway, not a 415
    ("*", "gzip"),
    ("*;q=0", "identity"),
    ("*;q=0, gzip", "gzip"),
    ("*, gzip;q=0", "identity"),  # gzip refused by name, * cannot bring it back
    ("gzip;q=abc", "identity"),  # a malformed q-value drops the item
    ("gzip;q=1.5", "identity"),
    ("br, gzip;q=0.8", "gzip"),  # br not made here
])
def test_choose_follows_rfc_9110(header, expected):
    assert choose(header, GZIP_ONLY) == expected


def test_choose_prefers_br_when_offered_and_follows_q_values():
    assert choose("gzip, br", ("br", "gzip")) == "br"
    assert choose("br;q=0.5, gzip", ("br", "gzip")) == "gzip"
    assert choose("*", ("br", "gzip")) == "br"


def test_parse_accept_encoding_keeps_the_best_q_of_a_repeated_coding():
    assert parse_accept_encoding("gzip;q=0.2, x-gzip;q=0.7, br") == {"gzip": 0.7, "br": 1.0}


def test_tagged_etags_keep_weakness():
    assert tagged('"abc"', "gzip") == '"abc-gzip"'
    assert tagged('W/"abc"', "br") == 'W/"abc-br"'


def request(path: str = "/", method: str = "GET", **headers: str) -> Request:
    return Request(method, path, headers=Headers([("Host", "localhost")] + [
        (k.replace("_", "-"), v) for k, v in headers.items()]))


def page(body: bytes, key: object = None, status: int = 200) -> Response:
    headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]
    return Response(status, headers, body, compress="page", compress_key=key)


BODY = b"<p>" + b"a listing line that repeats\n" * 400 + b"</p>"


def test_a_page_is_gzipped_with_vary_length_and_an_etag_of_its_own():
    compressor = Compressor()
    identity = compressor.apply(request(), page(BODY, "k"))
    encoded = compressor.apply(request(accept_encoding="gzip"), page(BODY, "k"))
    assert identity.body == BODY and identity.header("content-encoding") is None
    assert identity.header("vary") == encoded.header("vary") == "Accept-Encoding"
    assert encoded.header("content-encoding") == "gzip"
    assert gzip.decompress(encoded.body) == BODY
    assert encoded.header("content-length") == str(len(encoded.body)) and len(encoded.body) < len(BODY)
    assert encoded.header("etag") == tagged(identity.header("etag"), "gzip")
    assert [k for k, _ in encoded.headers].count("Content-Length") == 1


def test_a_page_is_compressed_once_per_state(monkeypatch):
    calls = []
    real = compress.encode
    monkeypatch.setattr(compress, "encode", lambda coding, body: calls.append(coding) or real(coding, body))
    compressor = Compressor()
    for _ in range(5):
        compressor.apply(request(accept_encoding="gzip"), page(BODY, "listing"))
    assert calls == ["gzip"]
    # a new rendering (a new bytes object for the same key) is a new state
    compressor.apply(request(accept_encoding="gzip"), page(bytes(bytearray(BODY)), "listing"))
    assert calls == ["gzip", "gzip"]


def test_if_none_match_with_the_encoded_etag_is_304_and_the_identity_tag_does_not_match_it():
    compressor = Compressor()
    etag = compressor.apply(request(accept_encoding="gzip"), page(BODY, "k")).header("etag")
    not_modified = compressor.apply(request(accept_encoding="gzip", if_none_match=etag), page(BODY, "k"))
    assert not_modified.status == 304 and not_modified.body == b""
    assert not_modified.header("etag") == etag and not_modified.header("vary") == "Accept-Encoding"
    assert not_modified.header("content-length") is None and not_modified.header("content-type") is None
    # the same tag from a client that now takes identity names another representation
    assert compressor.apply(request(if_none_match=etag), page(BODY, "k")).status == 200
    identity_tag = compressor.apply(request(), page(BODY, "k")).header("etag")
    assert compressor.apply(request(if_none_match=f'W/{identity_tag}'), page(BODY, "k")).status == 304


def test_never_a_range_response_a_304_or_an_already_encoded_body():
    compressor = Compressor()
    partial = Response(206, [("Content-Length", "3")], b"abc", compress="page")
    assert compressor.apply(request(accept_encoding="gzip"), partial) is partial
    assert partial.header("content-encoding") is None and partial.header("vary") is None
    encoded = Response(200, [("Content-Encoding", "br")], BODY, compress="page")
    assert compressor.apply(request(accept_encoding="gzip"), encoded).body == BODY


def test_small_bodies_stay_identity_and_error_pages_get_no_etag():
    compressor = Compressor()
    small = compressor.apply(request(accept_encoding="gzip"), page(b"tiny"))
    assert small.body == b"tiny" and small.header("vary") == "Accept-Encoding"
    error = compressor.apply(request(accept_encoding="gzip"), page(BODY, status=404))
    assert error.header("content-encoding") == "gzip" and error.header("etag") is None


def test_unmarked_responses_are_left_alone():
    plain = Response(200, [("Content-Length", str(len(BODY)))], BODY)
    assert Compressor().apply(request(accept_encoding="gzip"), plain).header("vary") is None


@pytest.mark.skipif(compress.brotli is None, reason="the Brotli package is not installed")
def test_br_when_brotli_is_importable():
    encoded = Compressor().apply(request(accept_encoding="br, gzip"), page(BODY))
    assert encoded.header("content-encoding") == "br"
    assert compress.brotli.decompress(encoded.body) == BODY


# -- through App.handle ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("compress")
    root, cgi_dir = base / "www", base / "cgi-bin"
    (root / "many").mkdir(parents=True)
    cgi_dir.mkdir()
    for number in range(1000):
        (root / "many" / f"file-{number:04d}.txt").write_bytes(b"x" * (number % 200 + 1))
    (root / "text.txt").write_bytes(b"some text that compresses well\n" * 200)
    (root / "big.txt").write_bytes(b"y" * (compress.FILE_MAX_SIZE + 1))
    (root / "blob.bin").write_bytes(os.urandom(4096))
    (root / "sib.txt").write_bytes(b"the plain file\n" * 100)
    (root / "sib.txt.gz").write_bytes(gzip.compress(b"from the sibling\n"))
    return root, cgi_dir


def make_app(tree, base: Path, **settings) -> App:
    root, cgi_dir = tree
    return App(Config(root=root, cgi_dir=cgi_dir, **settings), Stats.create(str(base / "stats")), "threading")


def test_the_1000_file_listing_is_under_40_kb_with_gzip(tree, tmp_path):
    app = make_app(tree, tmp_path)
    plain = app.handle(request("/many/"))
    encoded = app.handle(request("/many/", accept_encoding="gzip"))
    assert encoded.header("content-encoding") == "gzip"
    assert len(encoded.body) <= 40_000 < len(plain.body)
    assert gzip.decompress(encoded.body) == plain.body
    as_json = app.handle(request("/many/?format=json", accept_encoding="gzip"))
    assert json.loads(gzip.decompress(as_json.body))["path"] == "/many/"
    assert as_json.header("etag") != encoded.header("etag")


def test_head_has_gets_headers_with_the_encoded_length(tree, tmp_path):
    app = make_app(tree, tmp_path)
    get = app.handle(request("/many/", accept_encoding="gzip"))
    head = app.handle(request("/many/", "HEAD", accept_encoding="gzip"))
    assert head.body == b"" and head.omit_body
    assert head.headers == get.headers


def test_error_pages_and_stats_are_compressed(tree, tmp_path):
    app = make_app(tree, tmp_path)
    missing = app.handle(request("/no/such/" + "x" * 300, accept_encoding="gzip"))
    assert missing.status == 404 and missing.header("content-encoding") == "gzip"
    assert b"x" * 300 in gzip.decompress(missing.body)
    stats = app.handle(request("/stats", accept_encoding="gzip"))
    assert stats.header("content-encoding") == "gzip" and b"<html" in gzip.decompress(stats.body).lower()


def test_files_are_not_compressed_without_the_flag(tree, tmp_path):
    app = make_app(tree, tmp_path)
    response = app.handle(request("/text.txt", accept_encoding="gzip"))
    assert response.header("content-encoding") is None and response.header("vary") is None


def test_compress_files_gzips_text_cached_by_validator_never_on_range(tree, tmp_path):
    app = make_app(tree, tmp_path, compress_files=True)
    content = (tree[0] / "text.txt").read_bytes()
    encoded = app.handle(request("/text.txt", accept_encoding="gzip"))
    assert encoded.header("content-encoding") == "gzip" and gzip.decompress(encoded.body) == content
    identity = app.handle(request("/text.txt"))
    assert encoded.header("etag") == tagged(identity.header("etag"), "gzip")
    assert identity.header("vary") == "Accept-Encoding" and identity.body == content
    again = app.handle(request("/text.txt", accept_encoding="gzip", if_none_match=encoded.header("etag")))
    assert again.status == 304
    ranged = app.handle(request("/text.txt", accept_encoding="gzip", range="bytes=0-9"))
    assert ranged.status == 206 and ranged.header("content-encoding") is None and ranged.body == content[:10]
    # binary, too large, or with a precompressed sibling: as before
    assert app.handle(request("/blob.bin", accept_encoding="gzip")).header("content-encoding") is None
    big = app.handle(request("/big.txt", accept_encoding="gzip"))
    assert big.header("content-encoding") is None and isinstance(big.body, FileRegion)
    big.close()
    sibling = app.handle(request("/sib.txt", accept_encoding="gzip"))
    assert gzip.decompress(b"".join(sibling.parts())) == b"from the sibling\n"
    sibling.close()


def test_compress_files_sees_a_changed_file(tree, tmp_path):
    app = make_app(tree, tmp_path, compress_files=True)
    path = tree[0] / "changing.txt"
    path.write_bytes(b"first version\n" * 100)
    first = app.handle(request("/changing.txt", accept_encoding="gzip"))
    path.write_bytes(b"second version, longer\n" * 100)
    second = app.handle(request("/changing.txt", accept_encoding="gzip"))
    assert gzip.decompress(second.body) == b"second version, longer\n" * 100
    assert first.header("etag") != second.header("etag")


def test_the_404_page_rendered_once_is_the_same_page(tree, tmp_path):
    app = make_app(tree, tmp_path)
    for path in ("/a<b>&'\"", "/plain", "/%E2%82%AC"):
        body = app.handle(request(path)).body.decode()
        expected = app.templates.render("404.html", status=404, reason="Not Found", detail="", path=path)
        assert body == expected


def test_compress_files_is_a_switch_the_variable_can_set(capsys):
    from cgibox.cli import parse_config

    assert parse_config([], {}).compress_files is False
    assert parse_config(["--compress-files"], {}).compress_files is True
    assert parse_config(["--compress-files", "--port", "0"], {}).port == 0
    assert parse_config([], {"CGIBOX_COMPRESS_FILES": "on"}).compress_files is True
    assert parse_config([], {"CGIBOX_COMPRESS_FILES": "0"}).compress_files is False
    with pytest.raises(SystemExit) as stopped:
        parse_config([], {"CGIBOX_COMPRESS_FILES": "maybe"})
    assert stopped.value.code == 2
    assert "CGIBOX_COMPRESS_FILES='maybe'" in capsys.readouterr().err


# -- one owner of Accept-Encoding and of validators (issue 24 B7, issue 18 point 9) ----------------

AGREEMENT = [
    ("x-gzip", "gzip"),  # RFC 9110 8.4.1.3: x-gzip is gzip (the sibling was refused before)
    ("gzip;q=1.5", "identity"),  # a q-value outside 0..1 is malformed: the item is dropped
    ("gzip;q=0.5, identity", "identity"),  # identity preferred by q (the sibling was sent before)
    ("gzip", "gzip"), ("", "identity"), ("*;q=0", "identity"), ("gzip;q=0", "identity"),
]


@pytest.mark.parametrize(("header", "expected"), AGREEMENT)
def test_a_gz_sibling_and_a_generated_page_get_the_same_answer(tree, tmp_path, header, expected):
    app = make_app(tree, tmp_path)
    sibling = app.handle(request("/sib.txt", accept_encoding=header))
    page_answer = app.handle(request("/many/", accept_encoding=header))
    sibling.close()
    assert (sibling.header("content-encoding") or "identity") == expected
    assert (page_answer.header("content-encoding") or "identity") == expected


def test_compress_files_validators_hold_for_every_representation(tree, tmp_path):
    app = make_app(tree, tmp_path, compress_files=True)
    plain = app.handle(request("/text.txt"))
    encoded = app.handle(request("/text.txt", accept_encoding="gzip"))
    plain_tag, gzip_tag = plain.header("etag"), encoded.header("etag")
    assert gzip_tag == tagged(plain_tag, "gzip")
    # the plain representation's 304 says it varies, as its 200 did
    not_modified = app.handle(request("/text.txt", if_none_match=plain_tag))
    assert not_modified.status == 304 and not_modified.header("vary") == "Accept-Encoding"
    assert not_modified.header("etag") == plain_tag
    gzip_304 = app.handle(request("/text.txt", accept_encoding="gzip", if_none_match=gzip_tag))
    assert gzip_304.status == 304 and gzip_304.header("etag") == gzip_tag
    assert gzip_304.header("vary") == "Accept-Encoding" and gzip_304.header("content-encoding") is None
    # If-Match with the ETag of the representation the client gets holds; another's does not
    matched = app.handle(request("/text.txt", accept_encoding="gzip", if_match=gzip_tag))
    assert matched.status == 200 and matched.header("content-encoding") == "gzip"
    assert app.handle(request("/text.txt", if_match=plain_tag)).status == 200
    assert app.handle(request("/text.txt", if_match=gzip_tag)).status == 412
    # a cached copy of the other representation is not current for this one
    assert app.handle(request("/text.txt", accept_encoding="gzip", if_none_match=plain_tag)).status == 200
    # a Range request is answered from the plain file, and still says it varies
    ranged = app.handle(request("/text.txt", accept_encoding="gzip", range="bytes=0-9", if_range=plain_tag))
    assert ranged.status == 206 and ranged.header("vary") == "Accept-Encoding"
    assert ranged.header("etag") == plain_tag
