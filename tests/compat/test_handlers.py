"""cgibox.compat's handlers as code written against http.server uses them: in a stock
HTTPServer / ThreadingHTTPServer, with directory=, per-instance cgi_directories (nested ones),
and user subclasses overriding do_GET, is_cgi, send_header, log_message and the class settings."""

from __future__ import annotations

import functools
import http.client
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import HTTPServer, ThreadingHTTPServer
from pathlib import Path

import pytest

from cgibox.compat import CGIHTTPRequestHandler, SimpleHTTPRequestHandler

SCRIPT = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nran %s %s' \"$SCRIPT_NAME\" \"$QUERY_STRING\"\n"
SOURCE_MARK = "#!/bin/sh"


def write_script(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SCRIPT)
    path.chmod(0o755)


@pytest.fixture
def site(tmp_path) -> Path:
    root = tmp_path / "site"
    write_script(root / "cgi-bin" / "run")
    write_script(root / "sub" / "dir" / "cgi-bin" / "nested")
    (root / "sub" / "dir" / "cgi-bin" / "notes.txt").write_text("not for the web\n")
    (root / "sub" / "dir" / "page.txt").write_text("a page\n")
    (root / "hello.txt").write_text("hello\n")
    return root


@contextmanager
def serving(handler, server_class=HTTPServer) -> Iterator[tuple[str, int]]:
    server = server_class(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def get(address, path: str, method: str = "GET", headers=None, body=None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


class Quiet:
    def log_message(self, format, *args):  # noqa: A002 - http.server's own parameter name
        pass


def test_directory_keyword_in_a_stock_server(site):
    handler = functools.partial(type("H", (Quiet, SimpleHTTPRequestHandler), {}), directory=site)
    with serving(handler) as address:
        status, headers, body = get(address, "/hello.txt")
        assert status == 200 and body == b"hello\n" and headers["etag"]
        status, _, body = get(address, "/cgi-bin/run")  # no CGI here: a file like any other
        assert status == 200 and body.decode() == SCRIPT
        assert b"Directory listing for /sub/" in get(address, "/sub/")[2]
        assert get(address, "/hello.txt", "BREW")[0] == 501


def test_nested_cgi_directories_per_instance_and_no_source_by_any_spelling(site):
    class Handler(Quiet, CGIHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            self.cgi_directories = ["/cgi-bin", "/sub/dir/cgi-bin"]  # this instance's own list
            super().__init__(*args, directory=site, **kwargs)

    with serving(Handler, ThreadingHTTPServer) as address:
        status, _, body = get(address, "/sub/dir/cgi-bin/nested?a=1")
        assert (status, body) == (200, b"ran /sub/dir/cgi-bin/nested a=1")
        assert get(address, "/cgi-bin/run")[2] == b"ran /cgi-bin/run "
        assert get(address, "/sub/dir/page.txt")[2] == b"a page\n"
        for spelling in ("/sub/dir/cgi-bin/../cgi-bin/nested", "/sub//dir/cgi-bin/nested",
                         "/sub/dir%2fcgi-bin/nested", "/sub/./dir/cgi-bin/nested",
                         "/x/../sub/dir/cgi-bin/nested"):
            status, _, body = get(address, spelling)
            assert status == 200 and body.startswith(b"ran /sub/dir/cgi-bin/nested"), spelling
        for path in ("/sub/dir/cgi-bin/", "/sub/dir/cgi-bin/notes.txt", "/sub/dir/cgi-bin/missing"):
            status, _, body = get(address, path)
            assert status in (403, 404) and b"not for the web" not in body, path
        listing = get(address, "/sub/dir/")[2]
        assert b"page.txt" in listing and b"cgi-bin" not in listing
    assert "/sub/dir/cgi-bin" not in CGIHTTPRequestHandler.cgi_directories  # the class list is untouched


def test_a_subclass_overriding_do_get_and_is_cgi(site):
    write_script(site / "cgi-bin" / "tool.cgi")
    lines: list[str] = []

    class Handler(CGIHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/version":
                body = b"custom\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

        def is_cgi(self):
            # only *.cgi scripts run; anything else under cgi-bin is not served at all
            return super().is_cgi() and self.cgi_info[1].split("?")[0].endswith(".cgi")

        def send_header(self, keyword, value):
            super().send_header(keyword, value)
            if keyword.lower() == "content-type":
                super().send_header("X-Seen-Type", value)

        def log_message(self, format, *args):  # noqa: A002
            lines.append(format % args)

    with serving(functools.partial(Handler, directory=site)) as address:
        assert get(address, "/version")[2] == b"custom\n"
        status, headers, body = get(address, "/cgi-bin/tool.cgi?x=1")
        assert (status, body) == (200, b"ran /cgi-bin/tool.cgi x=1")
        assert headers["x-seen-type"] == "text/plain"
        status, _, body = get(address, "/cgi-bin/run")  # not CGI by the override: still no source
        assert status == 404 and SOURCE_MARK.encode() not in body
        assert get(address, "/hello.txt")[1]["x-seen-type"] == "text/plain; charset=utf-8"
        assert get(address, "/cgi-bin/tool.cgi", "POST", body=b"x")[0] == 200
    assert any('"GET /cgi-bin/tool.cgi?x=1 HTTP/1.1" 200' in line for line in lines)


def test_class_settings_protocol_and_the_stdlib_attributes(site):
    (site / "pages").mkdir()
    (site / "pages" / "index.htm").write_text("htm index\n")
    (site / "data.log").write_text("x\n")

    class Handler(Quiet, CGIHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        extensions_map = {".log": "text/x-log"}
        index_pages = ("index.htm",)
        cgi_timeout = 1.0

    write_script(site / "cgi-bin" / "slow")
    (site / "cgi-bin" / "slow").write_text("#!/bin/sh\nsleep 5\n")
    with serving(functools.partial(Handler, directory=site), ThreadingHTTPServer) as address:
        conn = http.client.HTTPConnection(*address, timeout=10)
        try:
            for path, expected in (("/pages/", b"htm index\n"), ("/data.log", b"x\n"),
                                   ("/cgi-bin/run", b"ran /cgi-bin/run ")):
                conn.request("GET", path)
                response = conn.getresponse()
                assert response.version == 11 and response.read() == expected
            assert response.getheader("Transfer-Encoding") == "chunked"  # a script's body, streamed
            conn.request("GET", "/data.log")
            assert conn.getresponse().getheader("Content-Type") == "text/x-log"
        finally:
            conn.close()
        assert get(address, "/cgi-bin/slow")[0] == 504  # cgi_timeout of 1 s ends it


def test_importing_compat_needs_no_gunicorn():
    code = ("import sys; sys.modules['gunicorn'] = None\n"
            "from cgibox.compat import CGIHTTPRequestHandler, SimpleHTTPRequestHandler\n"
            "assert CGIHTTPRequestHandler.cgi_directories == ['/cgi-bin', '/htbin']\n"
            "assert CGIHTTPRequestHandler.protocol_version == 'HTTP/1.0'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
