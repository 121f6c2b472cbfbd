"""Folders over the wire on every front: 301 (never to '//'), index.html, listings (HTML and
JSON, sorted), and names starting with '.' neither listed nor served."""

from __future__ import annotations

import re

import pytest

from tests.behaviour.site_static import SORT_SIZES


def raw_status_and_location(server, target: str) -> tuple[int, str | None]:
    reply = server.raw(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status = int(head.split(" ", 2)[1])
    match = re.search(r"^location:\s*(.*)$", head, re.I | re.M)
    return status, match.group(1).strip() if match else None


def test_redirect_to_slash(server):
    reply = server.get("/plain-dir")
    assert reply.status == 301 and reply.header("Location") == "/plain-dir/"
    assert server.get("/plain-dir/sub").header("Location") == "/plain-dir/sub/"


def test_redirect_keeps_query(server):
    reply = server.get("/plain-dir?sort=size&order=desc")
    assert reply.status == 301 and reply.header("Location") == "/plain-dir/?sort=size&order=desc"


@pytest.mark.parametrize("target", [
    "//evil.com/", "//evil.com", "//evil.com/plain-dir", "///evil.com/", "//plain-dir", "/%2fevil.com",
    "/%2F%2Fevil.com", "/%5cevil.com", "/\\evil.com", "/\\\\evil.com/", "//evil.com/%2e%2e",
    "//evil.com/..", "/.//evil.com", "//evil.com?x=/", "http://evil.com//plain-dir", "//%2fevil.com",
])
def test_location_never_starts_with_two_slashes(server, target):
    status, location = raw_status_and_location(server, target)
    assert status in (301, 400, 404)
    if location is not None:
        assert location.startswith("/") and not location.startswith("//"), location
        assert "\\" not in location and "evil.com" not in location.split("?")[0][:12]


def test_index_html(server):
    reply = server.get("/index-dir/")
    assert reply.status == 200 and reply.body == b"<h1>index page</h1>\n"
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    assert server.get("/index-dir").header("Location") == "/index-dir/"


def test_listing_html(server):
    reply = server.get("/plain-dir/sub/")
    html = reply.text
    assert reply.status == 200 and reply.header("Content-Type") == "text/html; charset=utf-8"
    assert "Index of /plain-dir/sub/" in html
    assert '<a href="/">/</a>' in html and '<a href="/plain-dir/">plain-dir</a>' in html  # breadcrumbs
    assert '<a href="../">' in html  # parent link
    assert '<a href="deep.txt">deep.txt</a>' in html
    assert 'title="5 bytes"' in html  # exact size on hover
    for key in ("name", "size", "mtime"):
        assert f'href="?sort={key}&amp;order=' in html  # sortable columns
    assert re.search(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d\n", html)  # UTC; the page's script localises it


def test_listing_names_are_escaped_and_links_quoted(server):
    html = server.get("/").text
    assert "tag&lt;b&gt;.txt" in html and "<b>.txt" not in html
    assert 'href="tag%3Cb%3E.txt"' in html and 'href="space%20name.txt"' in html
    assert 'href="caf%C3%A9.txt"' in html


def json_names(server, path: str, **headers: str) -> list[str]:
    reply = server.get(path, **headers)
    assert reply.status == 200 and reply.header("Content-Type") == "application/json"
    return [entry["name"] for entry in reply.json()["entries"]]


def test_listing_json(server):
    document = server.get("/plain-dir/?format=json").json()
    assert document == {"path": "/plain-dir/", "entries": [
        {"name": "sub", "type": "dir", "size": 0, "mtime": document["entries"][0]["mtime"], "href": "sub/"},
        {"name": "a.txt", "type": "file", "size": 2, "mtime": document["entries"][1]["mtime"],
         "href": "a.txt"},
    ]}
    assert all(isinstance(e["mtime"], int) for e in document["entries"])
    assert server.get("/plain-dir/", Accept="application/json").json() == document


@pytest.mark.parametrize(("query", "expected"), [
    ("", ["A-folder", "z-folder", "a-small.txt", "b-big.txt", "c-mid.txt"]),
    ("sort=name&order=desc", ["z-folder", "A-folder", "c-mid.txt", "b-big.txt", "a-small.txt"]),
    ("sort=size", [None, None, *sorted(SORT_SIZES, key=SORT_SIZES.get)]),
    ("sort=size&order=desc", [None, None, *sorted(SORT_SIZES, key=SORT_SIZES.get, reverse=True)]),
    ("sort=mtime&order=asc", [None, None, "b-big.txt", "a-small.txt", "c-mid.txt"]),
    ("sort=mtime&order=desc", [None, None, "c-mid.txt", "a-small.txt", "b-big.txt"]),
    ("sort=nonsense&order=up", ["A-folder", "z-folder", "a-small.txt", "b-big.txt", "c-mid.txt"]),
])
def test_listing_sorting(server, query, expected):
    names = json_names(server, f"/sorting/?{query}&format=json")
    assert set(names[:2]) == {"A-folder", "z-folder"}  # folders first, always
    assert [want or got for want, got in zip(expected, names, strict=True)] == names


def test_listing_html_sorting_links(server):
    html = server.get("/sorting/?sort=size&order=asc").text
    assert 'href="?sort=size&amp;order=desc"' in html
    positions = [html.index(f">{name}<") for name in ("a-small.txt", "c-mid.txt", "b-big.txt")]
    assert positions == sorted(positions)


def test_hidden_names_are_not_listed(server):
    names = json_names(server, "/?format=json")
    assert "hello.txt" in names and "link-in" in names
    for name in (".hidden.txt", ".git", "link-out", "link-rel-out", "link-dir-out", "link-hidden",
                 "link-git"):
        assert name not in names
    assert ".secret" not in json_names(server, "/plain-dir/?format=json")
    assert ".hidden" not in server.get("/").text


@pytest.mark.parametrize("path", ["/.hidden.txt", "/.git/config", "/.git/", "/plain-dir/.secret",
                                  "/%2ehidden.txt", "/link-hidden", "/link-git/config"])
def test_hidden_names_are_404(server, path):
    reply = server.get(path)
    assert reply.status == 404
    assert b"HIDDEN-CONTENT" not in reply.body and b"[core]" not in reply.body


def test_empty_folder(server):
    assert server.get("/empty-dir/").status == 200
    assert json_names(server, "/empty-dir/?format=json") == []


def test_readme_under_the_listing(server):
    html = server.get("/readme-dir/").text
    assert "<h1>About this folder</h1>" in html and '<a href="x.txt">a link</a>' in html
    assert "&lt;i&gt;raw&lt;/i&gt;" in html and "<i>raw" not in html


def test_no_readme_flag_and_variable(make_server):
    for server in (make_server(["--no-readme"]), make_server(env={"CGIBOX_NO_README": "1"})):
        reply = server.get("/readme-dir/")
        assert reply.status == 200 and "README.md" in reply.text  # still listed...
        assert "About this folder" not in reply.text  # ...but not shown


def test_favicon_is_built_in(server):
    reply = server.get("/favicon.ico")
    assert reply.status == 200 and reply.header("Content-Type") == "image/x-icon"
    assert reply.body[:4] == b"\x00\x00\x01\x00"
    assert server.get("/favicon.ico", If_None_Match=reply.header("ETag")).status == 304
