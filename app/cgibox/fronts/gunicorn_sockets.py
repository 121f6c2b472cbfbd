"""What gunicorn's workers read and close, put under the core's rules: a request head under
--header-timeout and the core's limits (HeadWatch, DeadlineSocket), a request body de-framed by the
core's readers under --body-timeout (core_body), and closing without waiting on the client (Closer).
"""

from __future__ import annotations

import os
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from typing import Any

from cgibox.core import connection, wire
from cgibox.core.errors import BodyTimeout
from cgibox.core.request import Headers

# how much of a head is kept to name a request gunicorn could not parse in the access log
HEAD_KEPT = wire.MAX_REQUEST_LINE + 2


class HeadTimeout(Exception):
    """The client did not finish its request head within --header-timeout."""


class PlainOnTLSPort(Exception):
    """The connection to the HTTPS port opened with something other than a TLS handshake."""


class EarlyAnswer(Exception):
    """The core refused a head while it arrived (414, 431, TLS on the plain port, a framing it
    will not take): `event` says what to answer."""

    def __init__(self, event: connection.EarlyError) -> None:
        super().__init__(event.status, event.detail)
        self.event = event


class HeadWatch:
    """The core's view of one request head as its bytes arrive (core.connection, the parser every
    front uses): its limits hold at the byte that breaks them, however the bytes are split, and
    it says when the head is complete. gunicorn parses the same bytes again afterwards."""

    __slots__ = ("connection", "seen", "done")

    def __init__(self, max_body: int, served: int = 0) -> None:
        self.connection = connection.Connection(max_body)
        self.connection.served = served  # > 0: a kept-alive connection, closed quietly when idle
        self.seen = b""  # the first bytes, to name the request in the access log
        self.done = False

    def feed(self, data: bytes) -> connection.Event:
        """`data` read from the client (b"": it closed): NEED_DATA, a RequestHead, an EarlyError
        or CLOSED_EVENT (closed before any byte)."""
        if len(self.seen) < HEAD_KEPT:
            self.seen += data[:HEAD_KEPT - len(self.seen)]
        self.connection.receive_data(data)
        event = self.connection.next_event()
        if isinstance(event, connection.RequestHead):
            self.done = True
        return event

    def timed_out(self) -> connection.Event:
        return self.connection.timed_out()


# per thread: the request head being read (its deadline and HeadWatch); deadline None while the
# application runs
_head = threading.local()


def arm_head(deadline: float, watch: HeadWatch) -> None:
    _head.deadline = deadline
    _head.watch = watch


def disarm_head() -> None:
    _head.deadline = None


def hand_over(data: bytes) -> None:
    """Bytes of this thread's next head, read already (by a worker that parks heads): the socket's
    first recv()s return them before reading the socket."""
    _head.pending = data


def head_seen() -> bytes:
    watch = getattr(_head, "watch", None)
    return watch.seen if watch is not None else b""


class DeadlineSocket(socket.socket):
    """A socket whose recv(), while this thread reads a request head, gives up with HeadTimeout
    once the head's deadline passes and hands every byte to a HeadWatch (EarlyAnswer when the core
    refuses the head). gunicorn reads the head through sock.recv() with no deadline of its own and
    its own, larger limits (100 fields of 64 KiB each: 6.5 MB); an accepted socket is switched to
    this class (same layout, no new slots)."""

    __slots__ = ()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return _recv_in_head(self, super().recv, bufsize, flags)


class DeadlineSSLSocket(ssl.SSLSocket):
    """DeadlineSocket's rules for HTTPS connections (every request of a keep-alive one): the
    SSLSocket that the TLS context makes is switched to this class (same layout)."""

    def recv(self, bufsize: int = 1024, flags: int = 0) -> bytes:
        return _recv_in_head(self, super().recv, bufsize, flags)


def _recv_in_head(sock: socket.socket, recv: Any, bufsize: int, flags: int) -> bytes:
    """`recv` while this thread reads a request head (its deadline bounds the wait), the bytes
    shown to the core as they come; outside a head, `recv` as it is. Bytes handed over come first."""
    pending = getattr(_head, "pending", b"")
    if pending:
        _head.pending = pending[bufsize:]
        return pending[:bufsize]
    deadline = getattr(_head, "deadline", None)
    if deadline is None:
        return recv(bufsize, flags)  # type: ignore[no-any-return]
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise HeadTimeout
    sock.settimeout(remaining)
    try:
        data: bytes = recv(bufsize, flags)
    except TimeoutError:
        raise HeadTimeout from None
    watch: HeadWatch = _head.watch
    if not watch.done and data:  # b"": gunicorn says NoMoreData itself
        event = watch.feed(data)
        if isinstance(event, connection.EarlyError):
            raise EarlyAnswer(event)
    return data


# -- request bodies ------------------------------------------------------------------------------

class UnreaderSource:
    """The bytes after a head, as the core's body readers take them (wire.ByteSource): what
    gunicorn's parser has buffered first, then the socket, each wait bounded by --body-timeout
    (BodyTimeout, the core's 408). Bytes read past the body go back to gunicorn's buffer, so a
    pipelined next request is still there for its parser."""

    def __init__(self, unreader: Any, sock: socket.socket, timeout: float) -> None:
        self.unreader = unreader
        self.sock = sock
        self.timeout = timeout

    def _next(self, read_ahead: int | None) -> bytes:
        sock = self.sock
        prior = sock.gettimeout()  # gunicorn's drain before a keep-alive sets its own deadline
        sock.settimeout(self.timeout if prior is None else min(prior, self.timeout))
        try:
            return self.unreader.read(None, read_ahead=read_ahead)  # type: ignore[no-any-return]
        except TimeoutError:
            raise BodyTimeout(self.timeout) from None
        finally:
            sock.settimeout(prior)

    def read(self, size: int = -1) -> bytes:
        data = self._next(size if size > 0 else None)
        if 0 <= size < len(data):
            self.unreader.unread(data[size:])
            data = data[:size]
        return data

    def readline(self, limit: int) -> bytes:
        line = b""
        while len(line) < limit:
            data = self._next(None)
            if not data:
                break
            end = data.find(b"\n")
            take = min(limit - len(line), len(data) if end < 0 else end + 1)
            line += data[:take]
            if take < len(data):
                self.unreader.unread(data[take:])
            if line.endswith(b"\n"):
                break
        return line


def core_body(req: Any, sock: socket.socket, max_body: int, timeout: float) -> wire.BodyReader:
    """The body of gunicorn's request `req`, framed by the core's readers (the chunked syntax,
    sizes and trailers every front gets; HTTPError 400/413/501 for a framing the core refuses)
    over UnreaderSource. gunicorn's own reader would wait for a 100-digit chunk size's bytes."""
    headers = Headers(req.headers)
    reader, _ = wire.body_reader(headers, UnreaderSource(req.unreader, sock, timeout), max_body)
    return reader


# -- closing -------------------------------------------------------------------------------------

class Closer:
    """gunicorn's util.close_graceful without the wait. gunicorn half-closes, then reads for up to
    2 s until the client closes too (RFC 9112 9.6: closing with unread bytes makes the kernel send
    a reset that can destroy the response's last bytes), and does that in the gthread worker's
    event loop and in the sync worker itself: every client that keeps its socket open stalled the
    whole worker. Here the half-close and that read happen in one daemon thread per process that
    waits on every closing socket in a selector (up to MAX_SOCKETS; past that, closed at once)."""

    LINGER = 2.0  # gunicorn's own close_graceful timeout
    MAX_DRAIN = 65536  # and its max_drain
    MAX_SOCKETS = 4096

    def __init__(self) -> None:
        self._pid = -1
        self._lock = threading.Lock()
        self._incoming: deque[socket.socket] = deque()
        self._wake_r = self._wake_w = -1
        self.lingering = 0

    def close_graceful(self, sock: socket.socket, timeout: float = LINGER,
                       max_drain: int = MAX_DRAIN) -> None:
        """Drop-in for gunicorn.util.close_graceful: never blocks."""
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            _close(sock)
            return
        try:
            raw = socket.socket(fileno=sock.detach())  # away from the SSL layer or a subclass
        except OSError:
            _close(sock)
            return
        raw.setblocking(False)
        if _drained(raw) or self.lingering >= self.MAX_SOCKETS:
            raw.close()
            return
        with self._lock:
            self._start()
            self.lingering += 1
            self._incoming.append(raw)
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass  # a full pipe still wakes the thread

    def _start(self) -> None:
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()  # a forked worker starts its own thread
        self._incoming.clear()
        self.lingering = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        threading.Thread(target=self._run, args=(self._wake_r,), name="cgibox-closer", daemon=True).start()

    def _run(self, wake_r: int) -> None:
        selector = selectors.DefaultSelector()
        selector.register(wake_r, selectors.EVENT_READ)
        deadlines: deque[tuple[float, socket.socket]] = deque()  # in order: one LINGER for all
        drained: dict[socket.socket, int] = {}
        while True:
            timeout = max(0.0, deadlines[0][0] - time.monotonic()) if deadlines else None
            for key, _ in selector.select(timeout):
                if key.fileobj == wake_r:
                    try:
                        os.read(wake_r, 4096)
                    except OSError:
                        pass
                    with self._lock:
                        taken = list(self._incoming)
                        self._incoming.clear()
                    for raw in taken:
                        selector.register(raw, selectors.EVENT_READ)
                        drained[raw] = 0
                        deadlines.append((time.monotonic() + self.LINGER, raw))
                    continue
                raw = key.fileobj  # type: ignore[assignment]
                try:
                    data = raw.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                drained[raw] += len(data)
                if not data or drained[raw] >= self.MAX_DRAIN:
                    self._done(selector, drained, raw)
            now = time.monotonic()
            while deadlines and (deadlines[0][0] <= now or deadlines[0][1] not in drained):
                self._done(selector, drained, deadlines.popleft()[1])

    def _done(self, selector: selectors.BaseSelector, drained: dict[socket.socket, int],
              raw: socket.socket) -> None:
        if drained.pop(raw, None) is None:
            return
        selector.unregister(raw)
        raw.close()
        with self._lock:
            self.lingering -= 1


def _drained(raw: socket.socket) -> bool:
    """Read what the client has sent already; True when it has closed its side too."""
    try:
        for _ in range(16):
            if not raw.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    return False


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


CLOSER = Closer()
