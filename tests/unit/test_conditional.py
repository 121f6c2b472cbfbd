"""core/conditional.py: ETag, 304 decisions, If-Match / If-Unmodified-Since, Range and If-Range."""

from __future__ import annotations

import os

import pytest

from cgibox.core import conditional, wire
from cgibox.core.conditional import (
    MAX_RANGES,
    ByteRange,
    MalformedRange,
    RangeNotSatisfiable,
    http_date,
    if_range_allows,
    make_etag,
    not_modified,
    parse_http_date,
    parse_range,
    precondition_holds,
)
from cgibox.core.request import Headers
from cgibox.core.response import Response

MTIME = 1_700_000_000.25  # a sub-second modification time, as file systems give
ETAG = '"abc-123"'


def headers(**fields: str) -> Headers:
    return Headers((name.replace("_", "-"), value) for name, value in fields.items())


def ranges(value: str, size: int = 1000) -> list[tuple[int, int]] | None:
    parsed = parse_range(value, size)
    return None if parsed is None else [(r.start, r.end) for r in parsed]


# -- Range -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("bytes=0-0", [(0, 0)]),
    ("bytes=0-499", [(0, 499)]),
    ("bytes=500-999", [(500, 999)]),
    ("bytes=500-5000", [(500, 999)]),  # last-pos past the end is clipped
    ("bytes=900-", [(900, 999)]),  # open-ended
    ("bytes=0-", [(0, 999)]),
    ("bytes=-100", [(900, 999)]),  # suffix
    ("bytes=-5000", [(0, 999)]),  # suffix longer than the file: all of it
    ("bytes=999-999", [(999, 999)]),
    ("BYTES=1-2", [(1, 2)]),  # the unit is case-insensitive
    ("bytes= 1-2 ", [(1, 2)]),
    ("bytes=1 - 2", [(1, 2)]),
    ("bytes=0-1,5-6", [(0, 1), (5, 6)]),  # multiple
    ("bytes=5-6,0-1", [(0, 1), (5, 6)]),  # returned in order
    ("bytes=0-10,5-20", [(0, 20)]),  # overlapping ranges are coalesced
    ("bytes=0-10,11-20", [(0, 20)]),  # adjacent ones too
    ("bytes=0-1,0-1,0-1", [(0, 1)]),
    ("bytes=-1,0-0", [(0, 0), (999, 999)]),
    ("bytes=0-1,,5-6", [(0, 1), (5, 6)]),  # empty list elements are allowed
    ("bytes=0-1, 2000-3000", [(0, 1)]),  # an unsatisfiable member is dropped, the rest served
    ("bytes=0-1,-0", [(0, 1)]),
])
def test_valid_ranges(value, expected):
    assert ranges(value) == expected


@pytest.mark.parametrize("value", [
    "bytes=",
    "bytes=,",
    "bytes= , ",
    "bytes=-",
    "bytes=a-b",
    "bytes=1-a",
    "bytes=5-1",  # last before first
    "bytes=1-2-3",
    "bytes=0x1-2",
    "bytes=+1-2",
    "bytes=1-+2",
    "bytes=-1-2",
    "bytes=1",
    "bytes=0-1,x",
    "bytes=\u00b2-5",  # a superscript two is "a digit" to str.isdigit, not to int()
    "bytes=1-\u00b3",
    "bytes=\u0661-5",  # an Arabic-Indic digit: not ASCII
], ids=repr)
def test_malformed_ranges(value):
    with pytest.raises(MalformedRange):
        parse_range(value, 1000)


def test_absurdly_long_numbers_are_positions_not_errors():
    """More digits than int() converts (4300) must not become a 500: they are just very large."""
    huge = "9" * 5000
    assert ranges("bytes=0-" + huge) == [(0, 999)]
    assert ranges("bytes=-" + huge) == [(0, 999)]
    assert ranges("bytes=" + "0" * 5000 + "1-2") == [(1, 2)]
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=" + huge + "-", 1000)


@pytest.mark.parametrize(("value", "size"), [
    ("bytes=1000-", 1000),
    ("bytes=1000-2000", 1000),
    ("bytes=5000-6000,7000-", 1000),
    ("bytes=-0", 1000),  # a zero-length suffix selects nothing
    ("bytes=0-", 0),  # nothing of an empty file can be selected
    ("bytes=-5", 0),
    ("bytes=0-0", 0),
])
def test_unsatisfiable_ranges(value, size):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(value, size)


@pytest.mark.parametrize("value", ["items=0-5", "pages=1-2", "0-5", "", "none"])
def test_other_units_are_ignored(value):
    assert parse_range(value, 1000) is None


def test_too_many_ranges_are_ignored():
    """More than MAX_RANGES ranges is a denial-of-service shape: the whole file is sent instead."""
    many = "bytes=" + ",".join(f"{i * 2}-{i * 2}" for i in range(MAX_RANGES + 1))
    assert parse_range(many, 10_000) is None
    just_enough = "bytes=" + ",".join(f"{i * 2}-{i * 2}" for i in range(MAX_RANGES))
    assert len(parse_range(just_enough, 10_000)) == MAX_RANGES


def test_byte_range():
    r = ByteRange(10, 19)
    assert r.length == 10
    assert r.content_range(100) == "bytes 10-19/100"


# -- validators ----------------------------------------------------------------------------------

def test_make_etag_is_strong_and_changes_with_the_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"one")
    first = make_etag(os.stat(path))
    assert first.startswith('"') and first.endswith('"') and not first.startswith("W/")
    os.utime(path, ns=(1, 2_000_000_000))
    assert make_etag(os.stat(path)) != first
    path.write_bytes(b"three")
    assert make_etag(os.stat(path)) != first


def test_http_dates_round_trip():
    text = http_date(1_700_000_000)
    assert text == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert parse_http_date(text) == 1_700_000_000
    assert parse_http_date("Tuesday, 14-Nov-23 22:13:20 GMT") == 1_700_000_000  # RFC 850
    assert parse_http_date("Tue Nov 14 22:13:20 2023") is None or \
        parse_http_date("Tue Nov 14 22:13:20 2023") == 1_700_000_000  # asctime: no zone
    for bad in ("", "yesterday", "Tue, 99 Nov 2023 22:13:20 GMT", "Mon, 01 Jan 99999 00:00:00 GMT"):
        assert parse_http_date(bad) is None, bad


# -- If-None-Match / If-Modified-Since -------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (ETAG, True),
    ("W/" + ETAG, True),  # weak comparison for If-None-Match
    ('"other", ' + ETAG, True),
    ('"other",W/' + ETAG, True),
    ("*", True),
    ('"other"', False),
    ('"abc-12"', False),
    ("abc-123", False),  # not a quoted entity-tag
])
def test_if_none_match(value, expected):
    assert not_modified(headers(if_none_match=value), ETAG, MTIME) is expected


def test_if_modified_since():
    same_second = http_date(int(MTIME))
    assert not_modified(headers(if_modified_since=same_second), ETAG, MTIME)
    assert not_modified(headers(if_modified_since=http_date(MTIME + 3600)), ETAG, MTIME)
    assert not not_modified(headers(if_modified_since=http_date(MTIME - 1)), ETAG, MTIME)
    assert not not_modified(headers(if_modified_since="garbage"), ETAG, MTIME)
    assert not not_modified(headers(), ETAG, MTIME)


def test_if_none_match_wins_over_if_modified_since():
    """RFC 9110 13.1.3: when If-None-Match is present, If-Modified-Since is ignored."""
    fields = headers(if_none_match='"other"', if_modified_since=http_date(MTIME + 3600))
    assert not not_modified(fields, ETAG, MTIME)
    fields = headers(if_none_match=ETAG, if_modified_since=http_date(MTIME - 3600))
    assert not_modified(fields, ETAG, MTIME)


# -- If-Match / If-Unmodified-Since (412) ---------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (ETAG, True),
    ("*", True),
    ('"other", ' + ETAG, True),
    ("W/" + ETAG, False),  # strong comparison: a weak tag never matches
    ('"other"', False),
])
def test_if_match(value, expected):
    assert precondition_holds(headers(if_match=value), ETAG, MTIME) is expected


def test_if_unmodified_since():
    assert precondition_holds(headers(if_unmodified_since=http_date(MTIME + 10)), ETAG, MTIME)
    assert precondition_holds(headers(if_unmodified_since=http_date(int(MTIME))), ETAG, MTIME)
    assert not precondition_holds(headers(if_unmodified_since=http_date(MTIME - 10)), ETAG, MTIME)
    assert precondition_holds(headers(if_unmodified_since="garbage"), ETAG, MTIME)  # ignored
    assert precondition_holds(headers(), ETAG, MTIME)


def test_if_match_wins_over_if_unmodified_since():
    fields = headers(if_match=ETAG, if_unmodified_since=http_date(MTIME - 10))
    assert precondition_holds(fields, ETAG, MTIME)


# -- If-Range ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (None, True),
    (ETAG, True),
    ('"other"', False),
    ("W/" + ETAG, False),  # If-Range uses the strong comparison
    (http_date(int(MTIME)), True),
    (http_date(MTIME - 10), False),
    (http_date(MTIME + 10), False),  # only an exact date match is a match
    ("garbage", False),
])
def test_if_range(value, expected):
    fields = headers() if value is None else headers(if_range=value)
    assert if_range_allows(fields, ETAG, MTIME) is expected


def test_max_ranges_is_sane():
    assert 1 < conditional.MAX_RANGES <= 100


# -- the one evaluation of preconditions and the one 304 (issue 24 B7) --------------------------

@pytest.mark.parametrize(("method", "fields", "expected"), [
    ("GET", {}, None),
    ("GET", {"If-None-Match": '"a"'}, 304),
    ("HEAD", {"If-None-Match": 'W/"a"'}, 304),  # weak comparison
    ("GET", {"If-None-Match": '"b"'}, None),
    ("GET", {"If-Match": '"b"', "If-None-Match": '"a"'}, 412),  # If-Match is evaluated first
    ("GET", {"If-Match": 'W/"a"'}, 412),  # strong comparison
    ("GET", {"If-Match": '"a"', "If-None-Match": '"a"'}, 304),
    ("POST", {"If-None-Match": '"a"'}, None),  # 304 only for GET and HEAD
    ("GET", {"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}, 304),
    ("GET", {"If-Unmodified-Since": "Sat, 05 Nov 1994 08:49:37 GMT"}, 412),
])
def test_evaluate_follows_rfc_9110_13_2_2(method, fields, expected):
    mtime = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT
    assert conditional.evaluate(method, Headers(list(fields.items())), '"a"', mtime) == expected


def test_without_last_modified_only_entity_tags_count():
    since = Headers([("If-Modified-Since", "Sun, 06 Nov 2094 08:49:37 GMT")])
    assert conditional.evaluate("GET", since, '"a"', None) is None


def test_the_304_keeps_only_its_allow_listed_fields_and_hands_over_cleanups():
    closed = []
    response = Response(200, [("Content-Type", "text/plain"), ("ETag", '"a"'), ("Vary", "Accept-Encoding"),
                              ("Content-Length", "5"), ("Cache-Control", "no-cache")], b"hello",
                        cleanups=[lambda: closed.append(1)])
    answer = conditional.not_modified_response(response)
    assert answer.status == 304 and answer.body == b""
    assert answer.headers == [("ETag", '"a"'), ("Vary", "Accept-Encoding"), ("Cache-Control", "no-cache")]
    answer.close()
    assert closed == [1]


@pytest.mark.parametrize(("status", "expected"), [(100, True), (101, True), (199, True), (200, False),
                                                  (204, True), (205, False), (304, True), (404, False)])
def test_has_no_body_is_the_one_answer(status, expected):
    assert wire.has_no_body(status) is expected
