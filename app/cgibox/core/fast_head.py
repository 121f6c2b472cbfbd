"""Complete request heads through llhttp (httptools), where it is installed: core.connection's fast
path. It accepts only what the hand parser (core.wire) accepts, giving the same method, target,
version and fields; anything else (a bare LF or CR, obs-fold, a control byte, a version other
than 1.0 or 1.1, a method llhttp does not know, an Upgrade, any llhttp error, a head past our own
limits) gets None, and the hand parser decides it, so every status and detail stays its own.
"""

from __future__ import annotations

import re
from typing import Any

from cgibox.core import wire
from cgibox.core.request import Headers

httptools: Any
try:
    import httptools
except ImportError:  # optional (`pip install cgibox[fast]`): the hand parser serves alone
    httptools = None
AVAILABLE = httptools is not None

# what the fast path leaves to the hand parser: a control byte other than CR, LF and HTAB (DEL
# too); with a CR not before an LF, an LF not after a CR (a bare LF, which the hand parser takes,
# RFC 9112 2.2) and a line starting with whitespace (obs-fold), found with bytes.count and `in`
# (one regex with lookarounds cost more than llhttp itself)
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PROTOCOLS = frozenset({b"HTTP/1.1", b"HTTP/1.0"})


class _Head:
    """httptools' callbacks: the target and the raw fields of one head."""

    __slots__ = ("url", "fields", "complete")

    def __init__(self) -> None:
        self.url = b""
        self.fields: list[tuple[bytes, bytes]] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))

    def on_headers_complete(self) -> None:
        self.complete = True


def parse_head(buffer: bytearray) -> tuple[tuple[str, str, str], Headers, int] | None:
    """((method, target, protocol), fields, head length) for a complete CRLF head at the start
    of `buffer`, or None: not complete yet, or not one the fast path vouches for."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    size = end + 4
    head = bytes(buffer[:size])
    line_end = head.find(b"\r\n")
    # our own measure, as the hand parser counts: the line (414), the field block (431)
    if line_end > wire.MAX_REQUEST_LINE or size - (line_end + 2) > wire.MAX_HEADER_BYTES:
        return None
    crlf = head.count(b"\r\n")
    if (head.count(b"\n") != crlf or head.count(b"\r") != crlf or b"\n " in head or b"\n\t" in head
            or _CONTROL.search(head)):
        return None
    parsed = _Head()
    parser = httptools.HttpRequestParser(parsed)
    try:
        parser.feed_data(head)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return None
    fields, url, method = parsed.fields, parsed.url, parser.get_method()
    protocol = head[line_end - 8:line_end]
    # the line exactly as the hand parser reads it: method SP target SP version, single spaces, a
    # visible-ASCII target in origin, asterisk or absolute form (llhttp's methods are tokens)
    if (not parsed.complete or protocol not in _PROTOCOLS or len(fields) > wire.MAX_HEADER_FIELDS
            or head[:line_end] != b"%s %s %s" % (method, url, protocol)
            or not url.isascii() or b" " in url
            or not (url[:1] == b"/" or url == b"*" or b"://" in url)):
        return None
    headers = Headers()
    for name, value in fields:
        headers.add(name.decode("ascii"), value.strip(b" \t").decode("latin-1"))
    return (method.decode("ascii"), url.decode("ascii"), protocol.decode("ascii")), headers, size
