"""Request: what every front hands the core (method, target, headers, body stream, peer), and the
core's door every front's request passes (request_problem): what no client can send, the Host and
framing rules of RFC 9112 a head must meet, and an absolute-form target taken apart (3.2.2).
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv6Address
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

    def replace(self, name: str, value: str) -> None:
        """`name` holds `value` alone from now on (in the place of its first line, else last)."""
        lower = name.lower()
        items = [(n, v) for n, v in self._items if n.lower() != lower]
        at = next((i for i, (n, _) in enumerate(self._items) if n.lower() == lower), len(items))
        items.insert(at, (name, value))
        self._items = items
        self._index[lower] = [value]

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
    """Why `request` cannot be answered as it came (a 400 that closes), or None when it can.

    Fronts give the core text with one character per byte received; a front built on another
    parser (gunicorn, http.server) may let through what ours refuses. App.handle answers a
    request with a problem 400 before anything else looks at it, so no part of the core has to
    guard against NUL, CR, LF or lone surrogates in a method, target or header field again, nor
    against a missing, repeated or malformed Host (framing_problem).

    When there is no problem, an absolute-form target ("http://host/p?q", RFC 9112 3.2.2) is
    taken apart here, once for every front: the target becomes its path and query, and its
    authority replaces the Host field, so nothing after the door sees the absolute form.
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
    problem = framing_problem(request.protocol, request.headers)
    if problem is None and not request.target.startswith("/") and request.target != "*":
        problem = _take_absolute_form(request)
    return problem


# RFC 3986 3.2.2 uri-host [ ":" port ]: an IP-literal in brackets, or a reg-name (IPv4 addresses
# are reg-names too) of unreserved, sub-delims and percent-encoded bytes; nothing else, so no
# "/", "?", "#", "@", whitespace or second colon
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?")
_ABSOLUTE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)([/?].*)?", re.DOTALL)


def valid_host(value: str) -> bool:
    """Whether a Host field value (or a target's authority) is uri-host [":" port]."""
    match = _HOST.fullmatch(value)
    if match is None or value.startswith(":"):  # a port without a host
        return False
    host = match.group(1)
    if host.startswith("["):
        try:
            IPv6Address(host[1:-1])
        except ValueError:
            return False
    return True


def framing_problem(protocol: str, headers: Headers) -> str | None:
    """The head rules of RFC 9112 that a parser may not check: exactly one valid Host on HTTP/1.1
    (at most one, valid, on HTTP/1.0; 3.2), and no Transfer-Encoding on HTTP/1.0 (6.1: its
    framing is faulty; 400 and close, as nginx and gunicorn answer). core.connection asks it
    before a body reader is made; request_problem asks it again for the fronts that parse heads
    themselves. A field repeated on the wire stays repeated in Headers, so two Host lines show."""
    hosts = headers.get_all("host")
    if len(hosts) > 1:
        return "more than one Host field"
    if hosts:
        if not valid_host(hosts[0]):
            return "malformed Host field"
    elif protocol == "HTTP/1.1":
        return "HTTP/1.1 request without a Host field"
    if protocol == "HTTP/1.0" and "transfer-encoding" in headers:
        return "Transfer-Encoding in an HTTP/1.0 request"
    return None


def _take_absolute_form(request: Request) -> str | None:
    """http(s)://authority[/path][?query]: the path (or "/") and query become the target, the
    authority the Host (RFC 9112 3.2.2; an http URI without a host or with userinfo is invalid,
    RFC 9110 4.2.1 and 4.2.4). A scheme this server does not serve is refused."""
    match = _ABSOLUTE.fullmatch(request.target)
    if match is None or match.group(1).lower() not in ("http", "https"):
        return "malformed request target"
    authority, rest = match.group(2), match.group(3) or ""
    if not authority or not valid_host(authority):
        return "malformed request target"
    request.target = rest if rest.startswith("/") else "/" + rest
    request.headers.replace("Host", authority)
    return None
