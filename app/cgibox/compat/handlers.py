"""SimpleHTTPRequestHandler and CGIHTTPRequestHandler with http.server's API, translating each
request to a core Request and writing the core's Response back through the standard library's
own send_response / send_header / end_headers, so subclasses that override those still work.

What to serve (files, listings, validators, ranges, CGI/1.1 runs, errors) is decided by
cgibox.core, by one App per configuration (see apps.py). Parsing the request head, dispatch to
do_GET / do_HEAD / do_POST, logging and the connection loop stay the standard library's.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, BinaryIO

from cgibox import __version__
from cgibox.compat import urlpath
from cgibox.compat.apps import Site
from cgibox.core import wire
from cgibox.core.errors import HTTPError, reason
from cgibox.core.request import Headers, Request
from cgibox.core.response import ConnectionCut, FileRegion, Response
from cgibox.core.router import App

# the core answers these itself: http.server's send_response has already written its own
_HEAD_OWNED = frozenset({"server", "date", "connection", "transfer-encoding", "keep-alive"})
# http.server joined repeated Accept fields with "," for HTTP_ACCEPT; scripts written for it
# may split on "," without stripping, and both spellings mean the same (RFC 9110 5.3)
_JOINED_BY_COMMA = ("accept",)


class ResponseBody:
    """The body of a core Response as the file object http.server's send_head() returns:
    do_GET copies it to wfile with copyfile() and closes it, which ends the response (files
    closed, a script's process group ended). A body that cannot be completed (a script past
    its timeout) reads as a short EOF and closes the connection."""

    def __init__(self, handler: SimpleHTTPRequestHandler, response: Response, chunked: bool) -> None:
        self._handler = handler
        self._response = response
        self._chunked = chunked
        self._parts = response.parts()
        self._chunks: Iterator[bytes] = iter(())
        self._done = False

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(1 << 16), b""))
        while not self._done:
            data = next(self._chunks, None)
            if data is not None:
                return wire.chunk(data) if self._chunked else data
            try:
                part = next(self._parts, None)
            except (ConnectionCut, HTTPError, OSError):
                self._cut()
                return b""
            if part is None:
                self._done = True
                return wire.LAST_CHUNK if self._chunked else b""
            if isinstance(part, FileRegion):
                self._chunks = part.read_chunks(min(size, 256 * 1024) or 1)
            elif part:
                self._chunks = iter((part,))
        return b""

    def _cut(self) -> None:
        self._done = True
        self._handler.close_connection = True

    def close(self) -> None:
        self._response.close()


class SimpleHTTPRequestHandler(BaseHTTPRequestHandler):
    """http.server.SimpleHTTPRequestHandler served by cgibox's core: GET and HEAD of files and
    listings under `directory` (the current directory by default)."""

    server_version = f"cgibox/{__version__}"
    # the head and the body leave in separate writes: without TCP_NODELAY a keep-alive client's
    # delayed ACK stalls every response (~40 ms) on HTTP/1.1
    disable_nagle_algorithm = True
    index_pages = ("index.html", "index.htm")
    extensions_map = {
        ".gz": "application/gzip",
        ".Z": "application/octet-stream",
        ".bz2": "application/x-bzip2",
        ".xz": "application/x-xz",
    }
    # cgibox settings http.server never had, with cgibox's defaults
    cgi_timeout: float = 30.0
    cgi_max: int | None = None  # scripts at once; None is 4 x CPUs
    max_body: int = 10485760
    templates: str | os.PathLike[str] | None = None  # a folder overriding built-in pages by name
    show_readme: bool = True  # a folder's README.md / README.txt under its listing (cgibox's --no-readme)

    def __init__(self, *args: Any, directory: str | os.PathLike[str] | None = None, **kwargs: Any) -> None:
        if directory is None:
            directory = os.getcwd()
        self.directory = os.fspath(directory)
        super().__init__(*args, **kwargs)

    # -- http.server's API ------------------------------------------------------------------

    def do_GET(self) -> None:
        """Serve a GET request."""
        self.send_body(self.send_head())

    def do_HEAD(self) -> None:
        """Serve a HEAD request."""
        body = self.send_head()
        if body:
            body.close()

    def send_head(self) -> ResponseBody | None:
        """Send the response head for this request; return its body (or None) for do_GET to copy."""
        return self.respond(self.file_site(), static=True)

    def translate_path(self, path: str) -> str:
        """The filesystem path under `directory` for a URL path, `..` never leaving it."""
        collapsed = urlpath.collapse(urlpath.split_target(path)[0])
        return os.path.join(self.directory, *[s for s in collapsed.split("/") if s]) + (
            "/" if collapsed.endswith("/") and collapsed != "/" else "")

    def guess_type(self, path: str) -> str:
        """The Content-Type for a file name, from extensions_map first (as the core serves it)."""
        return self.file_site().app().static.content_type(os.fspath(path))

    def send_body(self, body: BinaryIO | ResponseBody | None) -> None:
        """Copy a body send_head() returned to the client, then close it (which ends the response)."""
        if body:
            try:
                self.copyfile(body, self.wfile)  # type: ignore[arg-type]
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client left; the script (if any) ends below
            finally:
                body.close()

    def copyfile(self, source: BinaryIO, outputfile: BinaryIO) -> None:
        shutil.copyfileobj(source, outputfile)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """An error page rendered from cgibox's templates; the connection closes after it."""
        try:
            short = reason(int(code))
        except (TypeError, ValueError):
            short = "Error"
        self.log_error("code %d, message %s", code, message or short)
        try:
            app = self.file_site().app()
        except Exception:  # noqa: BLE001 - a site that cannot be set up still answers
            return BaseHTTPRequestHandler.send_error(self, code, message, explain)
        response = app.error(None, int(code), explain or message or "")
        self.send_response(code, short)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and not wire.has_no_body(int(code)):
            for part in response.parts():
                self.wfile.write(part if isinstance(part, bytes) else b"".join(part.read_chunks()))
        response.close()

    # -- translation to and from the core -----------------------------------------------------

    def site(self, scripts: tuple[str, ...] = (), run_scripts: bool = False) -> Site:
        """This handler's configuration: directory, script folders and the cgibox settings, made
        once per handler (one connection) for each set of script folders, as send_head,
        guess_type and run_cgi all ask for it."""
        key = (scripts, run_scripts)
        sites: dict[tuple[object, bool], Site] = self.__dict__.setdefault("_sites", {})
        site = sites.get(key)
        if site is None:
            site = sites[key] = Site.of(self, scripts, run_scripts)
        return site

    def file_site(self) -> Site:
        """The configuration files, listings and errors are served with."""
        return self.site()

    def core_request(self, target: str) -> Request:
        """A core Request for this request, with `target` as the core should see it."""
        fields: list[list[str]] = []
        first: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            lower = name.lower()
            if lower in _JOINED_BY_COMMA and lower in first:
                first[lower][1] += "," + value
                continue
            field = [name, value]
            fields.append(field)
            first.setdefault(lower, field)
        headers = Headers((name, value) for name, value in fields)
        client = self.client_address
        host, port = (client[0], client[1]) if isinstance(client, tuple) and len(client) >= 2 else ("-", 0)
        server = self.server
        protocol = "HTTP/1.1" if self.request_version == "HTTP/1.1" else "HTTP/1.0"
        request = Request(method=self.command, target=target, protocol=protocol, headers=headers,
                          remote_addr=str(host), remote_port=int(port),
                          server_name=str(getattr(server, "server_name", "localhost")),
                          server_port=int(getattr(server, "server_port", 0) or 0))
        return request

    def script_command(self, path: str) -> list[str] | None:
        """How a located script file starts; a handler that runs no scripts starts none
        (CGIHTTPRequestHandler says how, as http.server's is_executable/is_python did)."""
        return None

    def respond(self, site: Site, static: bool, target: str | None = None,
                script: bool = False) -> ResponseBody | None:
        """Hand this request to the core and write the head of its answer."""
        app = site.app()
        core_target = target if target is not None else urlpath.core_target(self.path)
        request = self.core_request(core_target)
        if script:
            request.script_command = self.script_command
        if script and "accept" not in request.headers:
            # http.server always gave scripts HTTP_ACCEPT, empty without the field; scripts
            # written for it read os.environ["HTTP_ACCEPT"] without a default
            request.headers.add("Accept", "")
        try:
            # http.server has already sent 100 Continue, when it was asked for, while parsing
            request.body, request.body_length = wire.body_reader(  # type: ignore[assignment]
                request.headers, self.rfile, app.config.max_body)
        except HTTPError as error:
            response = app.error(request, error.status, error.detail, error.headers, True)
        else:
            response = app.handle(request)
        if static:
            self._spell_redirect(request, response)
        return self.write_head(app, request, response)

    def _spell_redirect(self, request: Request, response: Response) -> None:
        """A folder's slash redirect names the URL as the client spelled it, as http.server's did
        (CPython's tests expect `..%2f` and `%0a` kept), when that spelling is safe to send back;
        otherwise the core's own Location, made from the collapsed path. Either way no Location
        starts with `//` or `/\\` or carries a byte outside visible ASCII."""
        if response.status != 301:
            return
        core_location = response.header("Location")
        if core_location is None:
            return
        expected = "/" + request.raw_path.lstrip("/") + "/" + ("?" + request.query if request.query else "")
        location = urlpath.slash_redirect(self.path) if core_location == expected else None
        if location is None:
            location = urlpath.encode_location(core_location)
        response.headers = [(k, location if k.lower() == "location" else v) for k, v in response.headers]

    def write_head(self, app: App, request: Request, response: Response) -> ResponseBody | None:
        """Status line and headers through send_response / send_header / end_headers; the body's
        framing follows protocol_version (Content-Length, chunked on HTTP/1.1, else closing)."""
        if response.raw_head is not None:  # an nph- script's own head, sent as it is
            self.log_request(response.status)
            self.close_connection = True
            self.wfile.write(response.raw_head)
            return ResponseBody(self, response, chunked=False)
        status = response.status
        has_body = not response.omit_body and not wire.has_no_body(status)
        names = {name.lower() for name, _ in response.headers}
        self.send_response(status, response.reason or reason(status))
        for name, value in response.headers:
            if name.lower() not in _HEAD_OWNED:
                self.send_header(name, value)
        chunked = False
        if has_body and "content-length" not in names:
            if self.request_version == "HTTP/1.1" and self.protocol_version >= "HTTP/1.1":
                chunked = True
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.close_connection = True
        if response.close_connection or not wire.body_read_to_end(request):
            self.close_connection = True  # asked for, or the request body was not read to its end
        if self.close_connection and self.protocol_version >= "HTTP/1.1":
            self.send_header("Connection", "close")
        self.end_headers()
        if not has_body:
            response.close()
            return None
        return ResponseBody(self, response, chunked)


class CGIHTTPRequestHandler(SimpleHTTPRequestHandler):
    """http.server.CGIHTTPRequestHandler served by cgibox's core: scripts under the
    `cgi_directories` URL paths of `directory` run as CGI/1.1 (RFC 3875); their sources are never
    served. Everything else is served as SimpleHTTPRequestHandler serves it."""

    cgi_directories = ["/cgi-bin", "/htbin"]
    have_fork = hasattr(os, "fork")  # http.server's attribute; cgibox always spawns with subprocess

    def do_POST(self) -> None:
        """Serve a POST request: a script runs; anything else is the core's 405."""
        if self.is_cgi():
            self.run_cgi()
        else:
            self.send_body(self.respond(self.file_site(), static=True))

    def send_head(self) -> ResponseBody | None:
        if self.is_cgi():
            self.run_cgi()
            return None
        return super().send_head()

    def file_site(self) -> Site:
        """Files are served with the script folders known (never served as files), so that
        send_head, guess_type and send_error share one App."""
        return self.site(tuple(self.cgi_directories))

    def is_cgi(self) -> bool:
        """Whether the path names a script under one of cgi_directories; sets cgi_info to
        (directory, rest) as http.server did, the query kept at the end of rest."""
        path, query = urlpath.split_target(self.path)
        found = urlpath.is_cgi_path(urlpath.collapse(path), list(self.cgi_directories))
        if found is None:
            return False
        directory, rest = found
        self.cgi_info = directory, rest + ("?" + query if query else "")
        return True

    def is_executable(self, path: str) -> bool:
        """Whether the script file `path` runs as itself (consulted for every run)."""
        return os.access(path, os.X_OK)

    def is_python(self, path: str) -> bool:
        """Whether a script file that is not executable runs with this interpreter."""
        return os.path.splitext(path)[1].lower() in (".py", ".pyw")

    def script_command(self, path: str) -> list[str] | None:
        """How the core starts the script file `path` it found under a CGI directory, by this
        handler's is_executable() and is_python(): the file itself, `python -u` with it (as
        http.server's non-fork path did, on every system here), or None (403)."""
        if self.is_executable(path):
            return [path]
        if self.is_python(path) and sys.executable:
            return [sys.executable, "-u", path]
        return None

    def run_cgi(self) -> None:
        """Run the script cgi_info names and send what it answers (streamed, Status: honoured)."""
        directory, rest = self.cgi_info
        path, query = urlpath.split_target(rest)
        target = urlpath.quote_path(urlpath.collapse(directory + "/" + path)) + ("?" + query if query else "")
        site = self.site(tuple(self.cgi_directories) + (directory,), run_scripts=True)
        self.send_body(self.respond(site, static=False, target=target, script=True))
