"""The connection loop of the http.server fronts: every connection that is not running a request
waits in one selector (new, head arriving, idle keep-alive) under a deadline kept in a timer heap.
A complete head, or an early error to answer, is handed to `dispatch`; a handler gives the
connection back with `hand_back`. Only sockets and clocks here: core.connection says what bytes mean.
"""

from __future__ import annotations

import collections
import errno
import heapq
import itertools
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from cgibox.core import wire
from cgibox.core.connection import CLOSED_EVENT, HEAD, NEED_DATA, Connection, EarlyError, Event, RequestHead
from cgibox.core.connection import Closed as ClosedEvent
from cgibox.core.errors import BodyTimeout
from cgibox.fronts.client import IO_TIMEOUT, RECV_SIZE, Client, timeval
from cgibox.fronts.waker import Waker

# connections accepted per readiness of the listening socket, so parked ones are not starved
ACCEPT_BATCH = 64
# ... when serving processes share the listener: one, so that a burst of connections (a load
# generator's 32, a browser's 6) is spread over the processes instead of all going to whichever
# woke first (measured: 28 of wrk's 32 on one of two processes); a busy process, slower to get
# back to accept(), then takes fewer
SHARED_ACCEPT_BATCH = 1
# a process that leaves a connection to a sibling with fewer looks at the listener again after this
ACCEPT_DEFERRED = 0.002
# a request body up to this size that has not fully arrived with its head waits in the loop (under
# --body-timeout) before a handler takes it: a slow small upload holds no thread or child; a
# bigger one is read by its handler as it streams (under the same deadline, SO_RCVTIMEO)
HELD_BODY_LIMIT = 64 * 1024
# closing after an early error with request bytes unread: the loop reads and drops at most this
# much, this long, first (a reset could destroy the answer before the client reads it)
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024


def body_timed_out(request_head: RequestHead, seconds: float) -> EarlyError:
    """The early answer for a body that stopped arriving while its connection waited in the loop:
    the core's BodyTimeout (408, close), logged under the request's own line."""
    request = request_head.request
    error = BodyTimeout(seconds)
    return EarlyError(error.status, error.detail, f"{request.method} {request.target} {request.protocol}")


class ConnectionLoop:
    """Accepts, parks and wakes connections for one serving process (run by its main thread)."""

    def __init__(self, listener: socket.socket, make_connection: Callable[[tuple[Any, ...]], Connection],
                 dispatch: Callable[[Client], None], header_timeout: float, keepalive_timeout: float,
                 max_connections: int, body_timeout: float) -> None:
        self.listener = listener
        self.make_connection = make_connection
        self.dispatch = dispatch
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.selector = selectors.DefaultSelector()
        self.clients: dict[int, Client] = {}  # every open connection of this process, by fd
        self.stopping = False
        self._timers: list[tuple[float, int, Client]] = []
        self._sequence = itertools.count()
        self._returned: collections.deque[Client] = collections.deque()
        # makes the Client of each accepted socket (tls_transport's for HTTPS)
        self.client_factory: Callable[[socket.socket, tuple[Any, ...], Connection], Client] = Client
        self.waker = Waker(self.selector, self._settle_returned)
        listener.setblocking(False)
        self._accepting = False
        self.accept_batch = ACCEPT_BATCH
        # the forking front sends a head's raw bytes to the process that answers it
        self.keep_heads = False
        # --processes: given this process's open connections, whether it accepts now
        self.may_accept: Callable[[int], bool] | None = None
        # the threading front answers a head whose answer is ready in the core here, without a
        # hand-off: True (answered, the connection goes on), False (answered, close it), or
        # None (not answered here: dispatched as any head; client.pending when begun)
        self.answer: Callable[[Client, RequestHead], bool | None] | None = None
        self._accept_again = 0.0
        self._resume_accepting()

    # -- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set (signal handlers set it; the wake-up fd breaks the wait)."""
        signal.set_wakeup_fd(self.waker.writer.fileno(), warn_on_full_buffer=False)
        while not stop.is_set():
            self.run_once()

    def run_once(self, longest: float = 1.0) -> None:
        timeout = longest
        if self._timers:
            timeout = min(timeout, max(0.0, self._timers[0][0] - time.monotonic()))
        if self._accept_again:
            timeout = min(timeout, max(0.0, self._accept_again - time.monotonic()))
        for key, _ in self.selector.select(timeout):
            key.data(key.fileobj)
        self._fire_timers()
        if self._accept_again and time.monotonic() >= self._accept_again:
            self._accept_again = 0.0
            self._resume_accepting()

    def _settle_returned(self) -> None:
        while self._returned:
            self._settle(self._returned.popleft())

    def call_soon(self, call: Callable[[], None]) -> None:
        """From any thread: run `call` in the loop thread at its next wake-up."""
        self.waker.call_soon(call)

    def wake(self) -> None:
        self.waker.wake()

    # -- accepting -------------------------------------------------------------------------------

    def _resume_accepting(self) -> None:
        if not self._accepting and not self.stopping and len(self.clients) < self.max_connections:
            self.selector.register(self.listener, selectors.EVENT_READ, self._on_accept)
            self._accepting = True

    def _pause_accepting(self) -> None:
        if self._accepting:
            self.selector.unregister(self.listener)
            self._accepting = False

    def _on_accept(self, _listener: object) -> None:
        for _ in range(self.accept_batch):
            if len(self.clients) >= self.max_connections:
                self._pause_accepting()  # the backlog holds the rest until one closes
                return
            if self.may_accept is not None and not self.may_accept(len(self.clients)):
                self._pause_accepting()  # a sibling with fewer takes it; look again soon
                self._accept_again = time.monotonic() + ACCEPT_DEFERRED
                return
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE):
                    self._pause_accepting()  # out of files: wait for a connection to close
                return  # ECONNABORTED and the like: try again on the next readiness
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval(IO_TIMEOUT))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(self.body_timeout))
            try:
                client = self.client_factory(sock, address, self.make_connection(address))
            except OSError:  # gone before its transport could be set up
                sock.close()
                continue
            self.clients[client.fileno()] = client
            self.park(client, time.monotonic() + self.header_timeout)

    def stop_accepting(self) -> None:
        self.stopping = True
        self._pause_accepting()
        try:
            self.listener.close()
        except OSError:
            pass

    # -- parking -----------------------------------------------------------------------------

    def park(self, client: Client, deadline: float) -> None:
        client.parked = True
        client.deadline = deadline
        self.selector.register(client.sock, selectors.EVENT_READ, self._on_readable)
        heapq.heappush(self._timers, (deadline, next(self._sequence), client))

    def _unpark(self, client: Client) -> None:
        if client.parked:
            client.parked = False
            self.selector.unregister(client.sock)

    def _on_readable(self, sock: socket.socket) -> None:
        client = self.clients.get(sock.fileno())
        if client is None:
            return
        if client.draining:
            self._drain_step(client)
            return
        ready = client.advance_transport()
        if ready is not True:  # False: wait for the socket again; or the transport's own end
            if ready is CLOSED_EVENT:
                self.close(client)
            elif ready:
                self._unpark(client)
                client.event = ready
                self.dispatch(client)
            return
        http = client.http
        was_idle = http.idle
        try:
            data = client.recv_ready()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset: nobody to answer
            self.close(client)
            return
        http.receive_data(data)
        if client.body_due:
            self._body_step(client, bool(data))
            return
        self._step(client, was_idle, len(data))

    def _body_step(self, client: Client, arrived: bool) -> None:
        """Bytes of a held body came: dispatch once it is all here (or the client closed)."""
        http = client.http
        if len(http.buffer) >= client.body_due or http.eof:
            client.body_due = 0
            self._unpark(client)
            self.dispatch(client)  # client.event is the head it was held with
        elif arrived:  # --body-timeout counts silence: it starts again
            self._rearm(client, time.monotonic() + self.body_timeout)

    def _step(self, client: Client, was_idle: bool = False, fresh: int | None = None) -> None:
        """Act on what the connection's buffered bytes amount to (`fresh`: how many just came)."""
        while True:
            event = self._next_event(client, fresh)
            if event is NEED_DATA:
                if was_idle:  # the first bytes of a new head: its own --header-timeout starts now
                    self._rearm(client, time.monotonic() + self.header_timeout)
                return
            if isinstance(event, ClosedEvent):
                self.close(client)
                return
            if isinstance(event, RequestHead):
                if self.hold_body(client, event):
                    return
                if self.answer is not None:
                    answered = self.answer(client, event)
                    if answered is False:
                        self.close(client)
                        return
                    if answered:  # parked still, for its next head: the deadline a handler's gets
                        http = client.http
                        self._extend(client, time.monotonic() + (
                            self.header_timeout if http.state == HEAD else self.keepalive_timeout))
                        if not http.buffer:
                            return
                        was_idle, fresh = False, None  # a pipelined head waits: on with it
                        continue
            self._unpark(client)
            client.event = None if client.pending is not None else event
            self.dispatch(client)
            return

    def _next_event(self, client: Client, fresh: int | None = None) -> Event:
        """The connection's next event; with keep_heads, a head's raw bytes kept in client.head.
        A head can only have ended in the bytes that just came (a complete one never waits here
        unparsed), so the buffer is copied only when those hold a blank line: a head trickled in
        byte by byte is not copied once per byte."""
        http = client.http
        buffer = http.buffer
        if not self.keep_heads:
            return http.next_event()
        start = 0 if fresh is None else max(0, len(buffer) - fresh - 2)
        if buffer.find(b"\n\n", start) < 0 and buffer.find(b"\n\r\n", start) < 0:
            return http.next_event()  # no head ends here (an early error needs no head bytes)
        before = bytes(buffer)
        event = http.next_event()
        if isinstance(event, RequestHead):
            client.head = before[:len(before) - len(http.buffer)]
        return event

    @staticmethod
    def body_on_its_way(client: Client, event: RequestHead) -> bool:
        """Whether the loop should hold this request until its (small) body has arrived: not one
        that waits for 100 Continue, which only a handler decides to send."""
        request = event.request
        length = request.body_length
        http = client.http
        return length is not None and 0 < length <= HELD_BODY_LIMIT and len(http.buffer) < length \
            and not http.eof and not wire.expects_continue(request)

    def hold_body(self, client: Client, event: RequestHead) -> bool:
        """Park `client` until the body of `event` is buffered (True), under --body-timeout."""
        if not self.body_on_its_way(client, event):
            return False
        client.event = event
        client.body_due = event.request.body_length or 0
        deadline = time.monotonic() + self.body_timeout
        if client.parked:
            self._rearm(client, deadline)
        else:
            self.park(client, deadline)
        return True

    def _rearm(self, client: Client, deadline: float) -> None:
        client.deadline = deadline
        heapq.heappush(self._timers, (deadline, next(self._sequence), client))

    def _extend(self, client: Client, deadline: float) -> None:
        """Move a parked client's deadline without a heap entry per request when it is later: the
        entry already there fires first and re-arms for the later one (_fire_timers)."""
        if deadline < client.deadline:
            heapq.heappush(self._timers, (deadline, next(self._sequence), client))
        client.deadline = deadline

    def _fire_timers(self) -> None:
        now = time.monotonic()
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _, client = heapq.heappop(timers)
            if not client.parked:
                continue  # a stale entry: the client moved on
            if client.deadline != deadline:
                if client.deadline > deadline:  # moved later by _extend (maybe without an entry)
                    heapq.heappush(timers, (client.deadline, next(self._sequence), client))
                continue
            self._unpark(client)
            if client.draining:
                self.close(client)
                continue
            if client.body_due:
                client.body_due = 0
                assert isinstance(client.event, RequestHead)
                client.event = body_timed_out(client.event, self.body_timeout)
                self.dispatch(client)
                continue
            event = client.timed_out()
            if event is CLOSED_EVENT:
                self.close(client)
            else:
                client.event = event
                self.dispatch(client)

    # -- lingering close ---------------------------------------------------------------------------

    def linger(self, client: Client) -> None:
        """Close `client` once the client stops sending (or after LINGER_SECONDS / LINGER_BYTES):
        the answer already written must not be destroyed by a reset for unread bytes (Apache's
        lingering close, here without a thread)."""
        try:
            socket.socket.shutdown(client.sock, socket.SHUT_WR)  # the raw socket: no TLS alert
        except OSError:
            self.close(client)
            return
        client.draining = LINGER_BYTES
        self.park(client, time.monotonic() + LINGER_SECONDS)

    def _drain_step(self, client: Client) -> None:
        try:  # the raw socket's recv: these bytes are dropped unread, TLS or not
            data = socket.socket.recv(client.sock, RECV_SIZE, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        client.draining = max(0, client.draining - len(data))
        if not data or not client.draining:
            self.close(client)

    # -- coming back from a handler ---------------------------------------------------------------

    def hand_back(self, client: Client) -> None:
        """From any thread: the handler is done with `client` (client.keep says how it ended)."""
        self._returned.append(client)
        self.wake()

    def _settle(self, client: Client) -> None:
        """A connection back from a handler: parked again for its next request, or closed."""
        if not client.keep or self.stopping:
            self.close(client)
            return
        if isinstance(client.event, RequestHead):  # a handler read a head whose body is coming
            if not self.hold_body(client, client.event):
                self.dispatch(client)
            elif client.transport_pending():
                self._on_readable(client.sock)
            return
        http = client.http
        now = time.monotonic()
        deadline = now + (self.header_timeout if http.state == HEAD else self.keepalive_timeout)
        self.park(client, deadline)
        if client.transport_pending():  # already read from the socket: no readiness will come
            self._on_readable(client.sock)
        elif http.buffer:  # bytes handed back may hold a whole head (a relay's last ones)
            self._step(client)

    def close(self, client: Client) -> None:
        self._unpark(client)
        self.clients.pop(client.sock.fileno(), None)
        if self.may_accept is not None:
            self.may_accept(len(self.clients))  # the siblings see the count fall
        try:
            client.sock.close()
        except OSError:
            pass
        self._resume_accepting()

    # -- stopping ----------------------------------------------------------------------------------

    def close_parked(self) -> None:
        """Stopping: a parked connection whose complete head already arrived is still answered
        (one last look at the socket); every other parked one is closed at once."""
        for client in [c for c in self.clients.values() if c.parked]:
            http = client.http
            if client.draining:
                self.close(client)
                continue
            if client.body_due:  # a complete head whose body is arriving: answered too
                client.body_due = 0
                self._unpark(client)
                self.dispatch(client)
                continue
            try:
                http.receive_data(client.recv_ready())
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.close(client)
                continue
            event = self._next_event(client)
            if isinstance(event, RequestHead):
                self._unpark(client)
                client.event = event
                self.dispatch(client)
            else:
                self.close(client)

    def drain(self, timeout: float, busy: Callable[[], bool]) -> None:
        """Keep taking connections back (and closing them) until nothing is `busy` or `timeout`."""
        deadline = time.monotonic() + timeout
        while busy() and time.monotonic() < deadline:
            self.run_once(min(0.1, max(0.0, deadline - time.monotonic())))

    def close_all(self) -> None:
        signal.set_wakeup_fd(-1)
        for client in list(self.clients.values()):
            self.close(client)
        self.selector.close()
        self.waker.close()

    def close_inherited(self, keep: Client | None) -> None:
        """In a forked process: drop its copies of every connection but `keep` and of the
        loop's own sockets, so that the parent's close really closes them. The selector's
        registrations belong to the parent: they are not touched, only this fd copy is closed."""
        signal.set_wakeup_fd(-1)
        for client in self.clients.values():
            if client is not keep:
                client.sock.close()
        self.selector.close()  # closes this copy of the epoll fd; no registration is removed
        for sock in (self.listener, self.waker.reader, self.waker.writer):
            try:
                sock.close()
            except OSError:
                pass
