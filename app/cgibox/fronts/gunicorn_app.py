"""`cgibox --front gunicorn`: runs the WSGI front under gunicorn (BaseApplication), with worker
classes whose parse-error pages come from the core's templates like every other front's.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import sys
import tempfile
import threading
import time

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.http import errors as gunicorn_errors
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from cgibox.config import Config
from cgibox.core import wire
from cgibox.core.accesslog import server_log
from cgibox.core.stats import Stats
from cgibox.fronts.wsgi import WSGIApplication, build

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


# the deadline of the request head being read by this thread, None while the app runs
_head_deadline = threading.local()


class DeadlineSocket(socket.socket):
    """A socket whose recv() gives up with HeadTimeout once this thread's head deadline passes.

    gunicorn reads the head through sock.recv() and has no deadline of its own for it; an
    accepted socket is switched to this class (same layout, no new slots) while its head is read.
    """

    __slots__ = ()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        deadline = getattr(_head_deadline, "at", None)
        if deadline is None:
            return super().recv(bufsize, flags)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise HeadTimeout
        self.settimeout(remaining)
        try:
            return super().recv(bufsize, flags)
        except TimeoutError:
            raise HeadTimeout from None


def status_for(exc: BaseException) -> int:
    if isinstance(exc, HeadTimeout):
        return 408
    if isinstance(exc, gunicorn_errors.ParseException):
        return PARSE_ERROR_STATUS.get(type(exc).__name__, 400)
    return 500


def looks_like_tls(exc: BaseException) -> bool:
    """gunicorn's exception for a TLS ClientHello carries the bytes it could not parse."""
    raw = exc.args[0] if exc.args else ""
    if isinstance(raw, str):
        raw = raw.encode("latin-1", "replace")
    return isinstance(raw, bytes) and wire.looks_like_tls(raw)


class CoreErrorPages:
    """Mixin for gunicorn workers: a request gunicorn could not parse gets the core's page, and
    a head not finished within --header-timeout gets 408."""

    def arm_head_deadline(self, sock: socket.socket) -> None:
        if type(sock) is socket.socket:
            sock.__class__ = DeadlineSocket
        _head_deadline.at = time.monotonic() + self.wsgi.app.config.header_timeout

    @staticmethod
    def disarm_head_deadline(sock: socket.socket) -> None:
        _head_deadline.at = None
        sock.settimeout(None)

    def handle_error(self, req, client, addr, exc):  # noqa: D401 - gunicorn's hook
        _head_deadline.at = None  # gunicorn drains the socket after this: no deadline there
        wsgi_app = self.wsgi
        app = getattr(wsgi_app, "app", None)
        if app is None or not isinstance(wsgi_app, WSGIApplication):
            return super().handle_error(req, client, addr, exc)  # type: ignore[misc]
        status = status_for(exc)
        addr = addr or ("-", 0)
        detail = ""
        if status == 400 and looks_like_tls(exc):
            server_log(f"cgibox: {addr[0]} tried HTTPS on this plain-HTTP port")
            detail = "This port speaks plain HTTP; HTTPS was tried."
        elif status == 500:
            self.log.exception("Error handling request")
        response = app.error(None, status, detail, close_connection=True)
        head, _, _ = wire.frame_response("GET", "HTTP/1.1", False, response)
        body = response.body if isinstance(response.body, bytes) else b""
        try:
            client.sendall(head + body)
        except OSError:
            pass
        line = f"{req.method} {req.uri} HTTP/{req.version[0]}.{req.version[1]}" if req is not None else ""
        app.finish(None, status, len(body), request_line=line, remote_addr=str(addr[0]))


class CgiboxThreadWorker(CoreErrorPages, ThreadWorker):
    """gthread: a thread pool per worker, keep-alive connections parked in a poller."""

    def handle(self, conn):
        self.arm_head_deadline(conn.sock)
        try:
            return super().handle(conn)
        finally:
            _head_deadline.at = None

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
            _head_deadline.at = None

    def handle_request(self, listener, req, client, addr):
        self.disarm_head_deadline(client)
        return super().handle_request(listener, req, client, addr)


WORKER_CLASSES = {
    "gthread": f"{__name__}.CgiboxThreadWorker",
    "sync": f"{__name__}.CgiboxSyncWorker",
}


class GracefulArbiter(Arbiter):
    """SIGINT stops as gracefully as SIGTERM (the contract treats them alike)."""

    def handle_int(self):
        raise StopIteration


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
            "workers": config.workers or 2 * (os.cpu_count() or 1),
            "worker_class": WORKER_CLASSES[config.worker_class],
            # gunicorn quietly turns a "...SyncWorker" into gthread when threads > 1
            "threads": config.threads if config.worker_class == "gthread" else 1,
            "graceful_timeout": math.ceil(config.graceful_timeout),
            # a sync worker busy with one request must outlive the longest CGI run
            "timeout": math.ceil(config.cgi_timeout + config.graceful_timeout + 30),
            "keepalive": math.ceil(config.header_timeout),
            "limit_request_line": min(wire.MAX_REQUEST_LINE, 8190),
            "limit_request_fields": wire.MAX_HEADER_FIELDS,
            "limit_request_field_size": wire.MAX_HEADER_BYTES,
            "accesslog": None,  # the core writes the access log, in the same format on every front
            "errorlog": "-",
            "loglevel": "warning",
            "preload_app": True,  # one App built in the master, shared by the forked workers
            "proc_name": "cgibox",
            "when_ready": self.when_ready,
        }
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


def run_gunicorn(config: Config) -> int:
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
