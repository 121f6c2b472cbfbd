"""Validators and preconditions (RFC 9110 8.8, 13, 14): ETag, entity-tag matching, the one
evaluation of a request's preconditions (412 / 304), the one 304 (its allow-listed fields), Range
and If-Range. Files (core/static.py) and generated pages (core/compress.py) both ask here."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime

from cgibox.core.request import Headers
from cgibox.core.response import Response

# the fields a 304 keeps (RFC 9110 15.4.5; starlette's NotModifiedResponse)
NOT_MODIFIED_HEADERS = frozenset({"cache-control", "content-location", "date", "etag", "expires", "vary"})
# at most this many ranges in one request; more is a denial-of-service shape (RFC 9110 14.2)
MAX_RANGES = 64


def make_etag(stat: os.stat_result) -> str:
    """A strong validator that changes whenever the file's content is replaced or rewritten."""
    return f'"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"'


@functools.lru_cache(maxsize=4096)
def _http_date_of_second(second: int) -> str:
    return formatdate(second, usegmt=True)


def http_date(timestamp: float) -> str:
    """IMF-fixdate (RFC 9110 5.6.7); cached, since every response carries one or two."""
    return _http_date_of_second(int(timestamp))


def parse_http_date(value: str) -> float | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def _etag_list(value: str) -> list[str]:
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def _weak_match(a: str, b: str) -> bool:
    return a.removeprefix("W/") == b.removeprefix("W/")


def none_match(value: str, etag: str) -> bool:
    """An If-None-Match value names `etag` (weak comparison, RFC 9110 13.1.2) or is `*`."""
    tags = _etag_list(value)
    return "*" in tags or any(_weak_match(tag, etag) for tag in tags)


def not_modified(headers: Headers, etag: str, mtime: float | None) -> bool:
    """True when a GET/HEAD may be answered 304 (If-None-Match first, else If-Modified-Since;
    `mtime` None: the representation has no Last-Modified, so only If-None-Match counts)."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return none_match(if_none_match, etag)
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since is not None and mtime is not None:
        since = parse_http_date(if_modified_since)
        return since is not None and int(mtime) <= since
    return False


class RangeNotSatisfiable(Exception):
    """No range of the request overlaps the representation: 416 with Content-Range: */size."""


class MalformedRange(Exception):
    """A bytes Range header that does not parse: 400."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


_DIGITS = re.compile(r"[0-9]+")


def is_digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "²" and "١", which int() refuses or misreads."""
    return bool(_DIGITS.fullmatch(text))


# positions are clipped to the file anyway; past this many digits int() would refuse the text
_HUGE = 10**30


def _position(digits: str) -> int:
    """An ASCII digit string as an int; absurdly long ones are simply huge."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 30 else _HUGE


def parse_range(value: str, size: int) -> list[ByteRange] | None:
    """The satisfiable ranges of a Range header, merged and in order; None means ignore it (send 200).

    Raises MalformedRange for a broken bytes range set and RangeNotSatisfiable when none overlaps.
    """
    unit, sep, spec = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None  # a unit we do not know is ignored (RFC 9110 14.2)
    specs = [part.strip() for part in spec.split(",")]
    if not any(specs):
        raise MalformedRange(value)
    if len(specs) > MAX_RANGES:
        return None
    ranges: list[ByteRange] = []
    for part in specs:
        if not part:
            continue  # RFC 9110 allows empty list elements
        first, dash, last = part.partition("-")
        first, last = first.strip(), last.strip()
        # ASCII digits only: str.isdigit() also accepts "²" and "١", which int() refuses or reads
        if not dash or (first and not is_digits(first)) or (last and not is_digits(last)):
            raise MalformedRange(value)
        if not first:
            if not last:
                raise MalformedRange(value)
            suffix = _position(last)
            if suffix == 0 or size == 0:
                continue  # a zero-length suffix selects nothing
            ranges.append(ByteRange(max(0, size - suffix), size - 1))
            continue
        start = _position(first)
        end = _position(last) if last else size - 1
        if last and end < start:
            raise MalformedRange(value)
        if start >= size:
            continue
        ranges.append(ByteRange(start, min(end, size - 1)))
    if not ranges:
        raise RangeNotSatisfiable(value)
    return _coalesce(ranges)


def _coalesce(ranges: list[ByteRange]) -> list[ByteRange]:
    """Merge overlapping and adjacent ranges so no byte is sent twice."""
    ordered = sorted(ranges, key=lambda r: r.start)
    merged = [ordered[0]]
    for current in ordered[1:]:
        last = merged[-1]
        if current.start <= last.end + 1:
            merged[-1] = ByteRange(last.start, max(last.end, current.end))
        else:
            merged.append(current)
    return merged


def if_range_allows(headers: Headers, etag: str, mtime: float) -> bool:
    """If-Range: True when the range may be honoured (no If-Range, or it still matches)."""
    value = headers.get("if-range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"') or value.startswith("W/"):
        return value == etag  # strong comparison; a weak tag never matches
    date = parse_http_date(value)
    return date is not None and int(mtime) == int(date)


def precondition_holds(headers: Headers, etag: str, mtime: float | None) -> bool:
    """If-Match / If-Unmodified-Since (RFC 9110 13.1.1, 13.1.4): False means 412."""
    if_match = headers.get("if-match")
    if if_match is not None:
        tags = _etag_list(if_match)
        return "*" in tags or etag in tags  # strong comparison
    if_unmodified_since = headers.get("if-unmodified-since")
    if if_unmodified_since is not None and mtime is not None:
        since = parse_http_date(if_unmodified_since)
        return since is None or int(mtime) <= since
    return True


def evaluate(method: str, headers: Headers, etag: str, mtime: float | None) -> int | None:
    """The one evaluation of a request's preconditions against the representation that would be
    sent (its own ETag, and Last-Modified when it has one), in RFC 9110 13.2.2's order: 412 when
    If-Match / If-Unmodified-Since fail, 304 when a GET or HEAD's If-None-Match / If-Modified-Since
    say the client's copy is current; None: answer as usual."""
    if not precondition_holds(headers, etag, mtime):
        return 412
    if method in ("GET", "HEAD") and not_modified(headers, etag, mtime):
        return 304
    return None


def not_modified_response(response: Response) -> Response:
    """The 304 for `response`: its allow-listed fields only (Vary and ETag among them), no body;
    it takes over the response's cleanups and closes the rest (an open file, a page's bytes)."""
    kept = [(k, v) for k, v in response.headers if k.lower() in NOT_MODIFIED_HEADERS]
    answer = Response(304, kept, b"", cleanups=response.cleanups,
                      close_connection=response.close_connection, route_kind=response.route_kind)
    response.cleanups = []
    response.close()
    return answer
