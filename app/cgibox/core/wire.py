"""HTTP/1.x message syntax and framing (RFC 9112), sans I/O: request-line and header parsing with
the contract's limits, request body readers (length, chunked), response framing, and the one
rendering of an early error answer that every front sends.

`core.connection` drives these for the socket fronts; gunicorn parses the wire itself, so for it
`check_limits` applies on the Request it built, and `App.early_answer` to what it could not parse.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Protocol

from cgibox import __version__
from cgibox.core.conditional import http_date, is_digits
from cgibox.core.errors import HTTPError, reason
from cgibox.core.request import Headers, Request
from cgibox.core.response import Response


class ByteSource(Protocol):
    """Where a body reader takes its bytes from: `read` may return fewer than asked (b"" at the end)."""

    def read(self, size: int = -1) -> bytes: ...

    def readline(self, limit: int) -> bytes: ...


MAX_REQUEST_LINE = 8192  # bytes, CRLF excluded: longer is 414
MAX_HEADER_BYTES = 65536  # the whole header block: larger is 431
MAX_HEADER_FIELDS = 100  # more fields is 431
MAX_CHUNK_LINE = 4096  # a chunk-size line or a trailer line, CRLF included
# significant hex digits of a chunk size: 16 spell any 64-bit length; more is 400 at once (a
# 100-digit size must never become a wait for a body of that size)
MAX_CHUNK_SIZE_DIGITS = 16
SERVER = f"cgibox/{__version__}"

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(r"^HTTP/(\d)\.(\d)$")
# field values: visible ASCII, obs-text, space and tab (RFC 9110 5.5); no CR, LF or NUL
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
# RFC 9112 7.1.1, all after the chunk size: *( BWS ";" BWS name [ BWS "=" BWS ( token /
# quoted-string ) ] ), token and quoted-string of RFC 9110 5.6.2 and 5.6.4. No nested
# quantifier can match the same bytes two ways, so matching stays linear.
_TOKEN_RE = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED_STRING = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_CHUNK_EXT = re.compile(rb"(?:[ \t]*;[ \t]*" + _TOKEN_RE
                        + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN_RE + rb"|" + _QUOTED_STRING + rb"))?)*")
# a well-formed field line in one match (a token, a colon, a value of allowed bytes), so that the
# common case costs one regex; no nested or lazy quantifiers, so matching stays linear
_FIELD_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):([^\x00-\x08\x0a-\x1f\x7f]*)")
# a target (ASCII by then) holds no control character, space or DEL
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
TLS_HANDSHAKE_PREFIX = b"\x16\x03"
# the 400 page's detail and the server-log line for a TLS handshake on this plain-HTTP port, and
# for plain HTTP on an HTTPS port (core.connection turns them into early answers for every front)
TLS_ON_PLAIN_PORT = "This port speaks plain HTTP; HTTPS was tried."
TLS_LOG = "cgibox: {peer} tried HTTPS on this plain-HTTP port"
PLAIN_ON_TLS_PORT = "This port speaks HTTPS; plain HTTP was tried."
PLAIN_LOG = "cgibox: {peer} sent plain HTTP to this HTTPS port"


def looks_like_tls(first_bytes: bytes) -> bool:
    """A TLS ClientHello starts with record type 22 and major version 3.

    The first byte alone is enough (the second may not have arrived yet): no request line
    starts with 0x16, a control character.
    """
    return bool(first_bytes) and TLS_HANDSHAKE_PREFIX.startswith(first_bytes[:2])


def parse_request_line(line: bytes) -> tuple[str, str, str]:
    """b'GET /x HTTP/1.1' -> ('GET', '/x', 'HTTP/1.1'); raises HTTPError 400, 414 or 505."""
    if len(line) > MAX_REQUEST_LINE:
        raise HTTPError(414, close_connection=True)
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise HTTPError(400, "request line is not ASCII", close_connection=True) from None
    parts = text.split(" ")
    if len(parts) != 3 or not all(parts):
        raise HTTPError(400, "malformed request line", close_connection=True)
    method, target, version = parts
    if not _TOKEN.fullmatch(method.encode()):
        raise HTTPError(400, "malformed method", close_connection=True)
    match = _VERSION.match(version)
    if not match:
        raise HTTPError(400, "malformed HTTP version", close_connection=True)
    if match.group(1) != "1":
        raise HTTPError(505, close_connection=True)
    if not (target.startswith("/") or target == "*" or "://" in target):
        raise HTTPError(400, "malformed request target", close_connection=True)
    if _BAD_TARGET.search(target):
        raise HTTPError(400, "malformed request target", close_connection=True)
    return method, target, "HTTP/1.1" if version == "HTTP/1.1" else "HTTP/1.0"


def parse_header_line(line: bytes) -> tuple[str, str]:
    """b'Name: value' -> ('Name', 'value'); obs-fold and spaces before the colon are 400."""
    match = _FIELD_LINE.fullmatch(line)
    if match is None:  # something is wrong with it: the checks below say what
        return _parse_header_line_checked(line)
    name, value = match.groups()
    return name.decode("ascii"), value.strip(b" \t").decode("latin-1")


def _parse_header_line_checked(line: bytes) -> tuple[str, str]:
    if line[:1] in (b" ", b"\t"):
        raise HTTPError(400, "obsolete header line folding", close_connection=True)
    name, colon, value = line.partition(b":")
    if not colon or not _TOKEN.fullmatch(name):
        raise HTTPError(400, "malformed header field", close_connection=True)
    value = value.strip(b" \t")
    if _BAD_VALUE.search(value):
        raise HTTPError(400, "malformed header value", close_connection=True)
    return name.decode("ascii"), value.decode("latin-1")


def check_limits(request: Request) -> None:
    """The contract's limits, for fronts that parsed the request themselves."""
    if len(request.target) + len(request.method) + len(request.protocol) + 2 > MAX_REQUEST_LINE:
        raise HTTPError(414, close_connection=True)
    if len(request.headers) > MAX_HEADER_FIELDS:
        raise HTTPError(431, "too many header fields", close_connection=True)
    if sum(len(k) + len(v) + 4 for k, v in request.headers) > MAX_HEADER_BYTES:
        raise HTTPError(431, "header block too large", close_connection=True)


def body_read_to_end(request: Request) -> bool:
    """Whether the request's body was read to its end: if not, the unread bytes would be parsed as
    the next request, so the connection must close after the response."""
    return getattr(request.body, "finished", True)


def wants_keep_alive(protocol: str, headers: Headers) -> bool:
    """HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`."""
    value = headers.get("connection")
    if not value:
        return protocol == "HTTP/1.1"
    tokens = {t.strip().lower() for t in value.split(",")}
    if protocol == "HTTP/1.1":
        return "close" not in tokens
    return "keep-alive" in tokens


def expects_continue(request: Request) -> bool:
    return request.http11 and (request.headers.get("expect") or "").lower() == "100-continue"


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class BodyReader:
    """A request body, freed of its framing; `read` never returns more than `max_body` in all."""

    def __init__(self, source: ByteSource, max_body: int,
                 before_first_read: Callable[[], None] | None = None) -> None:
        self.source = source
        self.max_body = max_body
        self.total = 0
        self.finished = False
        self._before_first_read = before_first_read

    def _start(self) -> None:
        if self._before_first_read is not None:
            callback, self._before_first_read = self._before_first_read, None
            callback()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise NotImplementedError

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        pass


class LengthBodyReader(BodyReader):
    """Exactly Content-Length bytes."""

    def __init__(self, source: ByteSource, length: int, max_body: int,
                 before_first_read: Callable[[], None] | None = None) -> None:
        super().__init__(source, max_body, before_first_read)
        self.remaining = length
        self.finished = length == 0

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0 or size == 0:
            return b""
        if size is None or size < 0:  # all of it (a read from the source may return less)
            return b"".join(iter(lambda: self.read(65536), b""))
        self._start()
        want = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self.source.read(want)
        if not data:
            raise HTTPError(400, "request body ended early", close_connection=True)
        self.remaining -= len(data)
        self.total += len(data)
        self.finished = self.remaining == 0
        return data


def parse_chunk_size(line: bytes) -> int:
    """A chunk-size line, its CRLF removed -> the size (RFC 9112 7.1): 1*HEXDIG, then chunk
    extensions that follow the grammar (ignored). Anything else is 400, as is a size of more
    than MAX_CHUNK_SIZE_DIGITS significant digits."""
    size_text, semicolon, extensions = line.partition(b";")
    if semicolon:
        size_text = size_text.rstrip(b" \t")  # BWS, allowed only before an extension
        if not _CHUNK_EXT.fullmatch(semicolon + extensions):
            raise HTTPError(400, "malformed chunk extension", close_connection=True)
    if not _HEX.fullmatch(size_text):
        raise HTTPError(400, "malformed chunk size", close_connection=True)
    if len(size_text.lstrip(b"0")) > MAX_CHUNK_SIZE_DIGITS:
        raise HTTPError(400, "chunk size too large", close_connection=True)
    return int(size_text, 16)


class ChunkedBodyReader(BodyReader):
    """Transfer-Encoding: chunked (RFC 9112 7.1), strictly: every line ends in CRLF (a bare LF or
    CR is 400), sizes and extensions follow the grammar, trailer lines are field lines (counted
    against the header limits, then discarded)."""

    def __init__(self, source: ByteSource, max_body: int,
                 before_first_read: Callable[[], None] | None = None) -> None:
        super().__init__(source, max_body, before_first_read)
        self._chunk_left = 0

    def _line(self) -> bytes:
        line = self.source.readline(MAX_CHUNK_LINE + 1)
        if len(line) > MAX_CHUNK_LINE or not line.endswith(b"\r\n"):
            raise HTTPError(400, "malformed chunked body", close_connection=True)
        return line[:-2]

    def _next_chunk(self) -> None:
        size = parse_chunk_size(self._line())
        if size == 0:
            self._trailers()
            self.finished = True
            return
        if self.total + size > self.max_body:
            raise HTTPError(413, close_connection=True)
        self._chunk_left = size

    def _trailers(self) -> None:
        """Trailer fields up to the empty line: well-formed field lines, within the head's limits."""
        fields = size = 0
        while line := self._line():
            size += len(line) + 2
            fields += 1
            if size > MAX_HEADER_BYTES or fields > MAX_HEADER_FIELDS:
                raise HTTPError(431, "trailer section too large", close_connection=True)
            parse_header_line(line)

    def _crlf(self) -> bool:
        """The CRLF after a chunk's data (a source may return fewer bytes than asked)."""
        data = b""
        while len(data) < 2 and (more := self.source.read(2 - len(data))):
            data += more
        return data == b"\r\n"

    def read(self, size: int = -1) -> bytes:
        if self.finished or size == 0:
            return b""
        self._start()
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(65536), b""))
        if self._chunk_left == 0:
            self._next_chunk()
            if self.finished:
                return b""
        data = self.source.read(min(size, self._chunk_left))
        if not data:
            raise HTTPError(400, "request body ended early", close_connection=True)
        self._chunk_left -= len(data)
        self.total += len(data)
        if self._chunk_left == 0 and not self._crlf():
            raise HTTPError(400, "malformed chunked body", close_connection=True)
        return data


def body_reader(headers: Headers, source: ByteSource, max_body: int,
                before_first_read: Callable[[], None] | None = None) -> tuple[BodyReader, int | None]:
    """The reader for this request's body and its length (None for chunked).

    Content-Length with Transfer-Encoding, a bad Content-Length, or a coding other than chunked
    is 400/501 (request smuggling shapes); a declared length over `max_body` is 413 at once.
    """
    transfer_encoding = headers.get("transfer-encoding")
    lengths = headers.get_all("content-length")
    if transfer_encoding is not None:
        if lengths:
            raise HTTPError(400, "both Content-Length and Transfer-Encoding", close_connection=True)
        if transfer_encoding.strip().lower() != "chunked":
            raise HTTPError(501, "only the chunked transfer coding is supported", close_connection=True)
        return ChunkedBodyReader(source, max_body, before_first_read), None
    if not lengths:
        return LengthBodyReader(source, 0, max_body), 0
    values = {v.strip() for value in lengths for v in value.split(",")}
    # ASCII digits only (str.isdigit() also accepts "²", which int() refuses), and few enough of
    # them for int(): anything longer is over max_body anyway
    if len(values) != 1 or not is_digits(next(iter(values))):
        raise HTTPError(400, "malformed Content-Length", close_connection=True)
    digits = next(iter(values)).lstrip("0") or "0"
    if len(digits) > 30:
        raise HTTPError(413, close_connection=True)
    length = int(digits)
    if length > max_body:
        raise HTTPError(413, close_connection=True)
    return LengthBodyReader(source, length, max_body, before_first_read), length


def has_no_body(status: int) -> bool:
    """The one answer to "may a response with this status carry a body?" (RFC 9110 6.4.1): never
    for 1xx, 204 and 304. Fronts, the compat handlers and CGI output all ask here."""
    return 100 <= status < 200 or status in (204, 304)


def frame_response(request_method: str, protocol: str, keep_alive: bool, response: Response) -> \
        tuple[bytes, bool, bool]:
    """The response head to send and how to frame the body: (head, chunked, close_after).

    A body of unknown length is chunked on HTTP/1.1 and delimited by closing on HTTP/1.0.
    An answer kept in memory (core/ready.py) keeps its framing: only the Date line is new.
    """
    framed = response.framed
    if framed is None:
        before, dated, after, chunked, close = _frame(protocol, keep_alive, response)
        return before + _date_line() + after if dated else before + after, chunked, close
    known = framed.get((protocol, keep_alive))
    if known is None:
        # a few entries at most: the framing of each protocol version, kept alive or not
        known = framed[(protocol, keep_alive)] = _frame(protocol, keep_alive, response)
    before, dated, after, chunked, close = known
    return before + _date_line() + after if dated else before + after, chunked, close


def _frame(protocol: str, keep_alive: bool, response: Response) -> tuple[bytes, bool, bytes, bool, bool]:
    """The head around its Date line: (before, whether a Date line goes between, after, chunked,
    close_after); a response with a Date of its own has it in `before`."""
    fields, has_length, has_date, has_server = _fields(response.headers)
    close = not keep_alive or response.close_connection
    parts = [_status_line(protocol, response.status, response.reason), fields]
    chunked = False
    if not has_length and not has_no_body(response.status) and not response.omit_body:
        if protocol == "HTTP/1.1":
            chunked = True
            parts.append(b"Transfer-Encoding: chunked\r\n")
        else:
            close = True
    before = b"".join(parts)
    parts = [] if has_server else [_SERVER_LINE]
    if close:
        parts.append(b"Connection: close\r\n")
    elif protocol == "HTTP/1.0":
        parts.append(b"Connection: keep-alive\r\n")
    parts.append(b"\r\n")
    return before, not has_date, b"".join(parts), chunked, close


# What never changes between two responses is encoded once: the status line, the header fields of
# a response whose fields repeat (a cached small file, an error page: only Date moves, once a
# second), and the Date line of this second. Bounded: emptied when it grows past this.
_FIELDS_CACHE_SIZE = 1024
# a field set this large (a script's cookies) is encoded each time: the cache stays under ~2 MB
_FIELDS_CACHED_BYTES = 2048
_fields_cache: dict[tuple[object, ...], tuple[bytes, bool, bool, bool]] = {}
_status_cache: dict[tuple[str, int, str | None], bytes] = {}
_SERVER_LINE = f"Server: {SERVER}\r\n".encode("latin-1")
_date_cache: tuple[int, bytes] = (0, b"")


def _fields(headers: list[tuple[str, str]]) -> tuple[bytes, bool, bool, bool]:
    """The response's own fields as wire bytes (no Connection or Transfer-Encoding: framing is
    ours), and whether it has Content-Length, Date and Server."""
    try:
        key = tuple(headers)
        cached = _fields_cache.get(key)
    except TypeError:  # a field that is not a hashable pair: encoded every time
        key, cached = None, None
    if cached is not None:
        return cached
    lines = []
    has_length = has_date = has_server = False
    for name, value in headers:
        lower = name.lower()
        if lower in ("connection", "transfer-encoding"):
            continue
        if lower == "content-length":
            has_length = True
        elif lower == "date":
            has_date = True
        elif lower == "server":
            has_server = True
        lines.append(f"{name}: {value}\r\n")
    encoded = ("".join(lines).encode("latin-1", "replace"), has_length, has_date, has_server)
    if key is not None and len(encoded[0]) <= _FIELDS_CACHED_BYTES:
        if len(_fields_cache) >= _FIELDS_CACHE_SIZE:
            _fields_cache.clear()
        _fields_cache[key] = encoded
    return encoded


def _status_line(protocol: str, status: int, reason_phrase: str | None) -> bytes:
    key = (protocol, status, reason_phrase)
    line = _status_cache.get(key)
    if line is None:
        line = f"{protocol} {status} {reason_phrase or reason(status)}\r\n".encode("latin-1", "replace")
        if len(_status_cache) >= _FIELDS_CACHE_SIZE:
            _status_cache.clear()
        _status_cache[key] = line
    return line


def _date_line() -> bytes:
    global _date_cache
    second = int(time.time())
    cached_second, line = _date_cache
    if cached_second != second:
        line = f"Date: {http_date(second)}\r\n".encode("latin-1")
        _date_cache = (second, line)
    return line


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def frame_early(response: Response) -> tuple[bytes, int]:
    """The whole answer (head and page) to a request that never became a Request: a bad or late
    head (400/408/414/431/505), HTTPS on the plain port. The connection closes after it.
    Returns (bytes to send, body length for the access log). App.early_answer renders `response`."""
    assert isinstance(response.body, bytes)
    # no request to frame for: the most a client can understand is HTTP/1.1 with a length
    head, _, _ = frame_response("GET", "HTTP/1.1", False, response)
    return head + response.body, len(response.body)
