"""The App options cgibox.compat builds on (Config.cgi_mounts, run_scripts, service_routes,
builtin_favicon, index_pages, content_types), through App.handle with Request objects only; the main server's
defaults are covered by test_static.py and test_cgi_runner.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from cgibox.config import Config
from cgibox.core.request import Headers, Request
from cgibox.core.response import FileRegion
from cgibox.core.router import App
from cgibox.core.stats import Stats

SCRIPT = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s|%s|%s' \"$SCRIPT_NAME\" \"$PATH_INFO\" \"$0\"\n"


def write_script(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SCRIPT)
    path.chmod(0o755)


@pytest.fixture
def root(tmp_path) -> Path:
    """A served folder with script folders inside it, http.server style."""
    site = tmp_path / "site"
    write_script(site / "cgi-bin" / "run")
    write_script(site / "cgi-bin" / "child" / "deeper")
    write_script(site / "htbin" / "other")
    write_script(site / "sub" / "dir" / "cgi-bin" / "nested")
    (site / "sub" / "dir" / "plain.txt").write_text("plain\n")
    (site / "run").write_text("not a script here\n")
    return site


def make(root: Path, tmp_path: Path, **options) -> App:
    config = Config(root=root, cgi_dir=root / "cgi-bin", **options)
    return App(config, Stats.create(str(tmp_path / "stats")), "compat")


def mounts(root: Path, *prefixes: str) -> tuple[tuple[str, Path], ...]:
    return tuple((prefix, root.joinpath(*prefix.strip("/").split("/"))) for prefix in prefixes)


def call(app: App, target: str, method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
    response = app.handle(Request(method, target, headers=Headers([("Host", "localhost")]),
                                  remote_addr="127.0.0.1", server_port=8000))
    try:
        body = b"".join(b"".join(part.read_chunks()) if isinstance(part, FileRegion) else part
                        for part in response.parts())
    finally:
        response.close()
    return response.status, body, {k.lower(): v for k, v in response.headers}


def test_several_mounts_run_their_scripts_with_their_own_script_name(root, tmp_path):
    app = make(root, tmp_path, cgi_mounts=mounts(root, "/cgi-bin", "/htbin", "/sub/dir/cgi-bin"))
    status, body, _ = call(app, "/cgi-bin/run/extra")
    assert status == 200 and body.split(b"|")[:2] == [b"/cgi-bin/run", b"/extra"]
    assert call(app, "/htbin/other")[1].startswith(b"/htbin/other|")
    assert call(app, "/cgi-bin/child/deeper")[1].startswith(b"/cgi-bin/child/deeper|")
    status, body, _ = call(app, "/sub/dir/cgi-bin/nested/x")
    assert status == 200 and body.split(b"|")[:2] == [b"/sub/dir/cgi-bin/nested", b"/x"]
    # beside a mount, files are files
    assert call(app, "/sub/dir/plain.txt")[1] == b"plain\n"
    assert call(app, "/run")[1] == b"not a script here\n"


def test_a_script_source_is_never_served_from_any_mount(root, tmp_path):
    app = make(root, tmp_path, cgi_mounts=mounts(root, "/cgi-bin", "/sub/dir/cgi-bin"))
    for path in ("/cgi-bin/", "/sub/dir/cgi-bin/", "/cgi-bin/child/"):
        assert call(app, path)[0] == 403, path
    listing = call(app, "/sub/dir/")[1]
    assert b"plain.txt" in listing and b"cgi-bin" not in listing
    assert b"cgi-bin" not in call(app, "/")[1]
    # the same folders with scripts switched off: nothing runs and no source is served
    files_only = make(root, tmp_path, cgi_mounts=mounts(root, "/cgi-bin", "/sub/dir/cgi-bin"),
                      run_scripts=False)
    for path in ("/cgi-bin/run", "/sub/dir/cgi-bin/nested", "/cgi-bin/child/deeper", "/cgi-bin/"):
        status, body, _ = call(files_only, path)
        assert status == 404 and b"#!/bin/sh" not in body, path
    assert call(files_only, "/sub/dir/plain.txt")[0] == 200


def test_no_mounts_means_no_scripts_and_plain_files(root, tmp_path):
    """http.server's SimpleHTTPRequestHandler: a cgi-bin folder is only a folder."""
    app = make(root, tmp_path, cgi_mounts=())
    status, body, _ = call(app, "/cgi-bin/run")
    assert status == 200 and body == SCRIPT.encode()
    assert b"cgi-bin" in call(app, "/")[1]


def test_the_default_is_the_cgi_dir_at_cgi_bin(root, tmp_path):
    app = make(root, tmp_path)
    assert call(app, "/cgi-bin/run")[1].startswith(b"/cgi-bin/run|")
    assert call(app, "/htbin/other")[1] == SCRIPT.encode()  # only a file here


def test_service_routes_can_be_left_to_files(root, tmp_path):
    (root / "healthz").write_text("my own file\n")
    assert call(make(root, tmp_path), "/healthz")[1] == b"ok\n"
    assert call(make(root, tmp_path, service_routes=False), "/healthz")[1] == b"my own file\n"
    assert call(make(root, tmp_path, service_routes=False), "/stats")[0] == 404


def test_the_built_in_favicon_is_a_switch_of_its_own(root, tmp_path):
    without_routes = make(root, tmp_path, service_routes=False)
    status, body, _ = call(without_routes, "/favicon.ico")
    assert status == 200 and body[:4] == b"\0\0\1\0"  # an ICO file, though /stats is off
    assert call(make(root, tmp_path, builtin_favicon=False), "/favicon.ico")[0] == 404


def test_index_pages_in_order(root, tmp_path):
    folder = root / "pages"
    folder.mkdir()
    (folder / "index.htm").write_text("htm\n")
    assert b"index.htm" in call(make(root, tmp_path), "/pages/")[1]  # the default lists it
    app = make(root, tmp_path, index_pages=("index.html", "index.htm"))
    assert call(app, "/pages/")[1] == b"htm\n"
    (folder / "index.html").write_text("html\n")
    assert call(app, "/pages/")[1] == b"html\n"


def test_content_types_before_mimetypes(root, tmp_path):
    (root / "data.gz").write_bytes(b"\x1f\x8b")
    (root / "page.HTM").write_text("x")
    (root / "notes.txt").write_text("x")
    app = make(root, tmp_path, content_types=((".gz", "application/x-mine"), (".htm", "text/x-htm")))
    assert call(app, "/data.gz")[2]["content-type"] == "application/x-mine"
    assert call(app, "/page.HTM")[2]["content-type"] == "text/x-htm"  # lower-cased second
    assert call(app, "/notes.txt")[2]["content-type"] == "text/plain; charset=utf-8"


def test_an_unknown_method_still_reaches_a_script(root, tmp_path):
    """501 is for files: a script decides about methods itself."""
    app = make(root, tmp_path, cgi_mounts=mounts(root, "/cgi-bin"))
    assert call(app, "/cgi-bin/run", "PROPFIND")[0] == 200
    assert call(app, "/run", "PROPFIND")[0] == 501


def test_extra_templates_come_after_the_users_and_can_extend_the_built_in_page(root, tmp_path):
    extra, user = tmp_path / "extra", tmp_path / "user"
    extra.mkdir()
    user.mkdir()
    (extra / "listing.html").write_text(
        '{% extends "builtin/listing.html" %}{% block title %}For {{ target }}{% endblock %}')
    (extra / "404.html").write_text("extra 404")
    (user / "404.html").write_text("user 404")
    app = make(root, tmp_path, templates=user, extra_templates=(extra,))
    page = call(app, "/sub/?x=%bb&y=<b>")[1].decode()
    assert "<title>For /sub/?x=\ufffd&amp;y=&lt;b&gt;</title>" in page  # decoded for display, escaped
    assert "dir/" in page  # the rest is the built-in listing
    assert "<title>For /sub/?x=2</title>" in call(app, "/sub/?x=2")[1].decode()  # not a cached page
    assert call(app, "/missing")[1] == b"user 404"
    assert b"Index of /sub/" in call(make(root, tmp_path), "/sub/?x=1")[1]  # the default is unchanged


def test_a_fronts_script_command_decides_how_a_script_file_runs(root, tmp_path):
    import sys
    (root / "cgi-bin" / "tool.py").write_text(
        "print('Content-Type: text/plain')\nprint()\nprint('py', end='')\n")
    app = make(root, tmp_path)
    assert call(app, "/cgi-bin/tool.py")[0] == 403  # the default: not executable, not run
    asked: list[str] = []

    def command(path: str) -> list[str] | None:
        asked.append(path)
        return [sys.executable, "-u", path] if path.endswith(".py") else None

    def run(target: str) -> tuple[int, bytes]:
        request = Request("GET", target, headers=Headers([("Host", "localhost")]), remote_addr="127.0.0.1",
                          server_port=8000)
        request.script_command = command
        response = app.handle(request)
        try:
            return response.status, b"".join(response.parts())
        finally:
            response.close()

    assert run("/cgi-bin/tool.py") == (200, b"py")
    assert run("/cgi-bin/run")[0] == 403  # executable, but the front's rule refuses it
    assert asked == [str(root / "cgi-bin" / "tool.py"), str(root / "cgi-bin" / "run")]
