"""core.conditional under hypothesis: any Range header against any size gives ranges inside the
file, in order, never overlapping, or one of the two refusals (400 / 416), or None (send 200);
a well-formed range set selects exactly the bytes a simple model selects."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from cgibox.core import conditional
from cgibox.core.conditional import MAX_RANGES, MalformedRange, RangeNotSatisfiable, parse_range
from cgibox.core.request import Headers

range_texts = st.text(st.sampled_from("bytes=0123456789-, ;\t²١xB"), max_size=40)


@given(value=range_texts | st.text(max_size=40), size=st.integers(0, 10_000))
@example(value="bytes=0-0,-0", size=0)
@example(value="bytes=" + "9" * 40 + "-", size=10)
@example(value="bytes=-" + "9" * 40, size=10)
@example(value="bytes=²-3", size=10)
@example(value="bytes=" + ",".join(["0-0"] * (MAX_RANGES + 1)), size=10)
@example(value="bytes=,,", size=10)
def test_any_range_header_stays_inside_the_file(value, size):
    try:
        ranges = parse_range(value, size)
    except (MalformedRange, RangeNotSatisfiable):
        return
    if ranges is None:
        return
    assert 0 < len(ranges) <= MAX_RANGES
    for byte_range in ranges:
        assert 0 <= byte_range.start <= byte_range.end < size
        assert byte_range.length > 0
    for before, after in zip(ranges, ranges[1:], strict=False):
        assert before.end + 1 < after.start  # ordered, merged: no byte twice, none adjacent


specs = st.one_of(
    st.tuples(st.integers(0, 300), st.none()),                  # "N-"
    st.tuples(st.integers(0, 300), st.integers(0, 300)),         # "N-M"
    st.tuples(st.none(), st.integers(0, 300)),                   # "-N"
)


def spec_text(first: int | None, last: int | None) -> str:
    return f"{'' if first is None else first}-{'' if last is None else last}"


def model(spec_list: list[tuple[int | None, int | None]], size: int) -> set[int] | str:
    """The bytes RFC 9110 14.1.2 selects, or "malformed"."""
    selected: set[int] = set()
    for first, last in spec_list:
        if first is None:
            assert last is not None
            selected |= set(range(max(0, size - last), size))
        elif last is None:
            selected |= set(range(first, size))
        elif last < first:
            return "malformed"
        else:
            selected |= set(range(first, min(last, size - 1) + 1))
    return selected


@given(spec_list=st.lists(specs, min_size=1, max_size=6), size=st.integers(0, 400))
@example(spec_list=[(None, 0)], size=5)
@example(spec_list=[(5, None)], size=5)
@example(spec_list=[(0, 1), (2, 3)], size=10)
def test_well_formed_ranges_select_what_the_rfc_selects(spec_list, size):
    value = "bytes=" + ", ".join(spec_text(*spec) for spec in spec_list)
    expected = model(spec_list, size)
    try:
        ranges = parse_range(value, size)
    except MalformedRange:
        assert expected == "malformed"
        return
    except RangeNotSatisfiable:
        assert expected == set()
        return
    assert ranges is not None
    assert {i for r in ranges for i in range(r.start, r.end + 1)} == expected


@given(value=st.text(max_size=60), mtime=st.floats(0, 4e9), etag=st.text(max_size=20))
@example(value="W/\"x\"", mtime=0.0, etag="W/\"x\"")
@example(value="Sun, 06 Nov 1994 08:49:37 GMT", mtime=784111777.0, etag='"x"')
@example(value="Sun, 06 Nov 99999 08:49:37 GMT", mtime=0.0, etag='"x"')
def test_validators_never_raise(value, mtime, etag):
    for name in ("If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"):
        headers = Headers([(name, value)])
        conditional.not_modified(headers, etag, mtime)
        conditional.precondition_holds(headers, etag, mtime)
        conditional.if_range_allows(headers, etag, mtime)
    conditional.parse_http_date(value)
