"""`cgibox --front gunicorn`: runs the WSGI front under gunicorn (BaseApplication, an arbiter
that stops on SIGINT as on SIGTERM), with cgibox's worker classes (fronts/gunicorn_workers.py,
fronts/gunicorn_gthread.py) and TLS through the context every front shares.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import ssl
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from cgibox.config import Config, usable_cpus
from cgibox.core import wire
from cgibox.core.cgi_slots import reclaim_orphans
from cgibox.core.stats import Stats
from cgibox.fronts.forks import signals_held
from cgibox.fronts.gunicorn_sockets import DeadlineSSLSocket, HeadTimeout, PlainOnTLSPort
from cgibox.fronts.gunicorn_workers import WORKER_SIGNALS
from cgibox.fronts.wsgi import WSGIApplication, build

WORKER_CLASSES = {
    "gthread": "cgibox.fronts.gunicorn_gthread.CgiboxThreadWorker",
    "sync": "cgibox.fronts.gunicorn_sync.CgiboxSyncWorker",
}


class _HandshakeDeadline:
    """What gunicorn's ssl_context hook returns: the shared context, whose wrap_socket does the
    handshake under --header-timeout (gunicorn's own is on a blocking socket without one, so a
    client that stalls would hold a worker), answers plain HTTP with the core's 400 page, and
    turns a stalled handshake into the 408 of any late head."""

    def __init__(self, context: ssl.SSLContext, timeout: float) -> None:
        self.context = context
        self.timeout = timeout

    def wrap_socket(self, sock: socket.socket, **kwargs: Any) -> ssl.SSLSocket:
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


def ssl_context_hook(config: Config) -> Callable[[Any, Any], _HandshakeDeadline]:
    """gunicorn's ssl_context setting. gunicorn asks for a context per connection: this builds
    one (cgibox/tls.py, shared with the other fronts) once per process and hands out that one."""
    built: list[_HandshakeDeadline] = []

    def ssl_context(conf: Any, default_factory: Any) -> _HandshakeDeadline:
        if not built:
            from cgibox.tls import server_context

            assert config.tls_cert is not None and config.tls_key is not None
            built.append(_HandshakeDeadline(server_context(config.tls_cert, config.tls_key),
                                            config.header_timeout))
        return built[0]

    return ssl_context


class GracefulArbiter(Arbiter):  # type: ignore[misc]
    """SIGINT stops as gracefully as SIGTERM (the contract treats them alike)."""

    def handle_int(self) -> None:
        raise StopIteration

    def spawn_worker(self) -> Any:
        # the fork is inside; the worker releases the signals in init_signals
        with signals_held(WORKER_SIGNALS):
            return super().spawn_worker()


class CgiboxGunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, config: Config, wsgi_app: WSGIApplication) -> None:
        self.config = config
        self.wsgi_app = wsgi_app
        super().__init__()

    def load_config(self) -> None:
        config = self.config
        host = f"[{config.host}]" if ":" in config.host else config.host
        settings: dict[str, Any] = {
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

    def when_ready(self, server: Any) -> None:
        from cgibox.announce import announce

        port = server.LISTENERS[0].sock.getsockname()[1]
        announce(self.config, port)

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
