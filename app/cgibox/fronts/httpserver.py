"""The http.server front: socketserver's Threading/Forking mixins and a BaseHTTPRequestHandler
subclass that translates one busy connection's requests into core Requests and writes the core's
Responses back. Waiting connections live in fronts.loop; what bytes mean, core.connection says.

    accept ─► loop (selector: new, head arriving, idle keep-alive; deadlines in a heap)
                │ complete head or early error (core.connection)
                ▼
              Handler in a pool thread (threading) or a forked child (forking)
                │ response written; keep-alive decided by core.connection
                └──► back to the loop, or straight on to a pipelined head already buffered

This module owns only sockets, threads, child processes and signals.
"""

from __future__ import annotations

import errno
import os
import queue
import select
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from cgibox.config import Config
from cgibox.core import wire
from cgibox.core.accesslog import server_log
from cgibox.core.cgi_slots import reclaim_orphans
from cgibox.core.connection import HEAD, NEED_DATA, Closed, Connection, EarlyError, Event, RequestHead
from cgibox.core.errors import HTTPError
from cgibox.core.request import Request
from cgibox.core.response import ConnectionCut, FileRegion, Response
from cgibox.core.router import App
from cgibox.fronts.forks import fork_holding, release
from cgibox.fronts.loop import RECV_SIZE, SHARED_ACCEPT_BATCH, Client, ConnectionLoop

# file regions up to this size are read and sent with the head in one write
INLINE_FILE_LIMIT = 64 * 1024
SEND_BUFFER = 64 * 1024
# closing with unread request bytes: read and drop at most this much, this long, first
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024
# the idle time allowed between requests when --keepalive-timeout is not given: long enough for a
# browser's next click to reuse its connections, short enough that departed clients do not fill
# --max-connections; a parked connection costs memory only, not a thread
DEFAULT_KEEPALIVE = 15.0


class ClientGone(Exception):
    """The peer closed or reset the connection."""


class HandBackNow(Exception):
    """Raised in a forked child waiting on an idle connection: the parent wants the slot."""


def _nothing_to_recv() -> bytes:
    return b""


def _no_continue() -> None:
    pass


class Handler(BaseHTTPRequestHandler):
    """One busy connection: the request whose head the loop completed, then any pipelined ones
    already buffered, each handed to the core. `request` is a fronts.loop.Client."""

    server: CgiboxServerMixin  # type: ignore[assignment]

    def setup(self) -> None:
        self.client: Client = self.request
        self.connection = self.client.sock
        self.rfile = None  # type: ignore[assignment]  # reads go through core.connection
        self.wfile = None  # type: ignore[assignment]  # writes go straight to the socket
        self.close_connection = True
        connection = self.client.connection
        connection.recv = self._recv
        connection.send_continue = self._send_continue

    def finish(self) -> None:
        # the connection goes back to the server (shutdown_request), not closed here; a parked
        # connection keeps no handler or request alive
        connection = self.client.connection
        connection.recv = _nothing_to_recv
        connection.send_continue = _no_continue
        self.client.event = None

    def handle(self) -> None:
        app = self.server.app
        client = self.client
        client.keep = False
        event = client.event
        try:
            while True:
                if isinstance(event, EarlyError):
                    self._answer_early(app, event)
                    return
                if not isinstance(event, RequestHead):
                    return
                if not self._exchange(app, event.request):
                    return
                event = client.connection.next_event()  # a pipelined head may be buffered already
                if event is NEED_DATA:
                    # the next head read here saves a round trip through the loop (wake-up, two
                    # epoll_ctl, a recv and a hand-off to a pool thread); a head still arriving
                    # at the end of the window goes back to the loop with what came of it
                    until = time.monotonic() + self.server.keep_busy_for
                    while event is NEED_DATA and self.server.more_arrived(client, until):
                        event = client.connection.next_event()
                if event is NEED_DATA:
                    client.keep = True  # back to the loop to wait for the rest
                    return
        except (ClientGone, ConnectionError, TimeoutError, OSError):
            client.keep = False
        except HandBackNow:  # only ever raised while the connection waits between requests
            client.keep = True

    # -- one exchange ------------------------------------------------------------------------

    def _exchange(self, app: App, request: Request) -> bool:
        """Answer one request; True when the connection carries another."""
        response = app.handle(request)
        connection = self.client.connection
        head, chunked = connection.start_response(response, self.server.stopping)
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
        keep, linger = connection.end_response(completed)
        if linger:
            self._linger()
        app.finish(request, response.status, sent, cgi_run=response.cgi_run,
                   route_kind=response.route_kind)
        return keep

    def _recv(self) -> bytes:
        """The next bytes of a request body (the socket's SO_RCVTIMEO bounds the wait)."""
        try:
            return self.connection.recv(RECV_SIZE)
        except BlockingIOError:  # SO_RCVTIMEO ran out (the socket itself is blocking)
            raise TimeoutError from None

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

    def _answer_early(self, app: App, event: EarlyError) -> None:
        """An error before a Request exists (bad head, timeout, TLS): the core's answer, then close."""
        if event.log:
            server_log(event.log.format(peer=self.client.address[0]))
        data, length = app.early_answer(event.status, event.detail)
        try:
            self.connection.sendall(data)
            if event.status != 408:  # a client that timed out is not sending
                self._linger()
        except OSError:
            pass
        self.client.connection.early_error_answered()
        app.finish(None, event.status, length, request_line=event.request_line,
                   remote_addr=str(self.client.address[0]))

    # -- writing -----------------------------------------------------------------------------

    def _write_body(self, head: bytes, response: Response, chunked: bool) -> int:
        """Send head and body; returns body bytes written. The head leaves with the first bytes."""
        sock = self.connection
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


class HandlerPool:
    """At most `size` daemon threads running handlers, started as work needs them. Daemon: a
    handler stuck on a client that never reads must not hold the process past --graceful-timeout."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_flight = 0  # submitted and not finished
        self._started = 0
        self._lock = threading.Lock()
        self._work: queue.SimpleQueue = queue.SimpleQueue()

    def submit(self, function, *args) -> None:
        with self._lock:
            self.in_flight += 1
            if self._started < min(self.size, self.in_flight):
                self._started += 1
                threading.Thread(target=self._run, name="cgibox-handler", daemon=True).start()
        self._work.put((function, args))

    def _run(self) -> None:
        while True:
            function, args = self._work.get()
            try:
                function(*args)
            finally:
                with self._lock:
                    self.in_flight -= 1


class CgiboxServerMixin:
    """Listening socket set-up and the connection loop; subclasses say where a busy connection runs."""

    # socketserver's default backlog of 5 drops connections that arrive together (a browser
    # opens six); dropped SYNs come back only after a second
    request_queue_size = 1024
    app: App
    config: Config
    loop: ConnectionLoop
    stopping = False
    address_family: int
    server_name: str
    server_port: int
    socket: socket.socket

    def init_cgibox(self, app: App, config: Config) -> None:
        self.app = app
        self.config = config
        self.stopping = False
        self.tls_context = None
        if config.tls_cert is not None:  # made once, before any fork of --processes or children
            from cgibox.tls import server_context
            self.tls_context = server_context(config.tls_cert, config.tls_key)  # type: ignore[arg-type]

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] in ("::", ""):
            # dual stack: "::" also answers IPv4, like http.server's own CLI
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)  # type: ignore[arg-type]
        # no socket.getfqdn(): it can block start-up on DNS for seconds
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def start_loop(self) -> None:
        """In the serving process (after any fork of --processes): its own selector."""
        config = self.config
        self.loop = ConnectionLoop(self.socket, self.make_connection, self.dispatch,
                                   config.header_timeout, keepalive_timeout(config),
                                   config.max_connections)
        if self.tls_context is not None:
            from cgibox.fronts.tls_transport import client_factory
            self.loop.client_factory = client_factory(self.tls_context, self.loop.selector)

    def make_connection(self, address: tuple) -> Connection:
        return Connection(self.app.body_limit, peer=(str(address[0]), int(address[1])),
                          server=(self.server_name, self.server_port),
                          scheme="http" if self.tls_context is None else "https")

    def dispatch(self, client: Client) -> None:
        """The loop has a head (or an early error) for `client`: run it (socketserver's step)."""
        self.process_request(client, client.address)  # type: ignore[attr-defined]

    def busy(self) -> bool:
        raise NotImplementedError

    # after a response, how long a handler keeps waiting for the connection's next head
    keep_busy_for = 0.0

    def may_wait(self) -> bool:
        """Whether a handler may spend its slot waiting for a connection's next head now."""
        return not self.stopping

    def more_arrived(self, client: Client, until: float) -> bool:
        """After a response: whether more bytes came before `until` (fed to its Connection), so
        that the handler keeps the connection; False hands it back to the loop."""
        if not self.may_wait():
            return False
        remaining = until - time.monotonic()
        if remaining <= 0:
            return False
        if not client.transport_pending():  # bytes the TLS layer holds need no readiness
            poller = select.poll()  # not select.select: a descriptor may be past FD_SETSIZE
            poller.register(client.sock, select.POLLIN)
            if not self.wait_readable(poller, remaining):
                return False
        try:
            client.connection.receive_data(client.recv_ready())
        except (BlockingIOError, InterruptedError):
            pass  # woken for nothing: look again (until bounds it)
        return True

    def wait_readable(self, poller: select.poll, seconds: float) -> bool:
        return bool(poller.poll(max(1, round(seconds * 1000))))

    def begin_stop(self) -> None:
        """Stopping: tell whatever runs requests to finish the one in flight and keep nothing."""

    def end_stop(self) -> None:
        """After --graceful-timeout: whatever still runs is given up."""


def keepalive_timeout(config: Config) -> float:
    return config.keepalive_timeout or DEFAULT_KEEPALIVE


# a pool thread keeps a connection whose next request follows within this long (a keep-alive
# client such as a browser or a load generator sends it at once); a thread holds no more than that
# for an idle one, and never while other heads wait for a thread
KEEP_BUSY_THREAD = 0.05


class ThreadingServer(CgiboxServerMixin, socketserver.ThreadingMixIn, HTTPServer):
    """Busy connections run in a pool of at most `threads` handler threads; waiting ones cost no thread."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address, app: App, config: Config) -> None:
        self.init_cgibox(app, config)
        self.pool = HandlerPool(config.threads)
        self.keep_busy_for = KEEP_BUSY_THREAD
        super().__init__(address, Handler)

    def process_request(self, request, client_address) -> None:
        # ThreadingMixIn's step (process_request_thread: the handler, then shutdown_request),
        # run by the bounded pool instead of a new thread per connection
        self.pool.submit(self.process_request_thread, request, client_address)

    def shutdown_request(self, request) -> None:
        self.loop.hand_back(request)  # the loop parks it again or closes it

    def start_loop(self) -> None:
        super().start_loop()
        if (self.config.processes or os.cpu_count() or 1) > 1:
            self.loop.accept_batch = SHARED_ACCEPT_BATCH

    def busy(self) -> bool:
        return self.pool.in_flight > 0

    def may_wait(self) -> bool:
        # not while other heads wait for a thread: then the loop is the cheaper place to wait
        return not self.stopping and self.pool.in_flight <= self.pool.size


# a forked child's report to the parent: keep-alive?, responses finished, bytes read past them
REPORT = struct.Struct("!?QI")
# a forked child keeps a connection whose next bytes come within this long: a child starts cold
# (every page it touches is copied on write: a first response costs it milliseconds), so one
# per request would cut a busy connection's rate tenfold; an idle one is handed back soon after
HANDBACK_AFTER_IDLE = 0.2


class ForkingServer(CgiboxServerMixin, socketserver.ForkingMixIn, HTTPServer):
    """Busy connections run in forked children (at most `threads` at once). A child answers the
    requests it has, then hands the connection back: the parent kept the socket; the child
    reports over a pipe whether it goes on, and the bytes it read past its last response."""

    block_on_close = False

    def __init__(self, address, app: App, config: Config) -> None:
        self.init_cgibox(app, config)
        self.max_children = config.threads
        self.keep_busy_for = HANDBACK_AFTER_IDLE
        self.wanted_back = False  # in a child: the parent asked for the slot (SIGUSR1)
        self.waiting_idle = False  # in a child: waiting between requests (more_arrived)
        self.children: dict[int, tuple[int, Client, bytearray]] = {}  # report fd -> child
        self.waiting: list[Client] = []  # heads waiting for a free child slot
        super().__init__(address, Handler)

    def process_request(self, request, client_address) -> None:
        if len(self.children) >= self.max_children:
            self.waiting.append(request)
            # every slot is taken: children waiting on an idle connection hand it back now
            for pid, _, _ in self.children.values():
                try:
                    os.kill(pid, signal.SIGUSR1)
                except ProcessLookupError:
                    pass
            return
        self._fork(request)

    def _fork(self, client: Client) -> None:
        report_r, report_w = os.pipe()
        pid = fork_holding()  # released by install_child_signals
        if pid:
            os.close(report_w)
            os.set_blocking(report_r, False)
            self.children[report_r] = (pid, client, bytearray())
            self.loop.selector.register(report_r, 1, self._on_report)
            return
        # the child: this connection only, then its report, then exit
        status = 1
        try:
            os.close(report_r)
            for fd in self.children:
                os.close(fd)
            self.loop.close_inherited(client)
            install_child_signals(self)
            # forked into the last free slot: other heads may soon wait for one (a crowd of new
            # connections), so this child answers what it has and hands back without waiting. Not
            # a TLS connection, which cannot be handed back: closing it early would only cut its
            # keep-alive; it gives up an idle wait when the parent asks (SIGUSR1).
            if not client.ends_in_child:
                self.wanted_back = self.wanted_back or len(self.children) + 1 >= self.max_children
            self.finish_request(client, client.address)
            if client.ends_in_child:
                self._serve_to_the_end(client)
            connection = client.connection
            keep = client.keep and not self.stopping
            leftover = bytes(connection.buffer) if keep else b""
            report = REPORT.pack(keep, connection.served, len(leftover)) + leftover
            with open(report_w, "wb", closefd=True) as pipe:
                pipe.write(report)
            status = 0
        except Exception:  # noqa: BLE001
            self.handle_error(client, client.address)
        finally:
            os._exit(status)

    def _on_report(self, fd: int) -> None:
        pid, client, report = self.children[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if data:
            report += data
            return
        # the end of the report: the child is done with the connection
        self.loop.selector.unregister(fd)
        os.close(fd)
        del self.children[fd]
        if os.waitpid(pid, 0)[1]:
            reclaim_orphans()  # a child killed mid-request: its script is ended, its slot freed
        client.keep = False
        if len(report) >= REPORT.size:
            keep, served, length = REPORT.unpack_from(report)
            leftover = bytes(report[REPORT.size:REPORT.size + length])
            if keep and len(leftover) == length:
                client.connection.resume(served, leftover)
                client.keep = True
        self.loop.hand_back(client)
        while self.waiting and len(self.children) < self.max_children:
            self._fork(self.waiting.pop(0))

    def start_loop(self) -> None:
        # a child forked before it installs its own SIGUSR1 handler must not die of one (the
        # default action); the handler it installs is reset by exec, so scripts get the default
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        self.app.load_on_demand_modules()  # each child would import them again, then exit
        super().start_loop()

    def busy(self) -> bool:
        return bool(self.children or self.waiting)

    def _serve_to_the_end(self, client: Client) -> None:
        """A TLS connection in its child: once this process has read or written on it, the
        parent's copy of its SSL state is stale, so it is never handed back. The child waits for
        each next request itself, under the loop's deadlines, then closes it (keep=False)."""
        while client.keep and not self.stopping:
            event = self._next_head(client)
            if event is None:
                break
            client.event = event
            self.finish_request(client, client.address)
        client.keep = False

    def _next_head(self, client: Client) -> Event | None:
        """The next head (or 408) on a connection kept in this child; None: close it (the client
        left or stayed idle past --keepalive-timeout, the parent wants the slot, or stopping)."""
        connection = client.connection
        header_timeout = self.config.header_timeout
        waited = header_timeout if connection.state == HEAD else keepalive_timeout(self.config)
        deadline = time.monotonic() + waited
        poller = select.poll()
        poller.register(client.sock, select.POLLIN)
        while True:
            event = connection.next_event()
            if isinstance(event, Closed):
                return None
            if event is not NEED_DATA:
                return event
            idle = connection.idle
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                event = connection.timed_out()
                return None if isinstance(event, Closed) else event
            if self.stopping or (idle and self.wanted_back):
                return None
            if not client.transport_pending():
                try:
                    self.waiting_idle = idle  # SIGUSR1 ends an idle wait at once
                    # in slices, so that SIGTERM (a flag only) is seen soon
                    if not poller.poll(min(remaining, HANDBACK_AFTER_IDLE) * 1000):
                        continue
                except HandBackNow:
                    return None
                finally:
                    self.waiting_idle = False
            try:
                data = client.recv_ready()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return None
            connection.receive_data(data)
            if idle and data:  # the first bytes of a new head: its own --header-timeout starts now
                deadline = time.monotonic() + header_timeout

    def more_arrived(self, client: Client, until: float) -> bool:
        if client.ends_in_child:
            return False  # a TLS connection: _serve_to_the_end waits for its next head (SSL buffer too)
        return super().more_arrived(client, until)

    def may_wait(self) -> bool:
        return not (self.stopping or self.wanted_back)

    def wait_readable(self, poller: select.poll, seconds: float) -> bool:
        self.waiting_idle = True
        try:
            return super().wait_readable(poller, seconds)
        except HandBackNow:
            return False
        finally:
            self.waiting_idle = False

    def begin_stop(self) -> None:
        for pid, _, _ in list(self.children.values()):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def end_stop(self) -> None:
        for pid, _, _ in list(self.children.values()):
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def install_child_signals(server: ForkingServer) -> None:
    """In a forked child: on SIGTERM/SIGINT finish the request in flight, then close; on SIGUSR1
    (the parent needs the slot) hand an idle connection back at once instead of waiting."""
    def on_stop(signum, frame) -> None:
        server.stopping = True

    def on_wanted(signum, frame) -> None:
        server.wanted_back = True
        if server.waiting_idle:
            raise HandBackNow

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_wanted)
    release()


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
    return server_class((config.host, config.port), app, config)


def serve(server: ThreadingServer | ForkingServer, config: Config) -> int:
    """Serve until SIGTERM/SIGINT; then stop accepting, close parked connections, answer heads
    already complete, and let requests in flight finish within --graceful-timeout."""
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()  # only a flag: the loop acts on it (the wake-up fd ends its wait)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    release()  # a --processes child was forked holding them (fronts/processes.py)
    server.start_loop()
    loop = server.loop
    loop.run(stop)
    server_log(f"cgibox: stopping; finishing requests in flight (up to {config.graceful_timeout:g} s)")
    server.stopping = True
    loop.stop_accepting()
    server.begin_stop()
    loop.close_parked()
    loop.drain(config.graceful_timeout, server.busy)
    server.end_stop()
    loop.close_all()
    return 0
