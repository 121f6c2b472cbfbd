"""One HTTP/1.x connection, sans I/O: fed bytes, it says what happens next (need more bytes, a
complete request head, an early error to answer, closed), and it alone decides whether the
connection goes on after a response. Every socket front drives one of these per connection.

The states and what moves between them are tables, after h11's `_state.py`:

    IDLE ──data──► HEAD ──head──► BUSY ──keep──► IDLE (or HEAD, when pipelined bytes wait)
      │              │              └──close──► MUST_CLOSE
      └──eof/error───┴──────────────────────────► MUST_CLOSE / CLOSED
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cgibox.core import fast_head, wire
from cgibox.core.errors import HTTPError
from cgibox.core.request import Headers, Request, framing_problem
from cgibox.core.response import Response

# -- states and events ---------------------------------------------------------------------------

IDLE = "IDLE"  # between requests (or before the first): nothing of a head buffered
HEAD = "HEAD"  # part of a request head buffered
BUSY = "BUSY"  # a request head was handed out; its response is not finished
MUST_CLOSE = "MUST_CLOSE"  # an error was answered or the response said close: no more requests
CLOSED = "CLOSED"  # the peer closed its side

DATA, HEAD_DONE, KEEP, CLOSE, ERROR, EOF = "DATA", "HEAD_DONE", "KEEP", "CLOSE", "ERROR", "EOF"

TRANSITIONS: dict[tuple[str, str], str] = {
    (IDLE, DATA): HEAD,
    (IDLE, EOF): CLOSED,
    (IDLE, ERROR): MUST_CLOSE,  # a head timeout on a fresh connection
    (HEAD, DATA): HEAD,
    (HEAD, HEAD_DONE): BUSY,
    (HEAD, ERROR): MUST_CLOSE,
    (HEAD, EOF): MUST_CLOSE,  # half a head, then the client shut its side: answered 400
    (BUSY, KEEP): IDLE,
    (BUSY, CLOSE): MUST_CLOSE,
    (BUSY, ERROR): MUST_CLOSE,
    (BUSY, EOF): BUSY,  # the client may half-close after its request: still answer it
}


class ProtocolStateError(RuntimeError):
    """A front drove the connection through a move the table does not have (a bug)."""


# what next_event() returns
class NeedData:
    """Nothing complete yet: feed more bytes (or b"" at end of stream)."""


NEED_DATA = NeedData()


class Closed:
    """The connection is over: the peer closed between requests, or it must close now."""


CLOSED_EVENT = Closed()


@dataclass(slots=True)
class RequestHead:
    """A complete request head; `request.body` reads the body from the bytes that follow it."""

    request: Request


@dataclass(slots=True)
class EarlyError:
    """A request that cannot be handled (bad head, timeout, TLS on the plain port): answer
    `status` with `App.early_answer` and close. `request_line` names it in the access log."""

    status: int
    detail: str = ""
    request_line: str = ""
    log: str = ""  # a server-log line to write first ("{peer}" is the client's address)


# the wrong protocol on a port: the same answer from every front
TLS_ON_PLAIN_PORT = EarlyError(400, wire.TLS_ON_PLAIN_PORT, "<TLS handshake>", wire.TLS_LOG)
PLAIN_ON_TLS_PORT = EarlyError(400, wire.PLAIN_ON_TLS_PORT, "<plain HTTP on the HTTPS port>", wire.PLAIN_LOG)


Event = NeedData | Closed | RequestHead | EarlyError

# how much of an unparsable head names it in the access log
LOGGED_LINE = 200


class Connection:
    """The HTTP state of one connection. The front supplies `recv` (blocking, b"" at end of stream)
    for request bodies and `send_continue` for 100-continue; heads arrive through `receive_data`.

    Bytes after a head stay in `buffer`: a body reads them first, and whatever is left after the
    response is the start of the next (pipelined) request. A front that hands the connection to
    another thread or process hands `buffer` with it.
    """

    def __init__(self, max_body: int, peer: tuple[str, int] = ("-", 0),
                 server: tuple[str, int] = ("localhost", 0), scheme: str = "http",
                 fast: bool = fast_head.AVAILABLE) -> None:
        self.max_body = max_body
        # a head that arrives whole goes through llhttp first (core/fast_head.py), when installed
        self.fast = fast and fast_head.AVAILABLE
        self.peer = peer
        self.server = server
        self.scheme = scheme
        self.state = IDLE
        self.buffer = bytearray()
        self.served = 0  # responses finished on this connection
        self.eof = False
        self.recv: Callable[[], bytes] = lambda: b""
        self.send_continue: Callable[[], None] = lambda: None
        self._reset_head()
        self._request: Request | None = None
        self._client_keeps_alive = False
        self._closing = False

    # -- the table ---------------------------------------------------------------------------

    def _move(self, event: str) -> None:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise ProtocolStateError(f"{event} in state {self.state}") from None

    # -- bytes in ----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes read from the peer; b"" says it closed its side."""
        if not data:
            self.eof = True
            return
        self.buffer += data
        if self.state in (IDLE, HEAD):
            self._move(DATA)

    @property
    def idle(self) -> bool:
        """Between requests with nothing of the next one buffered: a keep-alive wait, not a head."""
        return self.state == IDLE and self.served > 0

    def timed_out(self) -> Event:
        """The front's clock ran out while waiting for a head: an idle keep-alive connection is
        closed quietly (its client sent nothing new); anything else is answered 408."""
        if self.idle:
            self.state = MUST_CLOSE
            return CLOSED_EVENT
        return self._error(HTTPError(408))

    def next_event(self) -> Event:
        """What the buffered bytes amount to now."""
        if self.state in (MUST_CLOSE, CLOSED):
            return CLOSED_EVENT
        if self.state == BUSY:
            raise ProtocolStateError("next_event while a response is still being sent")
        try:
            return self._parse()
        except HTTPError as error:
            return self._error(error)

    def _error(self, error: HTTPError) -> EarlyError:
        self._move(ERROR)
        line = bytes(self.buffer.split(b"\n", 1)[0][:LOGGED_LINE]).rstrip(b"\r").decode("latin-1")
        return EarlyError(error.status, error.detail, line)

    # -- the head, incrementally: each byte is looked at about once, however it trickles in ----

    def _reset_head(self) -> None:
        self._line: tuple[str, str, str] | None = None
        self._headers = Headers()
        self._scan = 0  # where the next unparsed header line starts in buffer
        self._headers_start = 0
        self._blank_skipped = False

    def _parse(self) -> Event:
        buffer = self.buffer
        if not buffer:
            if self.eof:
                self._move(EOF)
                return CLOSED_EVENT
            return NEED_DATA
        if self._line is None:
            if not self._blank_skipped and bytes(buffer[:1]) in (b"\r", b"\n"):
                # one empty line before a request line is tolerated (RFC 9112 2.2)
                if buffer[:2] == b"\r\n" or buffer[:1] == b"\n":
                    del buffer[:2 if buffer[:1] == b"\r" else 1]
                    self._blank_skipped = True
                    return self._parse()
                if len(buffer) < 2 and not self.eof:
                    return NEED_DATA
            if self.fast:
                parsed = fast_head.parse_head(buffer)
                if parsed is not None:
                    self._line, self._headers, self._scan = parsed
                    return self._head_done()
            if wire.looks_like_tls(bytes(buffer[:2])):
                self._move(ERROR)
                return TLS_ON_PLAIN_PORT
            end = buffer.find(b"\n", 0, wire.MAX_REQUEST_LINE + 3)
            if end < 0:
                if len(buffer) > wire.MAX_REQUEST_LINE + 2:
                    raise HTTPError(414, close_connection=True)
                return self._more()
            self._line = wire.parse_request_line(_without_cr(bytes(buffer[:end])))
            self._scan = self._headers_start = end + 1
        while True:
            end = buffer.find(b"\n", self._scan)
            if end < 0:
                if len(buffer) - self._headers_start > wire.MAX_HEADER_BYTES:
                    raise HTTPError(431, "header block too large", close_connection=True)
                return self._more()
            if end + 1 - self._headers_start > wire.MAX_HEADER_BYTES:
                raise HTTPError(431, "header block too large", close_connection=True)
            line = _without_cr(bytes(buffer[self._scan:end]))
            self._scan = end + 1
            if not line:
                return self._head_done()
            if len(self._headers) >= wire.MAX_HEADER_FIELDS:
                raise HTTPError(431, "too many header fields", close_connection=True)
            self._headers.add(*wire.parse_header_line(line))

    def _more(self) -> Event:
        if self.eof:  # half a head, then the end of the stream
            raise HTTPError(400, "request head ended early", close_connection=True)
        return NEED_DATA

    def _head_done(self) -> Event:
        assert self._line is not None
        method, target, protocol = self._line
        headers = self._headers
        # Host and HTTP/1.0 framing (request_problem asks again for every front): refused before
        # a body reader is made, so a faulty framing is never decoded
        problem = framing_problem(protocol, headers)
        if problem is not None:
            raise HTTPError(400, problem, close_connection=True)
        del self.buffer[:self._scan]
        self._reset_head()
        request = Request(method=method, target=target, protocol=protocol, headers=headers,
                          remote_addr=self.peer[0], remote_port=self.peer[1],
                          server_name=self.server[0], server_port=self.server[1], scheme=self.scheme)
        # looked up when the body is first read: the front that reads it sets send_continue
        continue_callback = (lambda: self.send_continue()) if wire.expects_continue(request) else None
        # raises HTTPError (400/413/501) for a body framing the core refuses, before BUSY
        reader, length = wire.body_reader(headers, BufferedSource(self), self.max_body,
                                          continue_callback)
        request.body = reader  # type: ignore[assignment]
        request.body_length = length
        self._move(HEAD_DONE)
        self._request = request
        self._client_keeps_alive = wire.wants_keep_alive(protocol, headers)
        return RequestHead(request)

    # -- the response: keep-alive decided here, once, for every front -------------------------

    def start_response(self, response: Response, stopping: bool = False) -> tuple[bytes, bool]:
        """The head to send for `response` and whether its body is chunked. The connection goes on
        only if the client wants it, the server is not stopping, the request body was read to its
        end (unread bytes would be taken for the next request) and the response does not close."""
        request = self._request
        assert request is not None and self.state == BUSY
        if response.raw_head is not None:  # an nph- script's head, untouched; its body unframed
            self._closing = True
            return response.raw_head, False
        keep = self._client_keeps_alive and not stopping and self.body_finished
        head, chunked, close = wire.frame_response(request.method, request.protocol, keep, response)
        self._closing = close
        return head, chunked

    @property
    def body_finished(self) -> bool:
        return self._request is None or wire.body_read_to_end(self._request)

    def end_response(self, completed: bool) -> tuple[bool, bool]:
        """The response is over (`completed`: all of it was written). Returns (keep_going, linger):
        whether the connection carries another request, and whether unread request bytes must be
        drained before closing (else the kernel's reset could destroy the response)."""
        unread = not self.body_finished
        linger = completed and unread
        keep = completed and not self._closing and not unread and not self.eof
        self._move(KEEP if keep else CLOSE)
        self.served += 1
        self._request = None
        if keep and self.buffer:
            self._move(DATA)  # a pipelined request already waits
        return keep, linger

    def resume(self, served: int, buffered: bytes) -> None:
        """Take up the state another process left this connection in (the forking front's child
        hands back how many responses it finished and the bytes it read past them)."""
        self.served = served
        self.buffer = bytearray(buffered)
        self.eof = False
        self._request = None
        self._reset_head()
        self.state = HEAD if buffered else IDLE

    def early_error_answered(self) -> None:
        """After an EarlyError was written: nothing more on this connection."""
        self.state = MUST_CLOSE


def _without_cr(line: bytes) -> bytes:
    """A head line without its CR: one CR before the LF (a bare LF is taken too, RFC 9112 2.2);
    any other CR stays and makes the line malformed."""
    return line[:-1] if line.endswith(b"\r") else line


class BufferedSource:
    """The request-body stream: the connection's buffered bytes first, then `recv()`. Whatever a
    body does not consume stays in the buffer for the next request."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def _fill(self) -> bool:
        connection = self._connection
        if connection.eof:
            return False
        data = connection.recv()
        if not data:
            connection.eof = True
            return False
        connection.buffer += data
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes: what is buffered, or else what one recv brings (b"" at the end)."""
        buffer = self._connection.buffer
        if not buffer and not self._fill():
            return b""
        if size is None or size < 0:
            size = len(buffer)
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def read_exactly(self, size: int) -> bytes:
        buffer = self._connection.buffer
        while len(buffer) < size and self._fill():
            pass
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def readline(self, limit: int) -> bytes:
        buffer = self._connection.buffer
        start = 0
        while True:
            end = buffer.find(b"\n", start, limit)
            if end >= 0:
                return self.read_exactly(end + 1)
            if len(buffer) >= limit:
                return self.read_exactly(limit)
            start = len(buffer)
            if not self._fill():
                return self.read_exactly(len(buffer))
