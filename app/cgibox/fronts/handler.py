"""The request handler of the http.server fronts: one busy connection's requests, each translated
into a core Request and the core's Response written back (head with the first body bytes, sendfile
for large files), then the one wait for the connection's next head that both fronts share.
Runs in a pool thread (fronts/threading_front.py) or a forked child (fronts/forking_front.py).
"""

from __future__ import annotations

import os
import select
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

from cgibox.core import wire
from cgibox.core.accesslog import server_log
from cgibox.core.connection import HEAD, NEED_DATA, EarlyError, Event, RequestHead
from cgibox.core.errors import BodyTimeout, HTTPError
from cgibox.core.request import Request
from cgibox.core.response import ConnectionCut, FileRegion, Response
from cgibox.core.router import App
from cgibox.fronts.client import Client

if TYPE_CHECKING:
    from cgibox.fronts.loop_server import LoopServer

# file regions up to this size are read and sent with the head in one write
INLINE_FILE_LIMIT = 64 * 1024
SEND_BUFFER = 64 * 1024
# closing with unread request bytes: read and drop at most this much, this long, first
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024
# a wait for a next head polls in slices this long, so that a stop (a flag only) is seen soon
WAIT_SLICE = 0.2


class ClientGone(Exception):
    """The peer closed or reset the connection."""


class HandBackNow(Exception):
    """Raised in a forked child waiting on an idle connection: the parent wants the slot."""


def _nothing_to_recv() -> bytes:
    return b""


def _no_continue() -> None:
    pass


class Handler(BaseHTTPRequestHandler):
    """One busy connection: the request whose head the loop completed, then the next ones as long
    as they come within the server's window. `request` is a fronts.client.Client; `self.sock` its
    socket, `self.client.http` the core's Connection."""

    server: LoopServer

    def setup(self) -> None:
        self.client: Client = self.request
        self.sock = self.client.sock
        self.rfile = None  # type: ignore[assignment]  # reads go through core.connection
        self.wfile = None  # type: ignore[assignment]  # writes go straight to the socket
        self.close_connection = True
        self._from_memory = False  # the last answer came from core/ready.py's memory
        http = self.client.http
        http.recv = self._recv
        http.send_continue = self._send_continue

    def finish(self) -> None:
        # the connection goes back to the server (shutdown_request), not closed here; a parked
        # connection keeps no handler alive
        http = self.client.http
        http.recv = _nothing_to_recv
        http.send_continue = _no_continue

    def handle(self) -> None:
        app = self.server.app
        client = self.client
        client.keep = False
        event, client.event = client.event, None
        pending, client.pending = client.pending, None
        try:
            if pending is not None:  # the loop began a ready answer the socket did not take whole
                if not self._finish_pending(app, *pending):
                    return
                event = self.next_head()
                if event is NEED_DATA:
                    client.keep = True
                    return
                if isinstance(event, RequestHead) and self.server.hands_back_for_body(client, event):
                    client.event = event
                    client.keep = True
                    return
            while True:
                if isinstance(event, EarlyError):
                    self._answer_early(app, event)
                    return
                if not isinstance(event, RequestHead):
                    return
                if not self._exchange(app, event.request):
                    return
                if self._from_memory and self.server.loop_answers(client) and not client.http.buffer:
                    client.keep = True  # its next heads are likely answered by the loop, no hand-off
                    return
                event = self.next_head()
                if event is NEED_DATA:
                    client.keep = True  # back to the loop to wait for the rest
                    return
                if isinstance(event, RequestHead) and self.server.hands_back_for_body(client, event):
                    client.event = event  # the loop waits for its small body (no thread meanwhile)
                    client.keep = True
                    return
        except (ClientGone, ConnectionError, TimeoutError, OSError):
            client.keep = False
        except HandBackNow:  # only ever raised while the connection waits between requests
            client.keep = True

    # -- the one wait for a next head ---------------------------------------------------------

    def next_head(self) -> Event:
        """The connection's next head (or early error), read here rather than in the loop while
        it comes within the server's window: a round trip through the loop costs a wake-up, two
        epoll_ctl, a recv and a hand-off. NEED_DATA when the window ends first (the loop waits
        for the rest). The loop's own deadlines hold here too (--keepalive-timeout idle,
        --header-timeout once a head starts): past them, the core's timed_out() event."""
        server, client = self.server, self.client
        http = client.http
        started = time.monotonic()
        config = server.config
        deadline = started + (config.header_timeout if http.state == HEAD else server.keepalive)
        window = server.handler_window(client)
        until = deadline if window is None else min(deadline, started + window)
        poller: select.poll | None = None
        while True:
            event = http.next_event()
            if event is not NEED_DATA:
                return event
            idle = http.idle
            if not server.may_wait(client):
                return NEED_DATA
            now = time.monotonic()
            if now >= deadline:
                return http.timed_out()  # 408, or an idle keep-alive connection closed
            if now >= until:
                return NEED_DATA
            if not client.transport_pending():  # bytes the TLS layer holds need no readiness
                if poller is None:
                    poller = select.poll()  # not select.select: a descriptor may be past FD_SETSIZE
                    poller.register(client.sock, select.POLLIN)
                if not server.wait_readable(client, poller, min(until - now, WAIT_SLICE)):
                    continue
            try:
                data = client.recv_ready()
            except (BlockingIOError, InterruptedError):
                continue  # woken for nothing: look again (until bounds it)
            http.receive_data(data)
            if idle and data:  # the first bytes of a new head: its own --header-timeout starts now
                deadline = time.monotonic() + config.header_timeout
                if window is None:
                    until = deadline

    # -- one exchange ------------------------------------------------------------------------

    def _exchange(self, app: App, request: Request) -> bool:
        """Answer one request; True when the connection carries another."""
        response = app.handle(request)
        self._from_memory = response.from_memory
        http = self.client.http
        head, chunked = http.start_response(response, self.server.stopping)
        sent = 0
        completed = False
        try:
            sent = self._write_body(head, response, chunked)
            completed = True
        except ConnectionCut:
            pass
        except HTTPError as error:  # a body reader failed after the head went out: nothing to fix
            server_log(f"cgibox: {request.method} {request.target}: {error.detail or error.status}")
        except (OSError, ClientGone):
            pass
        finally:
            response.close()
        keep, linger = http.end_response(completed)
        if linger and response.status != 408:  # a client that timed out is not sending
            self._linger()
        app.finish(request, response.status, sent, cgi_run=response.cgi_run,
                   route_kind=response.route_kind)
        return keep

    def _finish_pending(self, app: App, request: Request, response: Response, rest: bytes) -> bool:
        """Write the rest of a ready answer the loop began; True when the connection goes on."""
        http = self.client.http
        completed = False
        try:
            self.sock.sendall(rest)
            completed = True
        except OSError:
            pass
        keep, _ = http.end_response(completed)
        body = response.body
        app.finish(request, response.status, len(body) if completed and isinstance(body, bytes) else 0,
                   route_kind=response.route_kind)
        return keep

    def _recv(self) -> bytes:
        """The next bytes of a request body: the core's 408 after --body-timeout of silence."""
        seconds = self.server.config.body_timeout
        try:
            return self.client.recv_body(seconds)
        except TimeoutError:
            raise BodyTimeout(seconds) from None

    def _linger(self) -> None:
        """Closing with request bytes unread makes the kernel answer them with a reset, which can
        destroy the response before the client reads it (a 413 while the body is still coming):
        stop writing, then read and drop what the client still sends, briefly (Apache's
        lingering close)."""
        sock = self.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            dropped = 0
            while dropped < LINGER_BYTES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                sock.settimeout(remaining)
                data = sock.recv(65536)
                if not data:
                    break
                dropped += len(data)
        except OSError:  # timed out, reset, or already closed: nothing more to do
            pass

    def _send_continue(self) -> None:
        self.sock.sendall(wire.CONTINUE)

    def _answer_early(self, app: App, event: EarlyError) -> None:
        """An error before a Request exists (bad head, timeout, TLS): the core's answer, then close."""
        if event.log:
            server_log(event.log.format(peer=self.client.address[0]))
        data, length = app.early_answer(event.status, event.detail)
        try:
            self.sock.sendall(data)
            if event.status != 408:  # a client that timed out is not sending
                self._linger()
        except OSError:
            pass
        self.client.http.early_error_answered()
        app.finish(None, event.status, length, request_line=event.request_line,
                   remote_addr=str(self.client.address[0]))

    # -- writing -----------------------------------------------------------------------------

    def _write_body(self, head: bytes, response: Response, chunked: bool) -> int:
        """Send head and body; returns body bytes written. The head leaves with the first bytes."""
        sock = self.sock
        buffer = bytearray(head)
        sent = 0
        streaming = not isinstance(response.body, (bytes, FileRegion, list, tuple))
        for part in response.parts():
            if isinstance(part, FileRegion):
                if part.length <= INLINE_FILE_LIMIT or chunked or not self.client.sendfile_ok:
                    for data in part.read_chunks():
                        buffer += wire.chunk(data) if chunked else data
                        sent += len(data)
                        if len(buffer) >= SEND_BUFFER:
                            sock.sendall(buffer)
                            buffer.clear()
                    continue
                if buffer:
                    sock.sendall(buffer)
                    buffer.clear()
                sent += self._sendfile(part)
                continue
            if not part:
                continue
            buffer += wire.chunk(part) if chunked else part
            sent += len(part)
            if streaming or len(buffer) >= SEND_BUFFER:
                sock.sendall(buffer)
                buffer.clear()
        if chunked:
            buffer += wire.LAST_CHUNK
        if buffer:
            sock.sendall(buffer)
        return sent

    def _sendfile(self, part: FileRegion) -> int:
        """os.sendfile from the region's offset (socket.sendfile would wait forever on a blocking
        socket whose SO_SNDTIMEO ran out); a file that shrank meanwhile cuts the connection."""
        out_fd, in_fd = self.sock.fileno(), part.file.fileno()
        offset, remaining = part.offset, part.length
        while remaining > 0:
            try:
                sent = os.sendfile(out_fd, in_fd, offset, min(remaining, 1 << 30))
            except BlockingIOError:
                raise TimeoutError from None
            if sent == 0:
                raise ConnectionCut  # the file is shorter than the Content-Length already sent
            offset += sent
            remaining -= sent
        return part.length
