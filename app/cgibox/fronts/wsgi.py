"""The WSGI front: `application(environ, start_response)` translating a WSGI environ into a core
Request and the core's Response back into a status, headers and an iterable.

`gunicorn cgibox.wsgi:application` configures it from the CGIBOX_* environment; `cgibox --front
gunicorn` (fronts/gunicorn_app.py) builds it in gunicorn's master before the workers fork.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from cgibox.config import Config
from cgibox.core.conditional import is_digits
from cgibox.core.errors import reason
from cgibox.core.request import Headers, Request
from cgibox.core.response import ConnectionCut, FileRegion, Response
from cgibox.core.router import App
from cgibox.grammars import HOP_BY_HOP

# environ keys that are headers without the HTTP_ prefix (PEP 3333)
UNPREFIXED = {"CONTENT_TYPE": "Content-Type", "CONTENT_LENGTH": "Content-Length"}


def header_name(key: str) -> str:
    """HTTP_USER_AGENT -> User-Agent."""
    return "-".join(part.capitalize() for part in key[5:].split("_"))


def request_from_environ(environ: dict[str, Any]) -> Request:
    headers = Headers()
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.add(header_name(key), value)
        elif key in UNPREFIXED and value != "":
            headers.add(UNPREFIXED[key], value)
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not target:
        path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
        target = quote(path, safe="/;:@&=+$,!~*'()")
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
    length_text = environ.get("CONTENT_LENGTH", "")
    if is_digits(length_text):
        body_length: int | None = int(length_text)
    elif "chunked" in (environ.get("HTTP_TRANSFER_ENCODING") or "").lower():
        body_length = None
    else:
        body_length = 0
    return Request(
        method=environ["REQUEST_METHOD"], target=target,
        protocol=environ.get("SERVER_PROTOCOL", "HTTP/1.1"), headers=headers,
        body=environ["wsgi.input"], body_length=body_length,
        remote_addr=environ.get("REMOTE_ADDR", "-"), remote_port=int(environ.get("REMOTE_PORT") or 0),
        server_name=environ.get("SERVER_NAME", "localhost"),
        server_port=int(environ.get("SERVER_PORT") or 0), scheme=environ.get("wsgi.url_scheme", "http"),
    )


class ResponseBody:
    """The WSGI iterable: yields the core's body parts, and on close() ends the exchange once."""

    def __init__(self, app: App, request: Request, response: Response) -> None:
        self.app = app
        self.request = request
        self.response = response
        self.sent = 0
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for part in self.response.parts():
                chunks = part.read_chunks() if isinstance(part, FileRegion) else (part,)
                for data in chunks:
                    if data:
                        self.sent += len(data)
                        yield data
        except ConnectionCut:
            # gunicorn drops a connection quietly on a reset; anything else it logs as a crash
            raise ConnectionResetError(errno.ECONNRESET, "response cut short by the application") from None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.response.close()
        self.app.finish(self.request, self.response.status, self.sent, cgi_run=self.response.cgi_run,
                        route_kind=self.response.route_kind)


def close_after(start_response: Callable[..., Any]) -> None:
    """Close the connection after this response (a 408 for a stalled body, a cut script). WSGI
    has no word for it and gunicorn drops a Connection header the application sets; its
    start_response is a method of its Response, whose force_close() does it. Other servers: the
    Connection header was dropped as hop-by-hop, and they decide themselves."""
    force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
    if callable(force_close):
        force_close()


class WSGIApplication:
    """A WSGI callable around one core App."""

    def __init__(self, app: App) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> object:
        request = request_from_environ(environ)
        response = self.app.handle(request)
        headers = [(k, v) for k, v in response.headers if k.lower() not in HOP_BY_HOP]
        start_response(f"{response.status} {response.reason or reason(response.status)}", headers)
        if response.close_connection:
            close_after(start_response)
        body = response.body
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(body, FileRegion) and file_wrapper is not None:
            # gunicorn sends a wrapped file with sendfile from its current offset for Content-Length
            body.file.seek(body.offset)
            wrapper = file_wrapper(body.file)
            whole = ResponseBody(self.app, request, response)
            whole.sent = body.length
            wrapper.close = whole.close
            return wrapper
        return ResponseBody(self.app, request, response)


def default_stats_path() -> str:
    """Where workers started by a plain `gunicorn cgibox.wsgi:application` meet: keyed by their
    parent (gunicorn's master), so all workers of one server share one file."""
    return os.path.join(tempfile.gettempdir(), f"cgibox-stats-{os.getuid()}-{os.getppid()}")


# the stats file `cgibox --front gunicorn` made, for workers that import cgibox.wsgi themselves
STATS_FILE_VARIABLE = "CGIBOX_STATS_FILE"


def build(config: Config, stats_path: str | None = None, front: str = "gunicorn") -> WSGIApplication:
    from cgibox.startup import make_app

    path = stats_path or os.environ.get(STATS_FILE_VARIABLE) or default_stats_path()
    return WSGIApplication(make_app(config, path, front))


class LazyApplication:
    """`cgibox.wsgi:application`: the App for a checked Config, built on first use once per process
    (in each worker, even under --preload, so default_stats_path() is keyed by gunicorn's master)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._app: WSGIApplication | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> object:
        if self._app is None:
            self._app = build(self.config)
        return self._app(environ, start_response)
