"""`cgibox --front gunicorn`: runs the WSGI front under gunicorn (BaseApplication), with worker
classes whose parse-error pages come from the core's templates like every other front's.
"""

from __future__ import annotations

import errno
import math
import os
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.http import errors as gunicorn_errors
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from cgibox.config import Config, usable_cpus
from cgibox.core import connection, wire
from cgibox.core.accesslog import server_log
from cgibox.core.cgi_slots import reclaim_orphans
from cgibox.core.stats import Stats
from cgibox.fronts.forks import STOP_SIGNALS, release, signals_held
from cgibox.fronts.wsgi import WSGIApplication, build
from cgibox.tls import HANDSHAKE_FAILED_LOG

try:  # gunicorn >= 24 waits for a new connection's first bytes in a thread, then defers it
    from gunicorn.workers.gthread import _DEFER, DEFAULT_WORKER_DATA_TIMEOUT
except ImportError:  # older ones park a new connection in the poller under the keepalive timeout
    _DEFER, DEFAULT_WORKER_DATA_TIMEOUT = None, 5.0

# gunicorn's parse exceptions -> the status the contract gives them (by class name: the set of
# classes differs between gunicorn releases); every other ParseException is a 400
PARSE_ERROR_STATUS = {
    "LimitRequestLine": 414,
    "LimitRequestHeaders": 431,
    "UnsupportedTransferCoding": 501,
    "ExpectationFailed": 417,
    "ForbiddenProxyRequest": 403,
    "ConfigurationProblem": 500,
    "InvalidResponseHeader": 500,
    "InvalidResponseHeaderName": 500,
}


class HeadTimeout(Exception):
    """The client did not finish its request head within --header-timeout."""


class TLSOnPlainPort(Exception):
    """The connection opened with a TLS ClientHello: HTTPS was tried on this plain-HTTP port."""


class PlainOnTLSPort(Exception):
    """The connection to the HTTPS port opened with something other than a TLS handshake."""



# per thread: the request head being read (its deadline and first bytes); deadline None while
# the application runs
_head = threading.local()
# how much of a head is kept to name a request gunicorn could not parse in the access log
HEAD_KEPT = wire.MAX_REQUEST_LINE + 2


class DeadlineSocket(socket.socket):
    """A socket whose recv() gives up with HeadTimeout once this thread's head deadline passes,
    and with TLSOnPlainPort when a head starts with a TLS handshake.

    gunicorn reads the head through sock.recv() and has no deadline of its own for it (and waits
    for a CRLF a ClientHello never sends); an accepted socket is switched to this class (same
    layout, no new slots) so that its head is read under the core's rules.
    """

    __slots__ = ()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return _recv_in_head(self, super().recv, bufsize, flags, plain_port=True)


class DeadlineSSLSocket(ssl.SSLSocket):
    """DeadlineSocket's head deadline for HTTPS connections (every request of a keep-alive one):
    the SSLSocket that the TLS context makes is switched to this class (same layout)."""

    def recv(self, bufsize: int = 1024, flags: int = 0) -> bytes:
        return _recv_in_head(self, super().recv, bufsize, flags, plain_port=False)


def _recv_in_head(sock: socket.socket, recv, bufsize: int, flags: int, plain_port: bool) -> bytes:
    """`recv` while this thread reads a request head: its deadline bounds the wait (HeadTimeout),
    the first bytes are kept to name the request in the log, and on the plain-HTTP port a head
    that opens with a TLS handshake is TLSOnPlainPort. Outside a head, `recv` as it is."""
    deadline = getattr(_head, "deadline", None)
    if deadline is None:
        return recv(bufsize, flags)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise HeadTimeout
    sock.settimeout(remaining)
    try:
        data = recv(bufsize, flags)
    except TimeoutError:
        raise HeadTimeout from None
    if plain_port and not _head.seen and wire.looks_like_tls(data):
        raise TLSOnPlainPort
    if len(_head.seen) < HEAD_KEPT:
        _head.seen += data[:HEAD_KEPT - len(_head.seen)]
    return data


# the core's answers to the wrong protocol on a port, by the exception the sockets here raise
WRONG_PROTOCOL = {TLSOnPlainPort: connection.TLS_ON_PLAIN_PORT, PlainOnTLSPort: connection.PLAIN_ON_TLS_PORT}


def status_for(exc: BaseException) -> int:
    if isinstance(exc, HeadTimeout):
        return 408
    if type(exc) in WRONG_PROTOCOL:
        return WRONG_PROTOCOL[type(exc)].status
    if isinstance(exc, gunicorn_errors.ParseException):
        return PARSE_ERROR_STATUS.get(type(exc).__name__, 400)
    return 500


# what the arbiter sends a worker to stop it or have it reopen its logs: held across the fork
# (GracefulArbiter.spawn_worker) until the worker's own handlers are set (see fronts/forks.py)
WORKER_SIGNALS = STOP_SIGNALS | {signal.SIGQUIT, signal.SIGUSR1}


class CoreErrorPages:
    """Mixin for gunicorn workers: a request gunicorn could not parse gets the core's page, a
    head not finished within --header-timeout gets 408, and stopping closes the listeners at once."""

    def init_signals(self) -> None:
        super().init_signals()  # type: ignore[misc]
        release(WORKER_SIGNALS)

    def arm_head_deadline(self, sock: socket.socket, deadline: float | None = None) -> None:
        if type(sock) is socket.socket and not self.cfg.is_ssl:
            sock.__class__ = DeadlineSocket
        _head.deadline = deadline or time.monotonic() + self.wsgi.app.config.header_timeout
        _head.seen = b""

    @staticmethod
    def disarm_head_deadline(sock: socket.socket) -> None:
        _head.deadline = None
        sock.settimeout(None)

    def close_listeners(self) -> None:
        """Stop accepting: with every worker's copy closed, new connections are refused instead of
        waiting in a backlog that nobody will accept from."""
        for listener in self.sockets:
            try:
                listener.close()
            except OSError:
                pass

    def handle_error(self, req, client, addr, exc):  # noqa: D401 - gunicorn's hook
        _head.deadline = None  # gunicorn drains the socket after this: no deadline there
        wsgi_app = self.wsgi
        app = getattr(wsgi_app, "app", None)
        if app is None or not isinstance(wsgi_app, WSGIApplication):
            return super().handle_error(req, client, addr, exc)  # type: ignore[misc]
        status = status_for(exc)
        addr = addr or ("-", 0)
        detail = ""
        if isinstance(exc, ssl.SSLError):
            # nothing can be said in a TLS session that never started: a log line, and close
            server_log(HANDSHAKE_FAILED_LOG.format(peer=addr[0], reason=exc.reason or exc))
            return
        wrong_protocol = WRONG_PROTOCOL.get(type(exc))
        if wrong_protocol is not None:
            server_log(wrong_protocol.log.format(peer=addr[0]))
            detail = wrong_protocol.detail
        elif status == 500:
            self.log.exception("Error handling request")
        data, length = app.early_answer(status, detail)
        try:
            client.sendall(data)
        except OSError:
            pass
        if req is not None:
            line = f"{req.method} {req.uri} HTTP/{req.version[0]}.{req.version[1]}"
        elif wrong_protocol is not None:
            line = wrong_protocol.request_line
        else:
            line = getattr(_head, "seen", b"").split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")
        app.finish(None, status, length, request_line=line, remote_addr=str(addr[0]))


class CgiboxThreadWorker(CoreErrorPages, ThreadWorker):
    """gthread: a thread pool per worker, keep-alive connections parked in a poller.

    A new connection waits for its first bytes in a thread for up to DEFAULT_WORKER_DATA_TIMEOUT
    and is then parked ("pending") under gunicorn's keepalive timeout, with no 408 and no regard
    for --header-timeout: here a connection still silent at its head's deadline gets the core's
    408 and is closed (or, past gunicorn's own wait, is closed from the poller at that deadline)."""

    def handle(self, conn):
        deadline = getattr(conn, "cgibox_head_deadline", None)
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
            _head.deadline = None

    def finish_request(self, conn, fs):
        super().finish_request(conn, fs)
        # a silent new connection, parked: it has as long as its head may take, not keepalive
        if conn in getattr(self, "pending_conns", ()):
            conn.timeout = conn.cgibox_head_deadline

    def set_accept_enabled(self, enabled):
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:
            self.close_listeners()  # stopping: refuse new connections while requests finish

    def handle_request(self, req, conn):
        self.disarm_head_deadline(conn.sock)
        return super().handle_request(req, conn)


class CgiboxSyncWorker(CoreErrorPages, SyncWorker):
    """sync: one request at a time per worker, no keep-alive."""

    def handle(self, listener, client, addr):
        self.arm_head_deadline(client)
        try:
            return super().handle(listener, client, addr)
        finally:
            _head.deadline = None

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        self.close_listeners()  # a request in flight finishes; no new connection is accepted

    def accept(self, listener):
        try:
            super().accept(listener)
        except OSError as error:
            if self.alive or error.errno not in (errno.EBADF, errno.EINVAL):
                raise  # a listener closed by handle_exit just now is the only expected failure

    def handle_request(self, listener, req, client, addr):
        self.disarm_head_deadline(client)
        return super().handle_request(listener, req, client, addr)


WORKER_CLASSES = {
    "gthread": f"{__name__}.CgiboxThreadWorker",
    "sync": f"{__name__}.CgiboxSyncWorker",
}


class _HandshakeDeadline:
    """What gunicorn's ssl_context hook returns: the shared context, whose wrap_socket does the
    handshake under --header-timeout (gunicorn's own is on a blocking socket without one, so a
    client that stalls would hold a worker), answers plain HTTP with the core's 400 page, and
    turns a stalled handshake into the 408 of any late head."""

    def __init__(self, context, timeout: float) -> None:
        self.context = context
        self.timeout = timeout

    def wrap_socket(self, sock, **kwargs):
        sock.settimeout(self.timeout)
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            raise HeadTimeout from None
        if first and not wire.looks_like_tls(first):
            raise PlainOnTLSPort
        kwargs["do_handshake_on_connect"] = False
        wrapped = self.context.wrap_socket(sock, **kwargs)
        try:
            wrapped.do_handshake()
        except TimeoutError:
            wrapped.close()
            raise HeadTimeout from None
        if type(wrapped) is ssl.SSLSocket:
            wrapped.__class__ = DeadlineSSLSocket
        return wrapped


def ssl_context_hook(config: Config):
    """gunicorn's ssl_context setting. gunicorn asks for a context per connection: this builds
    one (cgibox/tls.py, shared with the other fronts) once per process and hands out that one."""
    built: list[_HandshakeDeadline] = []

    def ssl_context(conf, default_factory):
        if not built:
            from cgibox.tls import server_context

            built.append(_HandshakeDeadline(server_context(config.tls_cert, config.tls_key),
                                            config.header_timeout))
        return built[0]

    return ssl_context


class GracefulArbiter(Arbiter):
    """SIGINT stops as gracefully as SIGTERM (the contract treats them alike)."""

    def handle_int(self):
        raise StopIteration

    def spawn_worker(self):
        # the fork is inside; the worker releases the signals in init_signals
        with signals_held(WORKER_SIGNALS):
            return super().spawn_worker()


class CgiboxGunicorn(BaseApplication):
    def __init__(self, config: Config, wsgi_app: WSGIApplication) -> None:
        self.config = config
        self.wsgi_app = wsgi_app
        super().__init__()

    def load_config(self) -> None:
        config = self.config
        host = f"[{config.host}]" if ":" in config.host else config.host
        settings = {
            "bind": [f"{host}:{config.port}"],
            "workers": config.workers or 2 * usable_cpus(),
            "worker_class": WORKER_CLASSES[config.worker_class],
            # gunicorn quietly turns a "...SyncWorker" into gthread when threads > 1
            "threads": config.threads if config.worker_class == "gthread" else 1,
            "graceful_timeout": math.ceil(config.graceful_timeout),
            # a sync worker busy with one request must outlive the longest CGI run
            "timeout": math.ceil(config.cgi_timeout + config.graceful_timeout + 30),
            # unset: gunicorn's own (2 s); a parked connection costs gthread no thread
            **({"keepalive": math.ceil(config.keepalive_timeout)} if config.keepalive_timeout else {}),
            "worker_connections": config.max_connections,
            "limit_request_line": min(wire.MAX_REQUEST_LINE, 8190),
            "limit_request_fields": wire.MAX_HEADER_FIELDS,
            "limit_request_field_size": wire.MAX_HEADER_BYTES,
            "accesslog": None,  # the core writes the access log, in the same format on every front
            "errorlog": "-",
            "loglevel": "warning",
            "preload_app": True,  # one App built in the master, shared by the forked workers
            "proc_name": "cgibox",
            "when_ready": self.when_ready,
            # a worker that died (SIGKILL, OOM, timeout): the scripts it ran are ended, slots freed
            "child_exit": lambda arbiter, worker: reclaim_orphans(),
        }
        if config.tls_cert is not None:
            # gunicorn's own TLS, with the context every front shares (cgibox/tls.py)
            settings.update(certfile=str(config.tls_cert), keyfile=str(config.tls_key),
                            ssl_context=ssl_context_hook(config))
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25 opens a control socket under $HOME: read-only in the container, and
            # scripts run as the server's uid could use it to stop or reload the server
            settings["control_socket_disable"] = True
        for key, value in settings.items():
            self.cfg.set(key, value)

    def when_ready(self, server) -> None:
        from cgibox.cli import startup_line

        port = server.LISTENERS[0].sock.getsockname()[1]
        print(startup_line(self.config, port), flush=True)

    def load(self) -> WSGIApplication:
        return self.wsgi_app

    def run(self) -> None:
        try:
            GracefulArbiter(self).run()
        except RuntimeError as error:
            print(f"\nError: {error}\n", file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)


def check_bindable(config: Config) -> str | None:
    """Why the address cannot be listened on, or None. gunicorn itself would retry for five
    seconds and print a page of errors; the other fronts say it in one line at once."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((config.host, config.port))
    except OSError as error:
        return f"cannot listen on {config.host}:{config.port}: {error.strerror or error}"
    finally:
        probe.close()
    return None


def run_gunicorn(config: Config) -> int:
    problem = check_bindable(config)
    if problem is not None:
        sys.stderr.write(f"cgibox: error: {problem}\n")
        return 2
    with tempfile.TemporaryDirectory(prefix="cgibox-") as state_dir:
        stats_path = os.path.join(state_dir, "stats")
        Stats.create(stats_path)
        os.environ["CGIBOX_STATS_FILE"] = stats_path
        wsgi_app = build(config, stats_path, front="gunicorn")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            CgiboxGunicorn(config, wsgi_app).run()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            return code
    return 0
