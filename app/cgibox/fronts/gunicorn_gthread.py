"""gunicorn's gthread worker with request heads parked in its poller: a plain-HTTP connection
holds no thread until the core says its head is complete (or refused, or late), as cgibox's own
loop (fronts/loop.py) does; the thread then gets the head's bytes in gunicorn's parser buffer.
"""

from __future__ import annotations

import errno
import selectors
import time
from collections import deque
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import TConn, ThreadWorker

from cgibox.core import connection
from cgibox.fronts.gunicorn_sockets import CLOSER, HeadTimeout, HeadWatch, disarm_head
from cgibox.fronts.gunicorn_workers import CoreErrorPages

try:  # gunicorn >= 24 waits for a new connection's first bytes in a thread, then defers it
    from gunicorn.workers.gthread import _DEFER, DEFAULT_WORKER_DATA_TIMEOUT
except ImportError:  # older ones park a new connection in the poller under the keepalive timeout
    _DEFER, DEFAULT_WORKER_DATA_TIMEOUT = None, 5.0


class CgiboxConn(TConn):  # type: ignore[misc]
    """gunicorn's connection, closed by the Closer (no wait in the event loop) and with what the
    poller gathered of its next head."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.cgibox_watch: HeadWatch | None = None
        self.cgibox_bytes = bytearray()
        self.cgibox_ready: bytes | None = None  # a complete head read by the poller
        self.cgibox_park: object | None = None  # the token of its current parking
        self.cgibox_head_deadline: float | None = None

    def close(self, graceful: bool = False) -> None:
        if graceful:
            CLOSER.close_graceful(self.sock)
        else:
            util.close(self.sock)


class CgiboxThreadWorker(CoreErrorPages, ThreadWorker):  # type: ignore[misc]
    """gthread: a thread pool per worker, keep-alive connections parked in a poller, and (plain
    HTTP) request heads parked there too under --header-timeout, fed to a core HeadWatch.

    With TLS the handshake is blocking (gunicorn's ssl_wrap_socket in a thread), so a TLS head is
    read in a thread as gunicorn does, under the same deadline and HeadWatch (DeadlineSSLSocket)."""

    def init_process(self) -> None:
        self.heads: deque[tuple[float, CgiboxConn, object]] = deque()  # in deadline order
        # gunicorn keeps at most worker_connections - threads kept alive and answers the rest with
        # "Connection: close"; --max-connections is every open connection (the http.server fronts
        # keep them all, and stop accepting until one closes): so may this worker
        self.max_keepalived = self.worker_connections
        super().init_process()

    # -- where connections come from ---------------------------------------------------------

    def accept(self, listener: Any) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = CgiboxConn(self.cfg, client_sock, client_addr, listener.getsockname())
        if self.cfg.is_ssl:
            self.enqueue_req(conn)
        else:
            self.park_head(conn, served=0)
            self.on_head_readable(conn, client_sock)  # a client's head often came with its SYN's ACK

    def on_client_socket_readable(self, conn: CgiboxConn, client: Any) -> None:
        """A kept-alive connection's next request starts: its head is parked too, with a deadline
        of its own (gunicorn armed none; cgibox's used to be the connection's first)."""
        if self.cfg.is_ssl:
            return super().on_client_socket_readable(conn, client)  # type: ignore[no-any-return]
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self.park_head(conn, served=1)
        self.on_head_readable(conn, client)

    def finish_request(self, conn: CgiboxConn, fs: Any) -> None:
        """A response is done. gunicorn sends a connection holding pipelined bytes straight back to
        a thread, which would wait there for the rest of a head: those bytes are parked instead."""
        if (not self.cfg.is_ssl and self.alive and not fs.cancelled() and fs.exception() is None
                and fs.result() is True and conn.parser.unreader.buf.getvalue()):
            data = conn.parser.unreader.take_buffered()
            conn.sock.setblocking(False)
            self.park_head(conn, served=1)
            self.take_head_bytes(conn, data)
            return
        super().finish_request(conn, fs)
        # TLS: a silent new connection, parked: it has as long as its head may take, not keepalive
        if conn in self.pending_conns:
            conn.timeout = conn.cgibox_head_deadline

    # -- parked heads ------------------------------------------------------------------------

    def park_head(self, conn: CgiboxConn, served: int) -> None:
        conn.cgibox_watch = HeadWatch(self.wsgi.app.body_limit, served)
        conn.cgibox_bytes = bytearray()
        token = conn.cgibox_park = object()
        self.heads.append((time.monotonic() + self.wsgi.app.config.header_timeout, conn, token))
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_head_readable, conn))

    def unpark(self, conn: CgiboxConn) -> None:
        conn.cgibox_park = None  # its entry in self.heads is skipped when it comes up
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def on_head_readable(self, conn: CgiboxConn, client: Any) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        self.take_head_bytes(conn, data)

    def take_head_bytes(self, conn: CgiboxConn, data: bytes) -> None:
        watch = conn.cgibox_watch
        assert watch is not None
        conn.cgibox_bytes += data
        event = watch.feed(data)
        if event is connection.NEED_DATA:
            return
        self.unpark(conn)
        if isinstance(event, connection.RequestHead):
            conn.cgibox_ready = bytes(conn.cgibox_bytes)
            conn.cgibox_bytes = bytearray()
            conn.data_ready = True
            self.enqueue_req(conn)
        else:
            self.end_parked(conn, event)

    def end_parked(self, conn: CgiboxConn, event: connection.Event) -> None:
        """An early error is written in a thread (a blocking send); a closed one just closes."""
        if isinstance(event, connection.EarlyError):
            fs = self.tpool.submit(self.answer_parked, conn, event)
            fs.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))
        else:
            self.nr_conns -= 1
            conn.close()

    def answer_parked(self, conn: CgiboxConn, event: connection.EarlyError) -> bool:
        conn.sock.settimeout(self.wsgi.app.config.header_timeout)  # a client that does not read
        watch = conn.cgibox_watch
        self.answer_early(conn.sock, conn.client, event, watch.seen if watch is not None else b"")
        return False

    def murder_pending(self) -> None:
        """Each turn of gunicorn's loop: heads past their deadline get the core's answer (408, or
        a quiet close for a kept-alive connection that sent nothing); stopping closes them all."""
        super().murder_pending()
        now = time.monotonic()
        heads = self.heads
        while heads:
            deadline, conn, token = heads[0]
            if conn.cgibox_park is not token:
                heads.popleft()
                continue
            if deadline > now and self.alive:
                break
            heads.popleft()
            self.unpark(conn)
            watch = conn.cgibox_watch
            if self.alive and watch is not None:
                self.end_parked(conn, watch.timed_out())
            else:
                self.nr_conns -= 1
                conn.close()

    # -- in a thread -------------------------------------------------------------------------

    def handle(self, conn: CgiboxConn) -> Any:
        ready = conn.cgibox_ready
        if ready is not None:  # the poller read a whole head: gunicorn parses it from its buffer
            conn.cgibox_ready = None
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(ready)
            # a deadline in case gunicorn wants more bytes than the core did; the watch (done)
            # names the request in the access log if gunicorn refuses it
            self.arm_head_deadline(conn.sock, None, conn.cgibox_watch)
            try:
                return super().handle(conn)
            finally:
                disarm_head()
        return self.handle_tls(conn)

    def handle_tls(self, conn: CgiboxConn) -> Any:
        """A TLS connection's head, read in this thread as gunicorn does. A new connection waits
        for its first bytes for up to DEFAULT_WORKER_DATA_TIMEOUT and is then parked ("pending")
        under gunicorn's keepalive timeout with no 408: here one still silent at its head's
        deadline gets the core's 408 (or, past gunicorn's own wait, is closed from the poller at
        that deadline). Each request (kept-alive ones too) has a deadline of its own."""
        if conn.initialized:
            deadline = time.monotonic() + self.wsgi.app.config.header_timeout
        else:
            deadline = conn.cgibox_head_deadline
            if deadline is None:
                deadline = conn.cgibox_head_deadline = \
                    time.monotonic() + self.wsgi.app.config.header_timeout
        if _DEFER is not None and not conn.initialized and not conn.data_ready:
            remaining = deadline - time.monotonic()
            # the whole wait here when it is no longer than gunicorn's own; a longer one is
            # parked in the poller (see finish_request) and closed there at its deadline
            defer = remaining > DEFAULT_WORKER_DATA_TIMEOUT
            if remaining <= 0 or not conn.wait_for_data(min(remaining, DEFAULT_WORKER_DATA_TIMEOUT)):
                if defer:
                    return _DEFER
                self.handle_error(None, conn.sock, conn.client, HeadTimeout())
                return False
        self.arm_head_deadline(conn.sock, deadline)
        try:
            return super().handle(conn)
        finally:
            disarm_head()

    def handle_request(self, req: Any, conn: CgiboxConn) -> Any:
        self.start_request(req, conn.sock)
        return super().handle_request(req, conn)

    def _keepalive_after(self, conn: CgiboxConn, keepalive: Any) -> bool:
        """gunicorn drains an unread body before keeping the connection; through the core's reader
        that may raise (a broken chunk, --body-timeout): then the connection closes."""
        try:
            return bool(super()._keepalive_after(conn, keepalive))
        except Exception:  # noqa: BLE001 - whatever the drain met, the next request's start is lost
            return False

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:
            self.close_listeners()  # stopping: refuse new connections while requests finish
