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
from urllib.parse import urljoin, urlsplit

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


def raw_exchange(address, request: bytes) -> bytes:
    """The whole answer to a request sent byte for byte (HTTP/1.0: the server closes after it)."""
    import socket
    with socket.create_connection(address, timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def head_of(answer: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    head = answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    fields = dict(line.split(b": ", 1) for line in head[1:])
    return head[0], {name.lower(): value for name, value in fields.items()}


@pytest.mark.parametrize("target", [b"/\\evil.com/../sub", b"/x\x01\xff/../sub", b"/sub?\x01\xff",
                                    b"/\\/evil.com/../sub", b"/%5Cevil.com/../sub",
                                    b"http:evil.com/../sub"])
def test_a_folder_redirect_never_leaves_the_site_nor_carries_raw_bytes(site, target):
    handler = functools.partial(type("H", (Quiet, CGIHTTPRequestHandler), {}), directory=site)
    with serving(handler) as address:
        status, fields = head_of(raw_exchange(address, b"GET " + target + b" HTTP/1.0\r\n\r\n"))
    if status.startswith(b"HTTP/1.0 301"):
        location = fields[b"location"]
        assert location.startswith(b"/") and not location.startswith((b"//", b"/\\")), location
        assert b"\\" not in location, location  # browsers read "\\" as "/"; "%5C" they do not
        assert urlsplit(urljoin("https://site.example/a/", location.decode())).netloc == "site.example"
        assert all(0x21 <= byte <= 0x7E for byte in location), location
    else:  # as the main server answers them
        assert status.startswith((b"HTTP/1.0 400", b"HTTP/1.0 404")), status


def test_a_safe_spelling_is_kept_in_the_redirect(site):
    handler = functools.partial(type("H", (Quiet, CGIHTTPRequestHandler), {}), directory=site)
    with serving(handler) as address:
        _, fields = head_of(raw_exchange(address, b"GET /x/..%2fsub?a=%01 HTTP/1.0\r\n\r\n"))
        assert fields[b"location"] == b"/x/..%2fsub/?a=%01"
        _, fields = head_of(raw_exchange(address, b"GET /\\evil.com/../sub HTTP/1.0\r\n\r\n"))
        assert fields[b"location"] == b"/sub/"  # the client's spelling was not safe: the path itself


def test_a_scripts_own_reason_phrase_goes_out(site):
    script = site / "cgi-bin" / "nope"
    script.write_text("#!/bin/sh\nprintf 'Status: 404 Nope\\nContent-Type: text/plain\\n\\ngone'\n")
    script.chmod(0o755)
    handler = functools.partial(type("H", (Quiet, CGIHTTPRequestHandler), {}), directory=site)
    with serving(handler) as address:
        answer = raw_exchange(address, b"GET /cgi-bin/nope HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 404 Nope\r\n") and answer.endswith(b"gone")


def test_the_built_in_favicon_when_the_folder_has_none(site):
    handler = functools.partial(type("H", (Quiet, SimpleHTTPRequestHandler), {}), directory=site)
    with serving(handler) as address:
        status, headers, body = get(address, "/favicon.ico")
        assert status == 200 and headers["content-type"] == "image/x-icon" and body[:4] == b"\0\0\1\0"
        (site / "favicon.ico").write_bytes(b"own icon")
        assert get(address, "/favicon.ico")[2] == b"own icon"
        assert get(address, "/stats")[0] == 404  # the other service routes stay off


def test_show_readme_false_hides_a_folders_readme(site):
    (site / "sub" / "README.md").write_text("# readme words\n")
    shown = functools.partial(type("H", (Quiet, SimpleHTTPRequestHandler), {}), directory=site)
    hidden = functools.partial(type("H", (Quiet, SimpleHTTPRequestHandler), {"show_readme": False}),
                               directory=site)
    with serving(shown) as address:
        assert b"readme words" in get(address, "/sub/")[2]
    with serving(hidden) as address:
        listing = get(address, "/sub/")[2]
        assert b"Directory listing for /sub/" in listing and b"readme words" not in listing


PY_SCRIPT = "print('Content-Type: text/plain')\nprint()\nprint('python ran', end='')\n"


def test_a_python_script_that_is_not_executable_runs_with_the_interpreter(site):
    (site / "cgi-bin" / "tool.py").write_text(PY_SCRIPT)  # mode 0644: no shebang, no x bit
    (site / "cgi-bin" / "plain").write_text(SCRIPT)  # not executable, not Python: refused
    handler = functools.partial(type("H", (Quiet, CGIHTTPRequestHandler), {}), directory=site)
    with serving(handler) as address:
        assert get(address, "/cgi-bin/tool.py")[:3:2] == (200, b"python ran")
        status, _, body = get(address, "/cgi-bin/plain")
        assert status == 403 and SOURCE_MARK.encode() not in body


def test_is_python_and_is_executable_overrides_are_consulted(site):
    (site / "cgi-bin" / "tool.py").write_text(PY_SCRIPT)
    (site / "cgi-bin" / "tool.cgi").write_text(PY_SCRIPT)
    seen: list[str] = []

    class Handler(Quiet, CGIHTTPRequestHandler):
        def is_python(self, path):
            seen.append(path)
            return path.endswith(".cgi")  # .py no longer counts; .cgi does

        def is_executable(self, path):
            return not path.endswith("/run") and super().is_executable(path)

    with serving(functools.partial(Handler, directory=site)) as address:
        assert get(address, "/cgi-bin/tool.cgi")[:3:2] == (200, b"python ran")
        assert get(address, "/cgi-bin/tool.py")[0] == 403
        status, _, body = get(address, "/cgi-bin/run")  # executable on disk, refused by the override
        assert status == 403 and SOURCE_MARK.encode() not in body
    assert any(path.endswith("cgi-bin/tool.cgi") for path in seen)
