"""What cgibox's gunicorn workers share (CoreErrorPages: the core's error pages, head deadlines,
request bodies under the core's framing, closing without a wait). The workers themselves, which
also park heads, are in fronts/gunicorn_gthread.py and fronts/gunicorn_sync.py.
"""

from __future__ import annotations

import signal
import socket
import ssl
import time
from typing import Any

from gunicorn import util as gunicorn_util
from gunicorn.http import errors as gunicorn_errors

from cgibox.core import connection
from cgibox.core.accesslog import server_log
from cgibox.core.errors import HTTPError
from cgibox.fronts.forks import STOP_SIGNALS, release
from cgibox.fronts.gunicorn_sockets import (
    CLOSER,
    DeadlineSocket,
    EarlyAnswer,
    HeadTimeout,
    HeadWatch,
    PlainOnTLSPort,
    arm_head,
    core_body,
    disarm_head,
    head_seen,
)
from cgibox.fronts.wsgi import WSGIApplication
from cgibox.tls import HANDSHAKE_FAILED_LOG

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

# the core's answers to what the sockets here raise, by exception class
EARLY_ERRORS: dict[type[BaseException], connection.EarlyError] = {
    PlainOnTLSPort: connection.PLAIN_ON_TLS_PORT}


def early_error_for(exc: BaseException) -> connection.EarlyError:
    """The core's early answer for an exception met while reading a request."""
    if isinstance(exc, EarlyAnswer):
        return exc.event
    if isinstance(exc, HeadTimeout):
        return connection.EarlyError(408)
    if type(exc) in EARLY_ERRORS:
        return EARLY_ERRORS[type(exc)]
    if isinstance(exc, HTTPError):
        return connection.EarlyError(exc.status, exc.detail)
    if isinstance(exc, gunicorn_errors.ParseException):
        return connection.EarlyError(PARSE_ERROR_STATUS.get(type(exc).__name__, 400))
    return connection.EarlyError(500)


# what the arbiter sends a worker to stop it or have it reopen its logs: held across the fork
# (GracefulArbiter.spawn_worker) until the worker's own handlers are set (see fronts/forks.py)
WORKER_SIGNALS = STOP_SIGNALS | {signal.SIGQUIT, signal.SIGUSR1}


class CoreErrorPages:
    """Mixin for gunicorn workers: a request gunicorn could not parse gets the core's page, a head
    is read under --header-timeout and the core's limits, a body through the core's readers under
    --body-timeout, closing never waits for the client, and stopping closes the listeners at once."""

    cfg: Any
    wsgi: Any
    log: Any
    sockets: list[Any]

    def init_signals(self) -> None:
        super().init_signals()  # type: ignore[misc]
        release(WORKER_SIGNALS)

    def init_process(self) -> None:
        # gunicorn calls util.close_graceful (a 2 s wait for the client's FIN) from gthread's event
        # loop and after each sync request: in this worker process it is the Closer's, which
        # never blocks (the module attribute is what gthread.py and sync.py look up at each call)
        gunicorn_util.close_graceful = CLOSER.close_graceful
        super().init_process()  # type: ignore[misc]

    def arm_head_deadline(self, sock: socket.socket, deadline: float | None = None,
                          watch: HeadWatch | None = None) -> None:
        if type(sock) is socket.socket and not self.cfg.is_ssl:
            sock.__class__ = DeadlineSocket
        app = self.wsgi.app
        arm_head(deadline or time.monotonic() + app.config.header_timeout, watch or HeadWatch(app.body_limit))

    def start_request(self, req: Any, sock: socket.socket) -> None:
        """The head is parsed: no head deadline while the application runs, and the body is read
        by the core's readers (its framing rules, --body-timeout) from gunicorn's buffer and socket."""
        disarm_head()
        sock.settimeout(None)
        config = self.wsgi.app.config
        req.body = core_body(req, sock, self.wsgi.app.body_limit, config.body_timeout)

    def close_listeners(self) -> None:
        """Stop accepting: with every worker's copy closed, new connections are refused instead of
        waiting in a backlog that nobody will accept from."""
        for listener in self.sockets:
            try:
                listener.close()
            except OSError:
                pass

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:  # noqa: D401
        disarm_head()  # gunicorn drains the socket after this: no deadline there
        if not isinstance(self.wsgi, WSGIApplication):
            return super().handle_error(req, client, addr, exc)  # type: ignore[misc, no-any-return]
        if isinstance(exc, ssl.SSLError):
            # nothing can be said in a TLS session that never started: a log line, and close
            server_log(HANDSHAKE_FAILED_LOG.format(peer=(addr or ("-",))[0], reason=exc.reason or exc))
            return None
        event = early_error_for(exc)
        if event.status == 500:
            self.log.exception("Error handling request")
        if req is not None:
            event = connection.EarlyError(
                event.status, event.detail,
                f"{req.method} {req.uri} HTTP/{req.version[0]}.{req.version[1]}", event.log)
        self.answer_early(client, addr, event, head_seen())
        return None

    def answer_early(self, client: Any, addr: Any, event: connection.EarlyError, seen: bytes) -> None:
        """Write the core's page for `event` and log it (the caller closes)."""
        app = self.wsgi.app
        peer = str((addr or ("-",))[0])
        if event.log:
            server_log(event.log.format(peer=peer))
        data, length = app.early_answer(event.status, event.detail)
        try:
            client.sendall(data)
        except OSError:
            pass
        line = event.request_line or seen.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")
        app.finish(None, event.status, length, request_line=line, remote_addr=peer)
