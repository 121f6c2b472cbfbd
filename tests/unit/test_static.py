"""core/static.py, errors and the built-in pages through App.handle, with Request objects only."""

from __future__ import annotations

import gzip
import json
import os
import re
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cgibox.config import Config
from cgibox.core.conditional import NOT_MODIFIED_HEADERS, http_date
from cgibox.core.listing import file_kind
from cgibox.core.readme import README_LIMIT, Readmes
from cgibox.core.request import Headers, Request
from cgibox.core.response import FileRegion, Response
from cgibox.core.router import App
from cgibox.core.stats import Stats
from tests.behaviour.site_static import (
    FIXED_MTIME,
    RANGE_BYTES,
    SORT_SIZES,
    TYPED_FILES,
)
from tests.unit.tree import build_tree


def make_app(root: str, cgi_dir: str, state: Path, **settings) -> App:
    config = Config(root=Path(root), cgi_dir=Path(cgi_dir), **settings)
    return App(config, Stats.create(str(state / "stats")), "threading")


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> App:
    base = tmp_path_factory.mktemp("static")
    root, cgi_dir = build_tree(base)
    return make_app(root, cgi_dir, base)


def body_of(response: Response) -> bytes:
    data = []
    for part in response.parts():
        data.append(b"".join(part.read_chunks()) if isinstance(part, FileRegion) else part)
    response.close()
    return b"".join(data)


def call(app: App, target: str, method: str = "GET", **fields: str) -> tuple[Response, bytes]:
    request = Request(method, target, headers=Headers([("Host", "localhost")] + [
        (k.replace("_", "-"), v) for k, v in fields.items()]))
    response = app.handle(request)
    return response, body_of(response)


# -- files --------------------------------------------------------------------------------------

def test_get_file(app):
    response, body = call(app, "/hello.txt")
    assert response.status == 200
    assert body == b"hello, world\n"
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    assert response.header("Content-Length") == "13"
    assert response.header("Accept-Ranges") == "bytes"
    assert re.fullmatch(r'"[^"]+"', response.header("ETag"))


@pytest.mark.parametrize("name", sorted(TYPED_FILES))
def test_content_types(app, name):
    content, expected = TYPED_FILES[name]
    response, body = call(app, "/" + name)
    assert response.status == 200 and body == content
    assert response.header("Content-Type") == expected
    assert response.header("Content-Encoding") is None  # a .gz asked for by name is just a file


def test_last_modified(app):
    response, _ = call(app, "/dated.txt")
    assert response.header("Last-Modified") == "Tue, 14 Nov 2023 22:13:20 GMT" == http_date(FIXED_MTIME)


def test_encoded_names(app):
    assert call(app, "/space%20name.txt")[1] == b"spaced\n"
    assert call(app, "/caf%C3%A9.txt")[1] == "café\n".encode()
    assert call(app, "/link-in")[1] == b"hello, world\n"


def test_head_has_the_get_headers_and_no_body(app):
    get, _ = call(app, "/range.bin")
    head, body = call(app, "/range.bin", "HEAD")
    assert head.status == 200 and body == b"" and head.omit_body
    assert head.header("Content-Length") == str(len(RANGE_BYTES))
    for name in ("Content-Type", "ETag", "Last-Modified", "Accept-Ranges"):
        assert head.header(name) == get.header(name)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_other_methods_are_405_with_allow(app, method):
    response, body = call(app, "/hello.txt", method)
    assert response.status == 405
    assert response.header("Allow") == "GET, HEAD"
    assert b"405" in body
    assert call(app, "/plain-dir/", method)[0].status == 405


@pytest.mark.parametrize("method", ["PROPFIND", "BREW", "FOO", "get", "GETS"])
def test_unknown_methods_are_501(app, method):
    """RFC 9110 9.1: a method the server does not recognise is 501, with no Allow to promise."""
    for path in ("/hello.txt", "/plain-dir/", "/missing", "/healthz"):
        response, body = call(app, path, method)
        assert response.status == 501, path
        assert response.header("Allow") is None
        assert b"501" in body and b"Not Implemented" in body


def test_trailing_slash_on_a_file_is_404(app):
    assert call(app, "/hello.txt/")[0].status == 404


def test_fifo_is_not_served_and_does_not_hang(tmp_path):
    root, cgi_dir = build_tree(tmp_path)
    os.mkfifo(os.path.join(root, "pipe"))
    app = make_app(root, cgi_dir, tmp_path)
    assert call(app, "/pipe")[0].status == 404


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file, so no file is unreadable")
def test_unreadable_file_is_403(tmp_path):
    root, cgi_dir = build_tree(tmp_path)
    secret = Path(root) / "locked.txt"
    secret.write_text("x")
    secret.chmod(0)
    assert call(make_app(root, cgi_dir, tmp_path), "/locked.txt")[0].status == 403


# -- conditional requests ------------------------------------------------------------------------

def test_if_none_match_gives_304_with_allow_listed_headers_only(app):
    first, _ = call(app, "/comp.txt")
    etag = first.header("ETag")
    for value in (etag, "W/" + etag, '"x", ' + etag, "*"):
        response, body = call(app, "/comp.txt", if_none_match=value)
        assert response.status == 304, value
        assert body == b""
        names = {name.lower() for name, _ in response.headers}
        assert names <= NOT_MODIFIED_HEADERS, names - NOT_MODIFIED_HEADERS
        assert response.header("ETag") == etag
        assert response.header("Vary") == "Accept-Encoding"
    assert call(app, "/comp.txt", if_none_match='"other"')[0].status == 200


def test_if_modified_since(app):
    assert call(app, "/dated.txt", if_modified_since=http_date(FIXED_MTIME))[0].status == 304
    assert call(app, "/dated.txt", if_modified_since=http_date(FIXED_MTIME + 60))[0].status == 304
    assert call(app, "/dated.txt", if_modified_since=http_date(FIXED_MTIME - 60))[0].status == 200
    assert call(app, "/dated.txt", if_modified_since="not a date")[0].status == 200


def test_head_304(app):
    etag = call(app, "/hello.txt")[0].header("ETag")
    response, body = call(app, "/hello.txt", "HEAD", if_none_match=etag)
    assert response.status == 304 and body == b""


def test_if_match_412(app):
    etag = call(app, "/hello.txt")[0].header("ETag")
    assert call(app, "/hello.txt", if_match=etag)[0].status == 200
    assert call(app, "/hello.txt", if_match="*")[0].status == 200
    response, body = call(app, "/hello.txt", if_match='"nope"')
    assert response.status == 412 and b"412" in body
    assert call(app, "/hello.txt", if_match="W/" + etag)[0].status == 412
    assert call(app, "/dated.txt", if_unmodified_since=http_date(FIXED_MTIME - 60))[0].status == 412


# -- ranges --------------------------------------------------------------------------------------

SIZE = len(RANGE_BYTES)


def test_single_range(app):
    response, body = call(app, "/range.bin", range="bytes=10-19")
    assert response.status == 206
    assert body == RANGE_BYTES[10:20]
    assert response.header("Content-Range") == f"bytes 10-19/{SIZE}"
    assert response.header("Content-Length") == "10"
    assert response.header("Content-Type") == "application/octet-stream"


@pytest.mark.parametrize(("spec", "start", "stop"), [
    ("bytes=-10", SIZE - 10, SIZE), ("bytes=1000-", 1000, SIZE), ("bytes=0-99999", 0, SIZE),
    ("bytes=0-0", 0, 1), ("bytes=5-8,0-10", 0, 11),
])
def test_range_forms(app, spec, start, stop):
    response, body = call(app, "/range.bin", range=spec)
    assert response.status == 206
    assert body == RANGE_BYTES[start:stop]
    assert response.header("Content-Range") == f"bytes {start}-{stop - 1}/{SIZE}"


def parse_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    match = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", content_type)
    assert match, content_type
    boundary = match.group(1).encode()
    assert body.startswith(b"--" + boundary + b"\r\n")
    assert body.endswith(b"\r\n--" + boundary + b"--\r\n")
    inner = body[len(boundary) + 4:-(len(boundary) + 8)]
    parts = []
    for chunk in inner.split(b"\r\n--" + boundary + b"\r\n"):
        head, sep, data = chunk.partition(b"\r\n\r\n")
        assert sep, "each part's head ends with CRLF CRLF"
        assert b"\n" not in head.replace(b"\r\n", b""), "bare LF in a part head"
        fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append((fields, data))
    return parts


def test_multiple_ranges(app):
    response, body = call(app, "/range.bin", range="bytes=0-4,100-109,-3")
    assert response.status == 206
    assert response.header("Content-Length") == str(len(body))
    parts = parse_multipart(response.header("Content-Type"), body)
    assert [data for _, data in parts] == [RANGE_BYTES[0:5], RANGE_BYTES[100:110], RANGE_BYTES[-3:]]
    assert [fields["Content-Range"] for fields, _ in parts] == [
        f"bytes 0-4/{SIZE}", f"bytes 100-109/{SIZE}", f"bytes {SIZE - 3}-{SIZE - 1}/{SIZE}"]
    assert all(fields["Content-Type"] == "application/octet-stream" for fields, _ in parts)
    assert response.header("Content-Range") is None


def test_multipart_of_a_text_file_keeps_its_type(app):
    response, body = call(app, "/hello.txt", range="bytes=0-1,4-5")
    parts = parse_multipart(response.header("Content-Type"), body)
    assert [fields["Content-Type"] for fields, _ in parts] == ["text/plain; charset=utf-8"] * 2
    assert [data for _, data in parts] == [b"he", b"o,"]


def test_overlapping_ranges_are_coalesced(app):
    response, body = call(app, "/range.bin", range="bytes=0-10,5-20,21-30")
    assert response.status == 206
    assert response.header("Content-Range") == f"bytes 0-30/{SIZE}"
    assert body == RANGE_BYTES[:31]


def test_unsatisfiable_range_is_416(app):
    response, body = call(app, "/range.bin", range=f"bytes={SIZE}-")
    assert response.status == 416
    assert response.header("Content-Range") == f"bytes */{SIZE}"
    assert b"416" in body
    response, _ = call(app, "/empty.txt", range="bytes=0-")
    assert response.status == 416 and response.header("Content-Range") == "bytes */0"


@pytest.mark.parametrize("spec", ["bytes=x-y", "bytes=5-1", "bytes=", "bytes=\u00b2-3"])
def test_malformed_range_is_400(app, spec):
    assert call(app, "/range.bin", range=spec)[0].status == 400


@pytest.mark.parametrize("spec", ["items=0-1", "bytes=" + ",".join(["0-0"] * 65)])
def test_ignored_range_sends_everything(app, spec):
    response, body = call(app, "/range.bin", range=spec)
    assert response.status == 200 and body == RANGE_BYTES


def test_if_range(app):
    first, _ = call(app, "/range.bin")
    etag, last_modified = first.header("ETag"), first.header("Last-Modified")
    assert call(app, "/range.bin", range="bytes=0-1", if_range=etag)[0].status == 206
    assert call(app, "/range.bin", range="bytes=0-1", if_range=last_modified)[0].status == 206
    response, body = call(app, "/range.bin", range="bytes=0-1", if_range='"stale"')
    assert response.status == 200 and body == RANGE_BYTES
    assert call(app, "/range.bin", range="bytes=0-1", if_range="W/" + etag)[0].status == 200
    assert call(app, "/range.bin", range="bytes=0-1",
                if_range="Mon, 01 Jan 2001 00:00:00 GMT")[0].status == 200
    # If-Range that fails also makes an unsatisfiable range moot
    assert call(app, "/range.bin", range=f"bytes={SIZE}-", if_range='"stale"')[0].status == 200


def test_head_ignores_range(app):
    response, body = call(app, "/range.bin", "HEAD", range="bytes=0-1")
    assert response.status == 200 and body == b""


# -- precompressed siblings ---------------------------------------------------------------------

@pytest.mark.parametrize(("accept", "coding"), [
    ("gzip", "gzip"), ("br", "br"), ("gzip, br", "br"), ("br;q=0, gzip", "gzip"), ("GZIP", "gzip"),
    ("gzip;q=0", None), ("identity", None), ("", None), ("deflate", None), ("gzip;q=0.5", "gzip"),
    ("*", "br"), ("br;q=0, *", "gzip"), ("*;q=0", None), ("gzip;q=0, br;q=0, *", None),
])
def test_precompressed_selection(app, accept, coding):
    fields = {"accept_encoding": accept} if accept else {}
    response, body = call(app, "/comp.txt", **fields)
    assert response.status == 200
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    assert response.header("Vary") == "Accept-Encoding"
    assert response.header("Content-Encoding") == coding
    expected = {"gzip": gzip.compress(b"from the gz sibling\n"), "br": b"pretend-brotli",
                None: b"plain text, not compressed\n"}[coding]
    if coding == "gzip":
        assert gzip.decompress(body) == b"from the gz sibling\n"
    else:
        assert body == expected
    assert response.header("Content-Length") == str(len(body))


def test_precompressed_representations_have_their_own_etags(app):
    plain = call(app, "/comp.txt")[0].header("ETag")
    gz = call(app, "/comp.txt", accept_encoding="gzip")[0].header("ETag")
    assert plain != gz
    assert call(app, "/comp.txt", accept_encoding="gzip", if_none_match=gz)[0].status == 304
    assert call(app, "/comp.txt", if_none_match=gz)[0].status == 200


def test_only_gz_sibling(app):
    response, body = call(app, "/only-gz.txt", accept_encoding="br, gzip")
    assert response.header("Content-Encoding") == "gzip"
    assert gzip.decompress(body) == b"from only-gz.txt.gz\n"
    response, body = call(app, "/only-gz.txt", accept_encoding="br")
    assert response.header("Content-Encoding") is None and body == b"only a gz sibling\n"
    assert response.header("Vary") == "Accept-Encoding"


def test_no_sibling_no_vary(app):
    response, _ = call(app, "/hello.txt", accept_encoding="gzip, br")
    assert response.header("Vary") is None and response.header("Content-Encoding") is None


def test_sibling_symlinked_outside_is_never_sent(app):
    response, body = call(app, "/leaky.txt", accept_encoding="gzip")
    assert body == b"leaky original\n"
    assert response.header("Content-Encoding") is None


def test_range_of_a_precompressed_file(app):
    response, body = call(app, "/comp.txt", accept_encoding="br", range="bytes=0-6")
    assert response.status == 206 and body == b"pretend"
    assert response.header("Content-Encoding") == "br"


# -- directories --------------------------------------------------------------------------------

def test_directory_redirect_keeps_query(app):
    response, body = call(app, "/plain-dir")
    assert response.status == 301 and response.header("Location") == "/plain-dir/"
    response, _ = call(app, "/plain-dir?sort=size&order=desc")
    assert response.header("Location") == "/plain-dir/?sort=size&order=desc"
    response, _ = call(app, "/plain-dir/sub")
    assert response.header("Location") == "/plain-dir/sub/"
    response, _ = call(app, "/plain%2Ddir")  # an encoded "-" stays as it was sent
    assert response.header("Location") == "/plain%2Ddir/"


@pytest.mark.parametrize("target", [
    "//plain-dir", "///plain-dir", "//evil.com/", "//evil.com", "//evil.com/plain-dir", "/\\evil.com",
    "/%2fevil.com", "/%2F%2Fevil.com/", "/%5cevil.com", "//evil.com/%2e%2e", "http://host//evil.com",
    "http://host//plain-dir", "//plain-dir?x", "/plain-dir//", "/./plain-dir", "/.//evil.com",
])
def test_location_never_starts_with_double_slash(app, target):
    response, _ = call(app, target)
    location = response.header("Location")
    if location is not None:
        assert location.startswith("/") and not location.startswith("//"), location
        assert "\\" not in location
    assert response.status in (301, 404)


def test_absolute_form_target_redirects_to_a_path(app):
    response, _ = call(app, "http://example.com/plain-dir?a=1")
    assert response.status == 301 and response.header("Location") == "/plain-dir/?a=1"


def test_index_html(app):
    response, body = call(app, "/index-dir/")
    assert response.status == 200 and body == b"<h1>index page</h1>\n"
    assert response.header("Content-Type") == "text/html; charset=utf-8"


def listing_json(app: App, target: str, **fields: str) -> dict:
    response, body = call(app, target, **fields)
    assert response.status == 200
    assert response.header("Content-Type") == "application/json"
    return json.loads(body)


def test_listing_json_shape(app):
    document = listing_json(app, "/plain-dir/?format=json")
    assert set(document) == {"path", "entries"}
    assert document["path"] == "/plain-dir/"
    assert document["entries"][0]["name"] == "sub"
    for entry in document["entries"]:
        assert set(entry) == {"name", "type", "size", "mtime", "href"}
        assert entry["type"] in ("file", "dir")
        assert isinstance(entry["size"], int) and isinstance(entry["mtime"], int)
    files = {e["name"]: e for e in document["entries"]}
    assert files["a.txt"] == {"name": "a.txt", "href": "a.txt", "type": "file", "size": 2,
                              "mtime": int(os.stat(os.path.join(app.root, "plain-dir", "a.txt")).st_mtime)}
    assert files["sub"]["type"] == "dir" and files["sub"]["href"] == "sub/"
    assert listing_json(app, "/plain-dir/", accept="application/json") == document


def test_listing_cache_ignores_query_fields_the_page_does_not_show(tmp_path):
    # "?x=1", "?x=2"... used to be a cache key each: a full render apiece, other folders evicted
    root, cgi_dir = build_tree(tmp_path)
    app = make_app(root, cgi_dir, tmp_path)
    first = call(app, "/plain-dir/?x=1")[1]
    for n in range(2, 20):
        assert call(app, f"/plain-dir/?x={n}")[1] == first
    assert call(app, "/plain-dir/?order=asc&sort=name")[1] == first
    assert len(app.static.listings._rendered._items) == 1
    call(app, "/plain-dir/?sort=size")
    call(app, "/plain-dir/?format=json&x=1")
    call(app, "/plain-dir/?format=json&x=2")
    assert len(app.static.listings._rendered._items) == 3


def test_listing_cache_keeps_the_target_of_a_template_that_shows_it(tmp_path):
    root, cgi_dir = build_tree(tmp_path)
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "listing.html").write_text(
        '{% extends "builtin/listing.html" %}{% block title %}Index of {{ target }}{% endblock %}')
    app = make_app(root, cgi_dir, tmp_path, templates=overrides)
    assert "Index of /plain-dir/?x=1<" in call(app, "/plain-dir/?x=1")[1].decode()
    assert "Index of /plain-dir/?x=2<" in call(app, "/plain-dir/?x=2")[1].decode()
    assert app.templates.uses("listing.html", "target")
    assert not make_app(root, cgi_dir, tmp_path).templates.uses("listing.html", "target")


def test_listing_hides_what_cannot_be_served(app):
    names = {e["name"] for e in listing_json(app, "/?format=json")["entries"]}
    assert {"hello.txt", "plain-dir", "link-in", "café.txt", "space name.txt", "tag<b>.txt"} <= names
    for hidden in (".hidden.txt", ".git", "link-out", "link-rel-out", "link-dir-out", "link-hidden",
                   "link-git", "cgi-bin", "link-cgi"):
        assert hidden not in names, hidden
    assert ".secret" not in {e["name"] for e in listing_json(app, "/plain-dir/?format=json")["entries"]}


def names_in(app: App, query: str) -> list[str]:
    return [e["name"] for e in listing_json(app, f"/sorting/?format=json&{query}")["entries"]]


def test_listing_sorting(app):
    assert names_in(app, "") == ["A-folder", "z-folder", "a-small.txt", "b-big.txt", "c-mid.txt"]
    assert names_in(app, "sort=name&order=desc") == \
        ["z-folder", "A-folder", "c-mid.txt", "b-big.txt", "a-small.txt"]
    by_size = sorted(SORT_SIZES, key=SORT_SIZES.get)
    assert names_in(app, "sort=size")[2:] == by_size
    assert names_in(app, "sort=size&order=desc")[2:] == by_size[::-1]
    assert names_in(app, "sort=mtime")[2:] == ["b-big.txt", "a-small.txt", "c-mid.txt"]
    assert names_in(app, "sort=mtime&order=desc")[2:] == ["c-mid.txt", "a-small.txt", "b-big.txt"]
    # folders always come first; unknown values fall back to name / asc
    assert names_in(app, "sort=bogus&order=sideways") == names_in(app, "")
    assert set(names_in(app, "sort=size&order=desc")[:2]) == {"A-folder", "z-folder"}


def test_listing_html(app):
    response, body = call(app, "/plain-dir/sub/")
    html = body.decode()
    assert response.status == 200
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert '<a href="/">/</a>' in html and '<a href="/plain-dir/">plain-dir</a>' in html  # breadcrumbs
    assert '<a href="../">' in html  # parent link
    assert '<a href="deep.txt">deep.txt</a>' in html
    assert 'title="5 bytes"' in html
    for key in ("name", "size", "mtime"):
        assert f'href="?sort={key}&amp;order=' in html
    assert "<script src" not in html.lower() and "<link rel=\"stylesheet" not in html  # inline only
    assert "http://" not in html and "https://" not in html
    assert "prefers-color-scheme" in html
    assert 'name="viewport"' in html


def test_listing_sort_links_flip_order(app):
    html = call(app, "/sorting/?sort=size&order=asc")[1].decode()
    assert 'href="?sort=size&amp;order=desc"' in html
    assert 'href="?sort=name&amp;order=asc"' in html
    assert 'href="?sort=mtime&amp;order=desc"' in html
    assert 'href="?sort=size&amp;order=asc"' in call(app, "/sorting/?sort=size&order=desc")[1].decode()


def test_the_first_click_on_size_or_modified_sorts_largest_and_newest_first(app):
    """Issue 24 A5: it sorted smallest / oldest first; names still start from A."""
    html = call(app, "/sorting/")[1].decode()
    assert 'href="?sort=size&amp;order=desc"' in html and 'href="?sort=mtime&amp;order=desc"' in html
    assert 'href="?sort=name&amp;order=desc"' in html  # sorted by name ascending now: the click flips it
    html = call(app, "/sorting/?sort=size&order=desc")[1].decode()
    assert 'href="?sort=name&amp;order=asc"' in html


def test_root_listing_has_no_parent_link(app):
    html = call(app, "/")[1].decode()
    assert "Parent folder" not in html


def test_listing_escapes_and_quotes_names(app):
    html = call(app, "/")[1].decode()
    assert "tag&lt;b&gt;.txt" in html and "tag<b>" not in html
    assert 'href="tag%3Cb%3E.txt"' in html
    assert 'href="space%20name.txt"' in html
    assert 'href="caf%C3%A9.txt"' in html


def test_empty_listing(app):
    response, body = call(app, "/empty-dir/")
    assert response.status == 200 and b"empty" in body


def test_names_that_are_not_utf8_are_listed_and_served(tmp_path):
    """Such names used to be left out of listings and unreachable (/%FF was a 404): now the href
    percent-encodes their raw bytes, which decode back to the same name, and the shown name
    escapes the bytes that cannot be displayed; the page stays valid UTF-8."""
    root, cgi_dir = build_tree(tmp_path)
    folder = os.path.join(root, "mixed")
    os.mkdir(folder)
    with open(os.path.join(os.fsencode(folder), b"bad\xff.txt"), "wb") as f:
        f.write(b"latin")
    os.mkdir(os.path.join(os.fsencode(folder), b"sub\xe9"))
    with open(os.path.join(os.fsencode(folder), b"sub\xe9", b"in\xfe"), "wb") as f:
        f.write(b"deeper")
    Path(folder, "good.txt").write_text("g")
    Path(folder, "back\\slash.txt").write_text("b")  # a name byte like any other: listed and served
    Path(folder, "family \U0001f468\u200d\U0001f469\u200d\U0001f467.txt").write_text("f")  # ZWJ: still listed
    app = make_app(root, cgi_dir, tmp_path)
    response, body = call(app, "/mixed/")
    assert response.status == 200, body[:300]
    html = body.decode("utf-8")
    assert 'href="bad%FF.txt"' in html and "bad\\xff.txt" in html
    assert 'href="sub%E9/"' in html and "good.txt" in html and "family" in html
    assert 'href="back%5Cslash.txt"' in html and "back\\\\slash.txt" in html  # shown doubled
    assert "family \U0001f468\u200d\U0001f469\u200d\U0001f467.txt" in html  # an emoji sequence stays whole
    assert call(app, "/mixed/back%5Cslash.txt")[1] == call(app, "/mixed/back\\slash.txt")[1] == b"b"
    document = listing_json(app, "/mixed/?format=json")
    assert {"bad\\xff.txt", "sub\\xe9", "good.txt"} <= {e["name"] for e in document["entries"]}
    # the shown name is not the file's: a JSON client fetches what "href" says, as the page's links do
    hrefs = {e["name"]: e["href"] for e in document["entries"]}
    assert (hrefs["bad\\xff.txt"], hrefs["sub\\xe9"]) == ("bad%FF.txt", "sub%E9/")
    assert call(app, "/mixed/" + hrefs["bad\\xff.txt"])[1] == b"latin"
    response, body = call(app, "/mixed/bad%FF.txt")
    assert (response.status, body) == (200, b"latin")
    response, body = call(app, "/mixed/sub%E9/in%FE")
    assert (response.status, body) == (200, b"deeper")
    response, body = call(app, "/mixed/sub%E9/")
    assert response.status == 200 and 'href="in%FE"' in body.decode("utf-8")
    assert "sub\\xe9" in body.decode("utf-8")  # the breadcrumb shows the folder's escaped name


def test_listing_sees_new_files(tmp_path):
    root, cgi_dir = build_tree(tmp_path)
    app = make_app(root, cgi_dir, tmp_path)
    assert "new.txt" not in {e["name"] for e in listing_json(app, "/empty-dir/?format=json")["entries"]}
    Path(root, "empty-dir", "new.txt").write_text("n")
    os.utime(os.path.join(root, "empty-dir"), ns=(1, 1))  # the folder's mtime changed
    assert "new.txt" in {e["name"] for e in listing_json(app, "/empty-dir/?format=json")["entries"]}


# -- hidden, traversal and the cgi dir --------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/.hidden.txt", "/.git/config", "/plain-dir/.secret", "/link-out", "/link-hidden", "/link-dir-out/",
    "/../outside/secret.txt", "/%2e%2e/outside/secret.txt", "/..%2foutside%2fsecret.txt",
    "/hello.txt%00", "/plain-dir\\a.txt", "/link-cgi", "/link-git/config",
])
def test_refused_paths_are_404(app, target):
    response, body = call(app, target)
    assert response.status == 404
    assert b"outside the root" not in body and b"HIDDEN-CONTENT" not in body and b"[core]" not in body


def test_cgi_source_is_never_served(app):
    for target in ("/cgi-bin/script.sh", "/cgi-bin/", "/cgi-bin", "/link-cgi", "/%63gi-bin/script.sh"):
        response, body = call(app, target)
        assert response.status in (403, 404), target
        assert b"echo source" not in body


# -- errors ---------------------------------------------------------------------------------------

def test_404_page_is_templated_and_escaped(app):
    response, body = call(app, "/<script>alert(1)</script>")
    html = body.decode()
    assert response.status == 404
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert response.header("Content-Length") == str(len(body))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_error_json(app):
    response, body = call(app, "/nope?x=1", accept="application/json")
    assert response.status == 404
    assert response.header("Content-Type") == "application/json"
    assert json.loads(body) == {"status": 404, "error": "Not Found", "path": "/nope"}
    response, body = call(app, "/hello.txt", "POST", accept="application/json")
    assert json.loads(body) == {"status": 405, "error": "Method Not Allowed", "path": "/hello.txt"}
    response, body = call(app, "/nope?format=json")
    assert json.loads(body)["status"] == 404


def test_error_html_for_other_statuses(app):
    response, body = call(app, "/hello.txt", "DELETE")
    html = body.decode()
    assert "405" in html and "Method Not Allowed" in html
    assert html.lstrip().startswith("<!doctype html>")


def test_html_preferred_when_the_browser_accepts_both(app):
    response, body = call(app, "/nope", accept="text/html,application/json;q=0.9")
    assert response.header("Content-Type") == "text/html; charset=utf-8"


def test_templates_override_by_name(tmp_path):
    root, cgi_dir = build_tree(tmp_path)
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "404.html").write_text("CUSTOM 404 for {{ path }}\n")
    (overrides / "error.html").write_text("CUSTOM {{ status }} {{ reason }}\n")
    app = make_app(root, cgi_dir, tmp_path, templates=overrides)
    response, body = call(app, "/<b>missing")
    assert response.status == 404 and body.strip() == b"CUSTOM 404 for /&lt;b&gt;missing"
    assert call(app, "/hello.txt", "PUT")[1].strip() == b"CUSTOM 405 Method Not Allowed"
    # a template the folder does not override still comes from the built-in set
    assert b"Index of /plain-dir/" in call(app, "/plain-dir/")[1]


def test_templates_override_of_the_listing(tmp_path):
    root, cgi_dir = build_tree(tmp_path)
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "listing.html").write_text("{% for e in entries %}[{{ e.name }}]{% endfor %}")
    app = make_app(root, cgi_dir, tmp_path, templates=overrides)
    assert call(app, "/plain-dir/")[1] == b"[sub][a.txt]"


# -- built-in endpoints --------------------------------------------------------------------------

def test_healthz(app):
    response, body = call(app, "/healthz")
    assert response.status == 200 and body.strip() == b"ok"
    assert call(app, "/healthz", "HEAD")[1] == b""
    assert call(app, "/healthz", "POST")[0].status == 405


def test_stats_json_and_html(app):
    app.finish(Request("GET", "/x"), 200, 10)
    document = listing_json(app, "/stats", accept="application/json")
    assert set(document) == {"uptime_seconds", "started_at", "requests_total", "responses", "bytes_sent",
                             "cgi_runs", "front", "version", "requests_per_minute"}
    assert len(document["requests_per_minute"]) == 60 and document["requests_per_minute"][-1] >= 1
    assert document["requests_total"] >= 1 and document["responses"]["200"] >= 1
    assert document["bytes_sent"] >= 10 and document["front"] == "threading"
    assert listing_json(app, "/stats?format=json")["version"] == document["version"]
    response, body = call(app, "/stats")
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert b"second" in body and b"Requests" in body


def test_metrics(app):
    app.finish(Request("GET", "/x"), 404, 0)
    response, body = call(app, "/metrics")
    assert response.status == 200 and response.header("Content-Type").startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert {"cgibox_info", "cgibox_uptime_seconds", "cgibox_requests", "cgibox_responses",
            "cgibox_sent_bytes", "cgibox_cgi_runs"} <= set(families)
    codes = {s.labels["code"]: s.value for s in families["cgibox_responses"].samples
             if s.name == "cgibox_responses_total"}
    assert codes.get("404", 0) >= 1


def test_a_bug_is_a_500_page_not_an_exception(app, monkeypatch, capfd):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(app.static, "serve", broken)
    response, body = call(app, "/hello.txt", accept="application/json")
    assert response.status == 500 and json.loads(body)["status"] == 500
    assert "boom" in capfd.readouterr().err


# -- the listing page: order, icons, counts, size, README, favicon ----------------------------------

def test_natural_order_in_html_and_json(tmp_path):
    root, cgi_dir = build_tree(tmp_path)
    folder = Path(root, "numbered")
    folder.mkdir()
    for name in ("n10.txt", "n2.txt", "N1.txt", "n1a.txt", "n01.txt", "a", "b10", "b9"):
        (folder / name).write_text(name)
    app = make_app(root, cgi_dir, tmp_path)
    names = [e["name"] for e in listing_json(app, "/numbered/?format=json")["entries"]]
    assert names == ["a", "b9", "b10", "N1.txt", "n01.txt", "n1a.txt", "n2.txt", "n10.txt"]
    descending = [e["name"] for e in listing_json(app, "/numbered/?format=json&order=desc")["entries"]]
    assert descending == names[::-1]
    html = call(app, "/numbered/")[1].decode()
    assert [html.index(f">{name}<") for name in names] == sorted(html.index(f">{name}<") for name in names)


@pytest.mark.parametrize(("name", "kind"), [
    ("notes.txt", "text"), ("README", "text"), ("paper.pdf", "text"), ("photo.JPG", "image"),
    ("icon.svg", "image"), ("site.tar.gz", "archive"), ("bundle.zip", "archive"), ("song.mp3", "media"),
    ("clip.mp4", "media"), ("tool.py", "code"), ("page.html", "code"), ("Makefile", "code"),
    ("blob.weirdext", "other"), ("data.bin", "other"),
])
def test_file_kinds(name, kind):
    assert file_kind(name) == kind


def test_icons_are_symbols_defined_once_and_used_per_row(app):
    html = call(app, "/")[1].decode()
    defined = re.findall(r'<symbol id="(\w)"', html)
    assert len(defined) == len(set(defined)) and {"d", "t", "i", "a", "c", "o"} <= set(defined)
    used = set(re.findall(r'<use href="#(\w)"/>', html))
    assert used <= set(defined)  # every row's icon is defined on the page
    assert html.count("<path") < 20  # drawn once, not per row
    assert '<svg><use href="#d"/></svg><a href="plain-dir/">' in html
    assert '<svg><use href="#a"/></svg><a href="archive.tar.gz">' in html


def test_summary_counts_folders_files_and_bytes(tmp_path):
    root, cgi_dir = build_tree(tmp_path)
    folder = Path(root, "counted")
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"x" * 1000)
    (folder / "b.bin").write_bytes(b"x" * 2000)
    html = call(make_app(root, cgi_dir, tmp_path), "/counted/")[1].decode()
    assert '1 folder, 2 files, <span title="3000 bytes">2.9 KiB</span> in total' in html


def test_a_listing_of_1000_files_stays_under_120_kb(tmp_path):
    """The bench's folder (file-0000.txt ... file-0999.txt), before compression."""
    root, cgi_dir = build_tree(tmp_path)
    folder = Path(root, "listing-1000")
    folder.mkdir()
    for number in range(1000):
        (folder / f"file-{number:04d}.txt").write_bytes(b"x" * (number % 200 + 1))
    response, body = call(make_app(root, cgi_dir, tmp_path), "/listing-1000/")
    assert response.status == 200 and body.count(b"<tr><td><svg>") == 1000
    assert len(body) <= 120_000, f"{len(body):,} bytes"


def test_listing_filter_box_is_inline_and_hidden_without_script(app):
    html = call(app, "/plain-dir/")[1].decode()
    assert re.search(r'<input type="search" id="filter"[^>]* hidden>', html)  # the script shows it
    assert html.count("<script>") == 1 and "<script src" not in html


def listing_with_readme(tmp_path, files: dict[str, bytes], **settings) -> str:
    root, cgi_dir = build_tree(tmp_path)
    folder = Path(root, "documented")
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return call(make_app(root, cgi_dir, tmp_path, **settings), "/documented/")[1].decode()


def test_readme_md_is_rendered_without_raw_html(tmp_path):
    html = listing_with_readme(tmp_path, {"README.md": b"# Title\n\n[a link](x.txt) <b>raw</b>\n\n"
                                                       b"<script>alert(1)</script>\n\n"
                                                       b"[bad](javascript:alert(1))\n"})
    readme = html[html.index('<section class="readme"'):]
    assert "<h1>Title</h1>" in readme and '<a href="x.txt">a link</a>' in readme
    assert "&lt;b&gt;raw&lt;/b&gt;" in readme and "&lt;script&gt;alert(1)&lt;/script&gt;" in readme
    assert "<script>alert" not in html and 'href="javascript:' not in html


def test_readme_txt_is_preformatted_and_escaped(tmp_path):
    html = listing_with_readme(tmp_path, {"readme.txt": b"plain <i>text</i>\n"})
    assert "<pre>plain &lt;i&gt;text&lt;/i&gt;\n</pre>" in html and "readme.txt</h2>" in html


def test_readme_md_wins_over_txt_and_a_huge_one_is_cut(tmp_path):
    html = listing_with_readme(tmp_path, {"README.md": b"start " + b"x" * (README_LIMIT + 10) + b" END",
                                          "README.txt": b"the txt"})
    assert "start x" in html and " END" not in html and "the txt" not in html
    assert "Only the start is shown" in html and 'href="README.md"' in html


def test_no_readme_setting_turns_it_off(tmp_path):
    html = listing_with_readme(tmp_path, {"README.md": b"# Hidden title\n"}, no_readme=True)
    assert "Hidden title" not in html and 'class="readme"' not in html


def test_a_readme_linked_outside_the_root_is_not_shown(tmp_path):
    root, cgi_dir = build_tree(tmp_path)
    folder = Path(root, "linked")
    folder.mkdir()
    (folder / "README.txt").symlink_to(tmp_path / "outside" / "secret.txt")
    html = call(make_app(root, cgi_dir, tmp_path), "/linked/")[1].decode()
    assert "outside the root" not in html


def test_readme_changes_show_after_the_listing_ttl(tmp_path):
    root, cgi_dir = build_tree(tmp_path)
    folder = Path(root, "changing")
    folder.mkdir()
    readme = folder / "README.txt"
    readme.write_text("first version")
    app = make_app(root, cgi_dir, tmp_path)
    assert "first version" in call(app, "/changing/")[1].decode()
    readme.write_text("second version")  # rewritten in place: the folder's mtime does not change
    app.static.listings._rendered.ttl = 0.0  # as if LISTING_TTL had passed
    assert "second version" in call(app, "/changing/")[1].decode()


def test_builtin_favicon_unless_the_root_has_one(tmp_path):
    root, cgi_dir = build_tree(tmp_path)
    app = make_app(root, cgi_dir, tmp_path)
    response, body = call(app, "/favicon.ico")
    assert response.status == 200 and response.header("Content-Type") == "image/x-icon"
    assert body[:4] == b"\x00\x00\x01\x00" and b"\x89PNG" in body  # an ICO holding a PNG
    etag = response.header("ETag")
    assert call(app, "/favicon.ico", if_none_match=etag)[0].status == 304
    # the one If-None-Match rule (conditional.evaluate): lists and weak tags match too
    not_modified = call(app, "/favicon.ico", if_none_match=f'"other", W/{etag}')[0]
    assert not_modified.status == 304 and not_modified.header("Content-Type") is None
    assert call(app, "/favicon.ico", "HEAD")[1] == b""
    assert '<link rel="icon" href="/favicon.ico"' in call(app, "/")[1].decode()
    Path(root, "favicon.ico").write_bytes(b"my own icon")
    response, body = call(app, "/favicon.ico")
    assert body == b"my own icon"


def test_a_fifo_swapped_in_as_readme_does_not_hang_the_listing(tmp_path):
    # the listing checked a regular README.md; a FIFO put in its place before it is opened
    # used to block open() until some writer came (the request hung)
    readme = tmp_path / "README.md"
    readme.write_text("# was a file\n")
    st = readme.stat()
    readme.unlink()
    os.mkfifo(readme)
    results: list = []
    reader = threading.Thread(target=lambda: results.append(Readmes().render(str(readme), "README.md", st)),
                              daemon=True)
    reader.start()
    reader.join(10)
    hung = reader.is_alive()
    if hung:  # let the blocked open() go, so the thread ends
        os.close(os.open(readme, os.O_WRONLY | os.O_NONBLOCK))
    assert not hung, "reading a README that is a FIFO blocked"
    assert results == [None]


def test_an_override_listing_gets_the_documented_row_fields(tmp_path):
    # README's templates paragraph promises these, mtime/mtime_iso for first-release templates
    root, cgi_dir = build_tree(tmp_path)
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "listing.html").write_text(
        "{% for e in entries %}[{{ e.name }}|{{ e.href }}|{{ e.is_dir }}|{{ e.size }}|{{ e.kind }}|"
        "{{ e.when }}|{{ e.mtime }}|{{ e.mtime_iso }}]{% endfor %}{{ summary.files }}")
    html = call(make_app(root, cgi_dir, tmp_path, templates=overrides), "/plain-dir/")[1].decode()
    mtime = os.stat(os.path.join(root, "plain-dir", "a.txt")).st_mtime
    local = time.localtime(mtime)
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(mtime))
    shown, iso = time.strftime("%Y-%m-%d %H:%M", local), time.strftime("%Y-%m-%dT%H:%M:%S%z", local)
    assert f"[a.txt|a.txt|False|2|t|{when}|{shown}|{iso}]" in html
