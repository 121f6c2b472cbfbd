"""core.wire and core.connection under hypothesis: request heads (valid ones split at any byte,
and any bytes at all), header lines, Content-Length/Transfer-Encoding and chunked bodies.

The properties: parsing only ever fails with an HTTPError of the contract's statuses; what it
accepts, the core's door accepts too; a body read in any pieces is the body that was sent."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cgibox.core import fast_head, wire
from cgibox.core.connection import CLOSED_EVENT, Connection, EarlyError, RequestHead
from cgibox.core.errors import HTTPError
from cgibox.core.request import Headers, Request, request_problem

HEAD_STATUSES = {400, 414, 431, 505}
TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
field_values = st.binary(max_size=40).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c < 127 or c >= 128).strip(b" \t"))
targets = st.builds(lambda parts, query: "/" + "/".join(parts) + (f"?{query}" if query else ""),
                    st.lists(st.text("abcXYZ09-._~%!$&'()*+,;=:@", max_size=8), max_size=4),
                    st.text("abc=&%+", max_size=8))


class Trickle(io.RawIOBase):
    """A stream that hands out its bytes in the pieces given: a socket's recv() at any split."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = [p for p in pieces if p]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.pieces:
            return 0
        piece = self.pieces.pop(0)
        n = min(len(buffer), len(piece))
        buffer[:n] = piece[:n]
        if n < len(piece):
            self.pieces.insert(0, piece[n:])
        return n


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return pieces


def parse_head(pieces: list[bytes], fast: bool = False) -> tuple[Request, bytes]:
    """Feed a head to core.connection in the pieces given, as the loop does with what recv()
    returns (then the end of the stream): the Request it makes and the bytes it kept after the
    head, with the pieces not fed yet. An early error is raised as the HTTPError it stands for."""
    connection = Connection(max_body=10_000, fast=fast)
    pieces = [p for p in pieces if p]
    while True:
        event = connection.next_event()
        if isinstance(event, RequestHead):
            return event.request, bytes(connection.buffer) + b"".join(pieces)  # kept + not yet fed
        if isinstance(event, EarlyError):
            raise HTTPError(event.status, event.detail, close_connection=True)
        if event is CLOSED_EVENT:
            raise ConnectionClosed
        connection.receive_data(pieces.pop(0) if pieces else b"")


class ConnectionClosed(Exception):
    """The stream ended with no head in it (nothing, or a blank line): nothing to answer."""


# the head suites run with the hand parser alone and with llhttp in front of it
PARSERS = pytest.mark.parametrize("fast", [
    pytest.param(False, id="hand"),
    pytest.param(True, id="llhttp", marks=pytest.mark.skipif(not fast_head.AVAILABLE,
                                                             reason="httptools is not installed"))])


@PARSERS
@given(method=tokens, target=targets, version=st.sampled_from(["HTTP/1.0", "HTTP/1.1"]),
       fields=st.lists(st.tuples(tokens, field_values), max_size=8),
       line_end=st.sampled_from([b"\r\n", b"\n"]), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_a_valid_head_split_at_any_byte_parses_the_same(method, target, version, fields, line_end, cuts,
                                                        fast):
    # exactly one valid Host, and no field that frames a body (RFC 9112 3.2, 6.1)
    fields = [("Host", b"example:80")] + [
        (name, value) for name, value in fields
        if name.lower() not in ("host", "transfer-encoding", "content-length")]
    lines = [f"{method} {target} {version}".encode()] + [name.encode() + b": " + value
                                                        for name, value in fields]
    data = line_end.join(lines) + line_end + line_end + b"BODY"
    request, after = parse_head(split_at(data, cuts), fast)
    assert (request.method, request.target, request.protocol) == (method, target, version)
    assert [(k, v.encode("latin-1")) for k, v in request.headers] == [(k, v) for k, v in fields]
    assert after == b"BODY"  # not one byte of what follows the head was taken


@PARSERS
@given(data=st.binary(max_size=300))
@example(data=b"GET / HTTP/1.1\r\nProxy\n: x\r\n\r\n")
@example(data=b"GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n")
@example(data=b"G\x00T / HTTP/1.1\r\n\r\n")
@example(data=b"GET /\xff HTTP/1.1\r\n\r\n")
@example(data=b"GET / HTTP/2.0\r\n\r\n")
@example(data=b"GET / HTTP/1.1\r\n folded\r\n\r\n")
def test_any_head_is_parsed_or_refused_with_a_contract_status(data, fast):
    check_head(data, fast)


def check_head(data: bytes, fast: bool = False) -> None:
    try:
        request, _ = parse_head([data], fast)
    except HTTPError as error:
        assert error.status in HEAD_STATUSES
        assert error.close_connection
        return
    except ConnectionClosed:
        return
    # whatever the connection accepts, the core's door accepts: the fronts and the core agree
    assert request_problem(request) is None


@st.composite
def mutated_heads(draw) -> bytes:
    """A valid head with a few bytes replaced or inserted: the space where parsers slip."""
    data = bytearray(b"GET /a/b?c=d HTTP/1.1\r\nHost: example\r\nX-Name: value\r\n"
                     b"Content-Length: 0\r\n\r\n")
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        byte = draw(st.sampled_from(b"\x00\r\n\t \x7f\x80\xff:;/%_-\x0b\x0c"))
        if draw(st.booleans()):
            data.insert(position, byte)
        elif position < len(data):
            data[position] = byte
    return bytes(data)


@PARSERS
@given(data=mutated_heads())
def test_a_mutated_head_is_parsed_or_refused_with_a_contract_status(data, fast):
    check_head(data, fast)


def outcome(data: bytes, fast: bool) -> tuple:
    """What a connection makes of `data` arriving in one piece: the request and what is left, or
    the early error (status and detail), or the end."""
    try:
        request, after = parse_head([data], fast)
    except HTTPError as error:
        return ("error", error.status, error.detail)
    except ConnectionClosed:
        return ("closed",)
    return ("request", request.method, request.target, request.protocol, list(request.headers),
            request.body_length, after)


@pytest.mark.skipif(not fast_head.AVAILABLE, reason="httptools is not installed")
@given(data=st.one_of(mutated_heads(), st.binary(max_size=300)))
@example(data=b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")  # llhttp takes 2.0: ours is 505
@example(data=b"GET / HTTP/1.1\r\nHost: x\r\nA:  b \t\r\n\r\n")  # llhttp keeps trailing space
@example(data=b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n")  # a method llhttp does not know
@example(data=b"GET / HTTP/1.1\r\nHost: x\nA: 1\r\n\r\n")  # one bare LF
@example(data=b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nHost: x\r\n\r\n")
@example(data=b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
def test_llhttp_in_front_changes_no_answer(data):
    """Whatever bytes arrive, a connection with llhttp in front makes of them exactly what the
    hand parser alone makes: the same request and leftover bytes, or the same status and detail."""
    assert outcome(data, True) == outcome(data, False)


@given(line=st.binary(max_size=80))
@example(line=b"Proxy\n: x")
@example(line=b"X-A\n: 1")
@example(line=b"Name:\x00")
def test_a_header_line_is_a_token_and_a_clean_value_or_400(line):
    try:
        name, value = wire.parse_header_line(line)
    except HTTPError as error:
        assert error.status == 400
        return
    assert name and all(c in TOKEN_CHARS for c in name)
    assert not any(c in value for c in "\x00\r\n")
    assert value == value.strip(" \t")


@given(line=st.binary(max_size=120))
@example(line=b"GET\n / HTTP/1.1")
@example(line=b"GET /\n HTTP/1.1")
def test_a_request_line_is_three_clean_parts_or_an_error(line):
    try:
        method, target, protocol = wire.parse_request_line(line)
    except HTTPError as error:
        assert error.status in HEAD_STATUSES
        return
    assert all(c in TOKEN_CHARS for c in method)
    assert all(0x21 <= ord(c) < 0x7F for c in target)
    assert protocol in ("HTTP/1.0", "HTTP/1.1")


def encode_chunked(body: bytes, sizes: list[int], extension: bytes, trailers: list[bytes]) -> bytes:
    out, position = b"", 0
    for size in sizes:
        piece = body[position:position + size]
        if not piece:
            break
        out += b"%x%s\r\n%s\r\n" % (len(piece), extension, piece)
        position += len(piece)
    if position < len(body):
        rest = body[position:]
        out += b"%X\r\n%s\r\n" % (len(rest), rest)
    return out + b"0\r\n" + b"".join(t + b"\r\n" for t in trailers) + b"\r\n"


@given(body=st.binary(max_size=2000), sizes=st.lists(st.integers(1, 300), max_size=10),
       extension=st.sampled_from([b"", b";name=value", b" ;x", b"\t;y=\"z\""]),
       trailers=st.lists(st.sampled_from([b"X-Trailer: 1", b"Expires: never"]), max_size=2),
       cuts=st.lists(st.integers(0, 10_000), max_size=12), read_size=st.integers(1, 700))
def test_a_chunked_body_read_in_any_pieces_is_the_body(body, sizes, extension, trailers, cuts, read_size):
    data = encode_chunked(body, sizes, extension, trailers) + b"NEXT"
    source = io.BufferedReader(Trickle(split_at(data, cuts)), buffer_size=5)
    reader, length = wire.body_reader(Headers([("Transfer-Encoding", "chunked")]), source, 10_000)
    assert length is None
    received = b"".join(iter(lambda: reader.read(read_size), b""))
    assert received == body and reader.finished and reader.total == len(body)
    assert source.read() == b"NEXT"


@given(data=st.binary(max_size=400), max_body=st.integers(0, 500), read_size=st.integers(-1, 100))
@example(data=b"5\r\nhello\r\n0\r\n\r\n", max_body=4, read_size=-1)
@example(data=b"ffffffffffffffffffffffffffffffff\r\n", max_body=10, read_size=10)
@example(data=b"1;\r\nx\r\n0\r\n\r\n", max_body=10, read_size=-1)
def test_any_chunked_bytes_give_at_most_max_body_or_an_error(data, max_body, read_size):
    reader, _ = wire.body_reader(Headers([("Transfer-Encoding", "chunked")]), io.BytesIO(data), max_body)
    received = b""
    try:
        while chunk := reader.read(read_size):
            received += chunk
    except HTTPError as error:
        assert error.status in (400, 413, 431)
    assert len(received) <= max_body


@given(lengths=st.lists(st.text(max_size=12), min_size=1, max_size=3),
       transfer_encoding=st.none() | st.text(max_size=12), max_body=st.integers(0, 1000))
@example(lengths=["²"], transfer_encoding=None, max_body=10)
@example(lengths=["1" * 40], transfer_encoding=None, max_body=10)
@example(lengths=["5, 5"], transfer_encoding=None, max_body=10)
def test_framing_headers_choose_a_reader_or_refuse(lengths, transfer_encoding, max_body):
    fields = Headers([("Content-Length", value) for value in lengths])
    if transfer_encoding is not None:
        fields.add("Transfer-Encoding", transfer_encoding)
    body = io.BytesIO(b"x" * 2000)
    try:
        reader, length = wire.body_reader(fields, body, max_body)
    except HTTPError as error:
        assert error.status in (400, 413, 501)
        return
    assert transfer_encoding is None
    assert length is not None and 0 <= length <= max_body
    assert len(reader.read()) == length


# -- the chunked decoder against the RFC 9112 7.1 grammar -------------------------------------------
#
#   chunked-body = *chunk last-chunk trailer-section CRLF
#   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
#   chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
#   trailer-section = *( field-line CRLF )
#
# Valid bodies are generated from the grammar; a reference decoder written from it separately
# (below, one regex per production) says what any mutation of them must give.

TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
QDTEXT = bytes([9, 32, 33] + list(range(0x23, 0x5C)) + list(range(0x5D, 0x7F)) + list(range(0x80, 0x100)))
PAIRED = bytes([9] + list(range(0x20, 0x7F)) + list(range(0x80, 0x100)))
MAX_DECODED = 100_000

grammar_tokens = st.binary(min_size=1, max_size=6).map(lambda b: bytes(TCHAR[c % len(TCHAR)] for c in b))
bws = st.sampled_from([b"", b" ", b"\t", b" \t "])
quoted_strings = st.lists(
    st.one_of(st.sampled_from(list(QDTEXT)).map(lambda c: bytes([c])),
              st.sampled_from(list(PAIRED)).map(lambda c: b"\\" + bytes([c]))),
    max_size=6).map(lambda parts: b'"' + b"".join(parts) + b'"')


@st.composite
def chunk_extensions(draw) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 3))):
        out += draw(bws) + b";" + draw(bws) + draw(grammar_tokens)
        if draw(st.booleans()):
            out += draw(bws) + b"=" + draw(bws) + draw(st.one_of(grammar_tokens, quoted_strings))
    return out


field_line_values = st.binary(max_size=20).map(
    lambda b: bytes(c for c in b if c == 9 or 0x20 <= c < 0x7F or c >= 0x80))


@st.composite
def chunked_bodies(draw) -> tuple[bytes, bytes]:
    """(the body, its chunked encoding) drawn from the grammar: sizes in either case with leading
    zeros, extensions on any chunk (the last one too), trailer field lines."""
    body = draw(st.binary(max_size=600))
    out, position = [], 0
    while position < len(body):
        size = draw(st.integers(1, 200))
        piece = body[position:position + size]
        position += len(piece)
        digits = draw(st.sampled_from([b"%x", b"%X"])) % len(piece)
        out.append(b"0" * draw(st.integers(0, 3)) + digits + draw(chunk_extensions()) + b"\r\n"
                   + piece + b"\r\n")
    out.append(b"0" * draw(st.integers(1, 3)) + draw(chunk_extensions()) + b"\r\n")
    for _ in range(draw(st.integers(0, 3))):
        out.append(draw(grammar_tokens) + b":" + draw(bws) + draw(field_line_values).strip(b" \t")
                   + draw(bws) + b"\r\n")
    out.append(b"\r\n")
    return body, b"".join(out)


_REF_SIZE_LINE = re.compile(
    rb"([0-9A-Fa-f]+)((?:[ \t]*;[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+"
    rb"(?:[ \t]*=[ \t]*(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+"
    rb'|"(?:[\t !\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"))?)*)\r\n')
_REF_FIELD_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*\r\n")


def reference_decode(data: bytes) -> tuple[bytes, bytes] | None:
    """(body, the bytes after it) if `data` starts with a chunked-body, else None. Sizes past
    16 significant hex digits are refused too (cgibox's bound, not the grammar's)."""
    body, at = b"", 0
    while True:
        match = _REF_SIZE_LINE.match(data, at)
        if match is None or len(match.group(1).lstrip(b"0")) > 16:
            return None
        size, at = int(match.group(1), 16), match.end()
        if size == 0:
            break
        if len(data) - at < size + 2 or data[at + size:at + size + 2] != b"\r\n":
            return None
        body, at = body + data[at:at + size], at + size + 2
    while not data.startswith(b"\r\n", at):
        match = _REF_FIELD_LINE.match(data, at)
        if match is None:
            return None
        at = match.end()
    return body, data[at + 2:]


class CountingSource(io.BytesIO):
    """A body source that fails the test if asked again and again after its end (a hang)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.calls = 0
        self.limit = len(data) + 64

    def _count(self) -> None:
        self.calls += 1
        assert self.calls <= self.limit, "the decoder keeps reading: it would hang on a socket"

    def read(self, size: int | None = -1) -> bytes:
        self._count()
        return super().read(size)

    def readline(self, size: int | None = -1) -> bytes:
        self._count()
        return super().readline(size)


def decode(data: bytes, read_size: int) -> tuple[bytes, bytes]:
    source = CountingSource(data)
    reader, length = wire.body_reader(Headers([("Transfer-Encoding", "chunked")]), source, MAX_DECODED)
    assert length is None
    received = b"".join(iter(lambda: reader.read(read_size), b""))
    assert reader.finished
    return received, source.read()


@given(encoded=chunked_bodies(), read_size=st.integers(1, 700))
@example(encoded=(b"hello", b'5 ;a = b\t;c="q \\" ;"\r\nhello\r\n0;last\r\nX-T: 1\r\nY:\r\n\r\n'),
         read_size=3)
def test_a_chunked_body_from_the_grammar_decodes_to_its_bytes(encoded, read_size):
    body, data = encoded
    assert reference_decode(data + b"NEXT") == (body, b"NEXT")  # the generator keeps to the grammar
    assert decode(data + b"NEXT", read_size) == (body, b"NEXT")


MUTATION_BYTES = b"\r\n\t ;=\"\\:0aFg\x00\x7f\xff,"


@st.composite
def mutated_chunked_bodies(draw) -> bytes:
    """A valid encoding with a few bytes inserted, replaced or deleted where framing lives."""
    _, data = draw(chunked_bodies())
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "replace", "delete"]))
        if action == "insert":
            data.insert(position, draw(st.sampled_from(MUTATION_BYTES)))
        elif position < len(data):
            if action == "replace":
                data[position] = draw(st.sampled_from(MUTATION_BYTES))
            else:
                del data[position]
    return bytes(data)


@given(data=mutated_chunked_bodies(), read_size=st.integers(1, 700))
@example(data=b"5\nhello\r\n0\r\n\r\n", read_size=700)  # bare LF after a size
@example(data=b"5;a\rb\r\nhello\r\n0\r\n\r\n", read_size=700)  # bare CR in an extension
@example(data=b"0\r\nX: 1\n\r\n", read_size=700)  # bare LF after a trailer line
@example(data=b"0\r\nnot a field\r\n\r\n", read_size=700)
@example(data=b"1" * 100 + b"\r\n", read_size=700)  # a 100-digit size
@example(data=b"5;=x\r\nhello\r\n0\r\n\r\n", read_size=700)
@example(data=b"5 \r\nhello\r\n0\r\n\r\n", read_size=700)
def test_a_mutated_chunked_body_decodes_as_the_grammar_says_or_is_400(data, read_size):
    expected = reference_decode(data)
    try:
        got = decode(data, read_size)
    except HTTPError as error:
        assert expected is None, f"refused ({error.status} {error.detail}) what the grammar allows"
        assert error.status in (400, 413) and error.close_connection
        return
    assert got == expected
