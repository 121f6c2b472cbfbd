"""The http.server front: socketserver's Threading/Forking mixins and a BaseHTTPRequestHandler
subclass that reads bytes into a core Request and writes the core's Response back.

Everything HTTP (limits, parsing, framing, keep-alive, errors) is decided by cgibox.core; this
module owns only sockets, timeouts, threads, child processes and signals.
"""

from __future__ import annotations

import errno
import io
import os
import selectors
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer

from cgibox.config import Config
from cgibox.core import wire
from cgibox.core.accesslog import server_log
from cgibox.core.errors import HTTPError
from cgibox.core.request import Request
from cgibox.core.response import ConnectionCut, FileRegion, Response
from cgibox.core.router import App

# a body write or read that makes no progress for this long ends the connection
IO_TIMEOUT = 60.0
# file regions up to this size are read and sent with the head in one write
INLINE_FILE_LIMIT = 64 * 1024
SEND_BUFFER = 64 * 1024
# closing with unread request bytes: read and drop at most this much, this long, first
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024
# how late a head deadline may fire, traded for fewer settimeout calls
DEADLINE_SLACK = 0.25


class ClientGone(Exception):
    """The peer closed or reset the connection."""


class DeadlineRaw(io.RawIOBase):
    """The connection as rfile's raw stream, calling `before_recv` before every recv.

    socket.makefile() would do, but its timeout restarts with every recv inside one readline():
    a client sending a byte at a time would hold a head (and a handler) open far past
    --header-timeout. `before_recv` lets the handler apply the head's deadline to each recv.
    """

    def __init__(self, sock: socket.socket, before_recv: Callable[[], None]) -> None:
        super().__init__()
        self._sock = sock
        self._before_recv = before_recv

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        self._before_recv()
        try:
            return self._sock.recv_into(buffer)
        except BlockingIOError:  # SO_RCVTIMEO ran out (the socket itself is blocking)
            raise TimeoutError from None


def _timeval(seconds: float) -> bytes:
    """A struct timeval for SO_RCVTIMEO / SO_SNDTIMEO; never zero, which would mean 'no timeout'."""
    micro = max(1, round(seconds * 1e6))
    return struct.pack("ll", micro // 1_000_000, micro % 1_000_000)


class Handler(BaseHTTPRequestHandler):
    """One connection: requests in a keep-alive loop, each handed to the core."""

    server: CgiboxServerMixin  # type: ignore[assignment]
    rbufsize = 64 * 1024

    def setup(self) -> None:
        self.connection = self.request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # a blocking socket whose timeouts the kernel keeps (SO_RCVTIMEO / SO_SNDTIMEO): Python's
        # own socket timeouts cost a poll() before every recv and send, and fcntl calls to change
        self.connection.settimeout(None)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(IO_TIMEOUT))
        self._head_deadline: float | None = None
        self.rfile = io.BufferedReader(DeadlineRaw(self.connection, self._before_recv), self.rbufsize)
        self.wfile = None  # type: ignore[assignment]  # writes go straight to the socket
        self.served = 0
        self._socket_timeout = float("inf")
        self.close_connection = True
        self.server.track(self.connection, busy=False)

    def finish(self) -> None:
        self.server.untrack(self.connection)
        try:
            self.rfile.close()
        except OSError:
            pass

    def handle(self) -> None:
        app = self.server.app
        try:
            while True:
                self.close_connection = True
                self.handle_one_request_for(app)
                self.served += 1
                if self.close_connection or self.server.stopping:
                    break
        except (ClientGone, ConnectionError, TimeoutError, OSError):
            pass

    # -- one exchange ------------------------------------------------------------------------

    def handle_one_request_for(self, app: App) -> None:
        deadline = time.monotonic() + app.config.header_timeout
        self.server.set_busy(self.connection, False)
        try:
            request_line = self._read_request_line(deadline)
        except TimeoutError:
            status = wire.head_timeout_status(self.served)
            if status is not None:
                self._answer_early(app, status, None)
            return
        if request_line is None:
            return
        self.server.set_busy(self.connection, True)
        try:
            request = self._read_request(app, request_line, deadline)
        except TimeoutError:
            self._answer_early(app, 408, request_line)
            return
        except HTTPError as error:
            self._answer_early(app, error.status, request_line, error.detail)
            return
        self._head_deadline = None  # the body and the response have IO_TIMEOUT per operation
        response = app.handle(request)
        self._send(app, request, response)

    def _before_recv(self) -> None:
        """Called by rfile before every recv: while a head is read, its deadline bounds the wait;
        a body's reads wait at most IO_TIMEOUT each."""
        deadline = self._head_deadline
        if deadline is None:
            if self._socket_timeout != IO_TIMEOUT:
                self._set_timeout(IO_TIMEOUT)
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        # only move the receive timeout when the deadline is meaningfully nearer than it: one
        # setsockopt per request head at most, none on a busy keep-alive connection
        if remaining < self._socket_timeout - DEADLINE_SLACK:
            self._set_timeout(remaining)

    def _peek(self, deadline: float) -> bytes:
        """The bytes already buffered, or else the next ones to arrive, by `deadline`."""
        self._head_deadline = deadline
        return self.rfile.peek(1)

    def _read_line(self, limit: int, deadline: float) -> bytes:
        """One line (at most `limit` bytes), all of it by `deadline`: rfile's raw stream checks the
        deadline before each recv, so a client trickling bytes cannot stretch one line forever."""
        self._head_deadline = deadline
        return self.rfile.readline(limit)

    def _set_timeout(self, seconds: float) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(seconds))
        self._socket_timeout = seconds

    def _read_request_line(self, deadline: float) -> bytes | None:
        """The request line without its CRLF, or None when the client closed the connection."""
        # a TLS ClientHello need not hold a line end: judge it by its first bytes, not a line
        if wire.looks_like_tls(self._peek(deadline)):
            line = wire.TLS_HANDSHAKE_PREFIX
        else:
            line = self._read_line(wire.REQUEST_LINE_READ, deadline)
            if wire.is_leading_blank_line(line):
                line = self._read_line(wire.REQUEST_LINE_READ, deadline)
        if not line:
            return None
        if wire.looks_like_tls(line):
            server_log(wire.TLS_LOG.format(peer=self.client_address[0]))
            self._answer_early(self.server.app, 400, b"<TLS handshake>", wire.TLS_ON_PLAIN_PORT)
            return None
        return line

    def _read_request(self, app: App, line: bytes, deadline: float) -> Request:
        head = wire.HeadParser(line)
        while True:
            raw = self._read_line(wire.HEADER_LINE_READ, deadline)
            if not raw:
                raise ClientGone
            if head.feed(raw):
                break
        method, target, protocol, headers = head.method, head.target, head.protocol, head.headers
        request = Request(method=method, target=target, protocol=protocol, headers=headers,
                          remote_addr=self.client_address[0], remote_port=self.client_address[1],
                          server_name=self.server.server_name, server_port=self.server.server_port)
        continue_callback = self._send_continue if wire.expects_continue(request) else None
        reader, length = wire.body_reader(headers, self.rfile, app.config.max_body, continue_callback)
        request.body = reader  # type: ignore[assignment]
        request.body_length = length
        self.close_connection = not wire.wants_keep_alive(protocol, headers)
        return request

    def _linger(self) -> None:
        """Closing with request bytes unread makes the kernel answer them with a reset, which can
        destroy the response before the client reads it (a 413 while the body is still coming):
        stop writing, then read and drop what the client still sends, briefly (Apache's
        lingering close)."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            dropped = 0
            while dropped < LINGER_BYTES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.connection.settimeout(remaining)
                data = self.connection.recv(65536)
                if not data:
                    break
                dropped += len(data)
        except OSError:  # timed out, reset, or already closed: nothing more to do
            pass

    def _send_continue(self) -> None:
        self.connection.sendall(wire.CONTINUE)

    def _answer_early(self, app: App, status: int, request_line: bytes | None, detail: str = "") -> None:
        """An error before a Request exists (bad head, timeout): answer it and close."""
        self.close_connection = True
        response = app.error(None, status, detail, close_connection=True)
        head, _, _ = wire.frame_response("GET", "HTTP/1.1", False, response)
        body = response.body if isinstance(response.body, bytes) else b""
        try:
            self.connection.settimeout(5)
            self.connection.sendall(head + body)
            if status != 408:  # a client that timed out is not sending
                self._linger()
        except OSError:
            pass
        line = request_line.rstrip(b"\r\n").decode("latin-1") if request_line else ""
        app.finish(None, status, len(body), request_line=line[:200], remote_addr=self.client_address[0])

    # -- writing -----------------------------------------------------------------------------

    def _send(self, app: App, request: Request, response: Response) -> None:
        keep_alive = wire.keep_alive_after(request, not self.close_connection, self.server.stopping)
        if response.raw_head is not None:  # an nph- script's head, untouched; its body unframed
            head, chunked, close = response.raw_head, False, True
        else:
            head, chunked, close = wire.frame_response(request.method, request.protocol, keep_alive,
                                                       response)
        sent = 0
        completed = False
        try:
            sent = self._write_body(head, response, chunked)
            completed = True
        except ConnectionCut:
            close = True
        except HTTPError as error:  # a body reader failed after the head went out: nothing to fix
            server_log(f"cgibox: {request.method} {request.target}: {error.detail or error.status}")
            close = True
        except (OSError, ClientGone):
            close = True
        finally:
            response.close()
        unread = not wire.keep_alive_after(request, True, False)  # the body was not read to its end
        if completed and close and unread:
            self._linger()
        self.close_connection = close or unread
        app.finish(request, response.status, sent, cgi_run=response.cgi_run,
                   route_kind=response.route_kind)

    def _write_body(self, head: bytes, response: Response, chunked: bool) -> int:
        """Send head and body; returns body bytes written. The head leaves with the first bytes."""
        sock = self.connection
        buffer = bytearray(head)
        sent = 0
        streaming = not isinstance(response.body, (bytes, FileRegion, list, tuple))
        for part in response.parts():
            if isinstance(part, FileRegion):
                if part.length <= INLINE_FILE_LIMIT or chunked:
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
        out_fd, in_fd = self.connection.fileno(), part.file.fileno()
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


class CgiboxServerMixin:
    """Listening socket set-up, connection tracking for graceful stops, and the serve loop."""

    # socketserver's default backlog of 5 drops connections that arrive together (a browser
    # opens six); dropped SYNs come back only after a second
    request_queue_size = 1024
    app: App
    stopping = False
    address_family: int
    server_name: str
    server_port: int

    def init_cgibox(self, app: App) -> None:
        self.app = app
        self.stopping = False
        self._connections: dict[socket.socket, bool] = {}

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] in ("::", ""):
            # dual stack: "::" also answers IPv4, like http.server's own CLI
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)  # type: ignore[arg-type]
        # no socket.getfqdn(): it can block start-up on DNS for seconds
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    # No lock around the connection table: each update is one atomic dict operation, and a lock
    # would be taken by every request of every thread, and by a forked child's signal handler
    # while the same thread may hold it. `stopping` is set before the table is read, and read
    # after a connection is marked idle, so no idle connection is missed.
    def track(self, connection: socket.socket, busy: bool) -> None:
        self._connections[connection] = busy

    def set_busy(self, connection: socket.socket, busy: bool) -> None:
        self._connections[connection] = busy
        if self.stopping and not busy:
            self._wake(connection)

    def untrack(self, connection: socket.socket) -> None:
        self._connections.pop(connection, None)

    @staticmethod
    def _wake(connection: socket.socket) -> None:
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close_idle_connections(self) -> None:
        """Idle keep-alive connections are closed at once; busy ones finish their request."""
        self.stopping = True
        idle = [conn for conn, busy in list(self._connections.items()) if not busy]
        for connection in idle:
            self._wake(connection)

    def open_connections(self) -> int:
        return len(self._connections)


class ThreadingServer(CgiboxServerMixin, socketserver.ThreadingMixIn, HTTPServer):
    """A thread per connection, at most `threads` at once; more connections wait to be accepted."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address, app: App, threads: int) -> None:
        self.init_cgibox(app)
        self._slots = threading.BoundedSemaphore(threads)
        super().__init__(address, Handler)

    def process_request(self, request, client_address) -> None:
        while not self._slots.acquire(timeout=0.5):
            if self.stopping:
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.open_connections() and time.monotonic() < deadline:
            time.sleep(0.05)


class ForkingServer(CgiboxServerMixin, socketserver.ForkingMixIn, HTTPServer):
    """A child process per connection (at most `max_children`); the parent only accepts and reaps."""

    block_on_close = False

    def __init__(self, address, app: App, children: int) -> None:
        self.init_cgibox(app)
        self.max_children = children
        super().__init__(address, Handler)

    def process_request(self, request, client_address) -> None:
        pid = os.fork()
        if pid:
            if self.active_children is None:
                self.active_children = set()
            self.active_children.add(pid)
            self.close_request(request)
            return
        # the child: a fresh signal disposition, then one connection, then exit
        status = 1
        try:
            self.socket.close()
            self.stopping = False
            install_child_signals(self)
            self.finish_request(request, client_address)
            status = 0
        except Exception:  # noqa: BLE001
            self.handle_error(request, client_address)
        finally:
            try:
                self.shutdown_request(request)
            finally:
                os._exit(status)

    def drain(self, timeout: float) -> None:
        children = set(self.active_children or ())
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while self.active_children and time.monotonic() < deadline:
            self.collect_children()
            time.sleep(0.05)
        for pid in list(self.active_children or ()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.collect_children(blocking=True)


def install_child_signals(server: CgiboxServerMixin) -> None:
    """In a forked child: on SIGTERM/SIGINT finish the request in flight, drop an idle connection."""
    def on_signal(signum, frame) -> None:
        server.close_idle_connections()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def handle_error_quietly(self, request, client_address) -> None:
    exc = sys.exc_info()[1]
    if isinstance(exc, (ConnectionError, TimeoutError)) or \
            (isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.ECONNRESET)):
        return
    server_log(f"cgibox: connection from {client_address[0]} failed: {exc!r}")


ThreadingServer.handle_error = handle_error_quietly  # type: ignore[method-assign]
ForkingServer.handle_error = handle_error_quietly  # type: ignore[method-assign]


def make_server(config: Config, app: App) -> ThreadingServer | ForkingServer:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    server_class = ThreadingServer if config.front == "threading" else ForkingServer
    server_class.address_family = family
    return server_class((config.host, config.port), app, config.threads)


def serve(server: ThreadingServer | ForkingServer, config: Config) -> int:
    """Serve until SIGTERM/SIGINT, then stop accepting and let requests in flight finish."""
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()  # only a flag: the loop below acts on it

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.timeout = 0.5
    with selectors.DefaultSelector() as selector:
        selector.register(server, selectors.EVENT_READ)
        while not stop.is_set():
            if selector.select(0.5):
                server._handle_request_noblock()  # noqa: SLF001 - socketserver's own accept step
            server.service_actions()
    server_log(f"cgibox: stopping; finishing requests in flight (up to {config.graceful_timeout:g} s)")
    server.socket.close()
    server.close_idle_connections()
    server.drain(config.graceful_timeout)
    return 0
