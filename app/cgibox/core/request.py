"""Request: what every front hands the core (method, target, headers, body stream, peer)."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import parse_qs


class Headers:
    """Case-insensitive, multi-valued header fields in the order they arrived."""

    __slots__ = ("_items", "_index")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        self._index: dict[str, list[str]] = {}
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))
        self._index.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        """All values of `name` joined with ", " (RFC 9110 5.3), or `default`."""
        values = self._index.get(name.lower())
        if not values:
            return default
        return values[0] if len(values) == 1 else ", ".join(values)

    def get_all(self, name: str) -> list[str]:
        return list(self._index.get(name.lower(), ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        """Distinct lower-cased names, in first-seen order."""
        return list(self._index)


EMPTY_BODY: BinaryIO = io.BytesIO(b"")


@dataclass(slots=True)
class Request:
    """One HTTP request as the core sees it, whatever front received it.

    `target` is the request-target exactly as sent (still percent-encoded). `body` is the
    request body already freed of its transfer framing; `body_length` is its Content-Length,
    or None when the length is unknown (a chunked body: read `body` until EOF).
    """

    method: str
    target: str
    protocol: str = "HTTP/1.1"
    headers: Headers = field(default_factory=Headers)
    body: BinaryIO = EMPTY_BODY
    body_length: int | None = 0
    remote_addr: str = "-"
    remote_port: int = 0
    server_name: str = "localhost"
    server_port: int = 0
    scheme: str = "http"
    received_at: float = field(default_factory=time.time)
    # the user a login proved (core/auth.py); None without one
    remote_user: str | None = None
    # how a script file the core located is started, for a front with a rule of its own
    # (cgibox.compat's is_executable/is_python): called with the file's real name, it gives the
    # command (the query's words follow) or None to refuse it (403). None: executable files
    # run as themselves, every other file is 403.
    script_command: Callable[[str], list[str] | None] | None = None

    @property
    def raw_path(self) -> str:
        """The path part of the target, still percent-encoded."""
        path = self.target.split("?", 1)[0]
        if not path.startswith("/"):
            # absolute-form ("http://host/path", RFC 9112 3.2.2): keep the path only
            if "://" in path:
                rest = path.split("://", 1)[1]
                slash = rest.find("/")
                return rest[slash:] if slash >= 0 else "/"
        return path

    @property
    def query(self) -> str:
        """The raw query string ("" when there is none)."""
        _, sep, query = self.target.partition("?")
        return query if sep else ""

    def query_params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    def query_param(self, name: str) -> str | None:
        values = self.query_params().get(name)
        return values[-1] if values else None

    @property
    def wants_json(self) -> bool:
        """The client asked for JSON: `?format=json`, or an Accept header preferring it."""
        if self.query and self.query_param("format") == "json":
            return True
        accept = self.headers.get("accept", "") or ""
        return "application/json" in accept and "text/html" not in accept

    @property
    def http11(self) -> bool:
        return self.protocol == "HTTP/1.1"


# -- the core's door: what no HTTP client can send -------------------------------------------------

# RFC 9110 5.6.2 token (methods, header names); fullmatch, since "$" would also match before a
# final newline ("Proxy\n")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PROTOCOL = re.compile(r"HTTP/[0-9]\.[0-9]")
# a request-target is visible ASCII (RFC 9112 3.2): no space, control character or anything above
_TARGET = re.compile(r"[\x21-\x7e]+")
# field values: visible characters, obs-text (one byte each, latin-1), space and tab; no NUL,
# CR, LF or other control character, and nothing above U+00FF (no byte on the wire is that)
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def request_problem(request: Request) -> str | None:
    """Why no HTTP client could have sent `request`, or None when it could have.

    Fronts give the core text with one character per byte received; a front built on another
    parser (gunicorn, http.server) may let through what ours refuses. App.handle answers a
    request with a problem 400 before anything else looks at it, so no part of the core has to
    guard against NUL, CR, LF or lone surrogates in a method, target or header field again.
    """
    if not _TOKEN.fullmatch(request.method):
        return "malformed method"
    if not _TARGET.fullmatch(request.target) or not (
            request.target.startswith("/") or request.target == "*" or "://" in request.target):
        return "malformed request target"
    if not _PROTOCOL.fullmatch(request.protocol):
        return "malformed HTTP version"
    for name, value in request.headers:
        if not _TOKEN.fullmatch(name):
            return "malformed header field"
        if not _FIELD_VALUE.fullmatch(value):
            return "malformed header value"
    return None
