"""cgibox.compat.urlpath (http.server's URL space, no I/O) and the one-App-per-configuration cache."""

from __future__ import annotations

import pytest

from cgibox.compat import CGIHTTPRequestHandler, apps, urlpath
from cgibox.compat.apps import Site


@pytest.mark.parametrize(("path", "collapsed"), [
    ("", "/"), ("/", "/"), ("//", "/"), ("/a/./b/../c/", "/a/c/"), ("/a/b/.", "/a/b/"),
    ("/a/b/..", "/a/"), ("/../../x", "/x"), ("cgi-bin%2ffile.py", "/cgi-bin/file.py"),
    ("/python.org/..%2f..%2f../%0a%0d/../tmp/dir", "/tmp/dir"), ("///a//b", "/a/b"),
    ("/%E2%82%AC", "/\u20ac"), ("/a#frag", "/a"),
])
def test_collapse(path, collapsed):
    assert urlpath.collapse(path) == collapsed


def test_bytes_that_are_not_utf8_round_trip():
    collapsed = urlpath.collapse("/caf%E9/x%FF")
    assert urlpath.quote_path(collapsed) == "/caf%E9/x%FF"


@pytest.mark.parametrize(("target", "core"), [
    ("/a/../b?x=1?y", "/b?x=1?y"), ("b/c", "/b/c"), ("/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd"),
    ("https://example.org//a/../b/", "/b/"), ("/a%5cb", "/a%5Cb"), ("/n%00", "/n%00"),
])
def test_core_target(target, core):
    assert urlpath.core_target(target) == core


def test_slash_redirect_keeps_the_clients_spelling():
    assert urlpath.slash_redirect("/a/..%2fb?q=1") == "/a/..%2fb/?q=1"
    assert urlpath.slash_redirect("dir?hi=1") == "dir/?hi=1"
    assert urlpath.slash_redirect("https://h.example/x") == "https://h.example/x/"


@pytest.mark.parametrize("target", ["/\\evil.com/../sub", "/x\x01\xff/../sub", "/sub?\x01",
                                    "/a b", "//evil.com/../sub", "/sub\\", "http:evil.com/../sub",
                                    "https:/evil.com/../sub", "javascript://x/../sub"])
def test_a_spelling_unsafe_to_send_back_gives_no_redirect(target):
    assert urlpath.slash_redirect(target) is None


def test_encode_location_leaves_only_visible_ascii():
    assert urlpath.encode_location("/sub/?\x01\xff\\ \u20ac") == "/sub/?%01%FF%5C%20%E2%82%AC"
    assert urlpath.encode_location("/a/..%2fb/?q=1") == "/a/..%2fb/?q=1"


def test_is_cgi_path_takes_the_shortest_listed_directory():
    directories = ["/cgi-bin", "/sub/dir/cgi-bin", "/cgi-bin/deep"]
    assert urlpath.is_cgi_path("/cgi-bin/deep/x", directories) == ("/cgi-bin", "deep/x")
    assert urlpath.is_cgi_path("/sub/dir/cgi-bin/s", directories) == ("/sub/dir/cgi-bin", "s")
    assert urlpath.is_cgi_path("/cgi-bin", directories) is None
    assert urlpath.is_cgi_path("/cgi-binx/s", directories) is None


@pytest.mark.parametrize("entry", ["", "/", "/..", "/a/../b", "/.hidden", "/./x"])
def test_a_cgi_directory_that_names_no_folder_is_ignored(entry):
    assert urlpath.mount_segments(entry) is None


class FakeHandler:
    directory = "."
    templates = None
    cgi_timeout = 30.0
    cgi_max = None
    max_body = 10485760
    show_readme = True
    index_pages = CGIHTTPRequestHandler.index_pages
    extensions_map = CGIHTTPRequestHandler.extensions_map


def test_one_app_per_configuration(tmp_path):
    handler = FakeHandler()
    handler.directory = str(tmp_path)
    first = Site.of(handler, ("/cgi-bin", "/htbin"), True).app()
    assert Site.of(handler, ("/htbin", "/cgi-bin"), True).app() is first  # same folders, same App
    assert Site.of(handler, ("/cgi-bin",), True).app() is not first
    assert Site.of(handler, ("/cgi-bin", "/htbin"), False).app() is not first
    assert [prefix for prefix, _ in first.cgi_mounts] == ["/cgi-bin", "/htbin"]
    assert first.config.service_routes is False


def test_the_app_cache_drops_the_least_recently_used(tmp_path, monkeypatch):
    monkeypatch.setattr(apps, "MAX_APPS", 2)
    monkeypatch.setattr(apps, "_apps", type(apps._apps)())
    handler = FakeHandler()
    handler.directory = str(tmp_path)
    busy = Site.of(handler, ("/a",), True).app()
    rare = Site.of(handler, ("/b",), True).app()
    assert Site.of(handler, ("/a",), True).app() is busy  # used again: now the most recent
    Site.of(handler, ("/c",), True).app()  # one too many: the least recently used goes
    assert Site.of(handler, ("/a",), True).app() is busy
    assert Site.of(handler, ("/b",), True).app() is not rare


def test_one_site_per_handler_shared_by_files_types_and_errors(tmp_path, monkeypatch):
    made: list[tuple] = []
    real_of = Site.of.__func__

    def counting_of(cls, handler, scripts, run_scripts):
        made.append((scripts, run_scripts))
        return real_of(cls, handler, scripts, run_scripts)

    monkeypatch.setattr(Site, "of", classmethod(counting_of))
    handler = CGIHTTPRequestHandler.__new__(CGIHTTPRequestHandler)  # no connection needed
    handler.directory = str(tmp_path)
    assert handler.guess_type("a.gz") == "application/gzip"
    app = handler.file_site().app()
    assert handler.guess_type("b.xz") == "application/x-xz"
    assert handler.site(tuple(handler.cgi_directories)).app() is app
    assert made == [(("/cgi-bin", "/htbin"), False)]  # one Site, the one send_head serves files with
