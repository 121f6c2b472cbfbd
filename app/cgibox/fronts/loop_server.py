"""What the threading and forking fronts share: the listening socket (socketserver's TCPServer
binding, dual-stack IPv6), the TLS context, a connection loop per serving process, and the
questions a handler asks its server (how long to wait for a next head, whether it may now).
Where a busy connection runs is each front's own (fronts/threading_front.py, forking_front.py).
"""

from __future__ import annotations

import errno
import select
import socket
import socketserver
import sys
from http.server import HTTPServer
from typing import Any

from cgibox.config import Config
from cgibox.core.accesslog import server_log
from cgibox.core.connection import Connection, EarlyError, RequestHead
from cgibox.core.router import App
from cgibox.fronts.client import Client
from cgibox.fronts.loop import ConnectionLoop

# the idle time allowed between requests when --keepalive-timeout is not given: long enough for a
# browser's next click to reuse its connections, short enough that departed clients do not fill
# --max-connections; a parked connection costs memory only, not a thread
DEFAULT_KEEPALIVE = 15.0


def keepalive_timeout(config: Config) -> float:
    return config.keepalive_timeout or DEFAULT_KEEPALIVE


class LoopServer(HTTPServer):
    """Listening socket set-up and the connection loop; subclasses say where a busy connection
    runs (`process_request`) and how long its handler may wait for a next head."""

    # socketserver's default backlog of 5 drops connections that arrive together (a browser
    # opens six); dropped SYNs come back only after a second
    request_queue_size = 1024
    loop: ConnectionLoop
    stopping = False
    # the loop writes ready answers itself (answer_ready): a handler hands a connection whose
    # last answer came from memory straight back to it
    loop_answers_ready = False

    def __init__(self, address: tuple[str, int], app: App, config: Config,
                 handler: type[socketserver.BaseRequestHandler]) -> None:
        self.app = app
        self.config = config
        self.keepalive = keepalive_timeout(config)
        self.stopping = False
        self.tls_context: Any = None
        if config.tls_cert is not None:  # made once, before any fork of --processes or children
            from cgibox.tls import server_context
            self.tls_context = server_context(config.tls_cert, config.tls_key)  # type: ignore[arg-type]
        super().__init__(address, handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] in ("::", ""):
            # dual stack: "::" also answers IPv4, like http.server's own CLI
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)
        # no socket.getfqdn(): it can block start-up on DNS for seconds
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def start_loop(self) -> None:
        """In the serving process (after any fork of --processes): its own selector."""
        config = self.config
        self.loop = ConnectionLoop(self.socket, self.make_connection, self.dispatch,
                                   config.header_timeout, self.keepalive,
                                   config.max_connections, config.body_timeout)
        if self.tls_context is not None:
            from cgibox.fronts.tls_transport import client_factory
            self.loop.client_factory = client_factory(self.tls_context, self.loop.selector)

    def make_connection(self, address: tuple[Any, ...]) -> Connection:
        return Connection(self.app.body_limit, peer=(str(address[0]), int(address[1])),
                          server=(self.server_name, self.server_port),
                          scheme="http" if self.tls_context is None else "https")

    def dispatch(self, client: Client) -> None:
        """The loop has a head (or an early error) for `client`: run it (socketserver's step).
        An early error needs no handler: the loop answers it itself."""
        event = client.event
        if isinstance(event, EarlyError):
            client.event = None
            self.answer_early(client, event)
            return
        self.process_request(client, client.address)  # type: ignore[arg-type]

    def answer_early(self, client: Client, event: EarlyError) -> None:
        """Write the core's answer for an error before any Request (a bad or slow head, a body
        that stopped, the wrong protocol), from the loop, without waiting: a small page on a
        connection with nothing else to send. A client whose socket would not take it is closed.
        Then close: at once after a 408 (that client is not sending), else lingering."""
        app = self.app
        peer = str(client.address[0])
        if event.log:
            server_log(event.log.format(peer=peer))
        data, length = app.early_answer(event.status, event.detail)
        written = False
        try:
            written = client.send_ready(data)
        except OSError:
            pass
        client.http.early_error_answered()
        app.finish(None, event.status, length if written else 0, request_line=event.request_line,
                   remote_addr=peer)
        if written and event.status != 408:
            self.loop.linger(client)
        else:
            self.loop.close(client)

    def answer_ready(self, client: Client, event: RequestHead) -> bool | None:
        """The loop's shortcut for a head whose answer the core has ready (App.ready_response: a
        small file's or a 404's, replayed from memory): framed by core.connection, written
        without waiting, finished (App.finish) and the connection kept or closed as
        core.connection says, all here, with no hand-off to a handler. True: answered, the
        connection goes on; False: answered, close it; None: not answered here (no ready answer,
        a TLS socket, stopping), or begun and left to a handler (client.pending: the socket did
        not take it all)."""
        if not self.loop_answers(client):  # TLS: its records are written by its handler
            return None
        app = self.app
        request = event.request
        response = app.ready_response(request)
        if response is None:
            return None
        http = client.http
        head, _ = http.start_response(response, self.stopping)
        body = response.body
        assert isinstance(body, bytes)  # a ready answer's body is bytes (b"" for HEAD)
        data = head + body if body else head
        try:
            sent = client.send_some(data)
        except OSError:  # reset: the client is gone
            http.end_response(False)
            app.finish(request, response.status, 0, route_kind=response.route_kind)
            return False
        if sent < len(data):
            client.pending = (request, response, data[sent:])
            return None
        keep, _ = http.end_response(True)  # no body came with a plain request: nothing to linger on
        app.finish(request, response.status, len(body), route_kind=response.route_kind)
        return keep

    def loop_answers(self, client: Client) -> bool:
        """Whether the loop writes ready answers on this connection itself (answer_ready)."""
        return self.loop_answers_ready and client.sendfile_ok and not self.stopping

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A handler failed outside any request (socketserver calls this): a client that left is
        no news; anything else is one server-log line."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)) or \
                (isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.ECONNRESET)):
            return
        server_log(f"cgibox: connection from {client_address[0]} failed: {exc!r}")

    # -- what a handler asks -------------------------------------------------------------------

    def busy(self) -> bool:
        raise NotImplementedError

    def handler_window(self, client: Client) -> float | None:
        """After a response, how long a handler keeps waiting for the connection's next head
        (None: up to the loop's own deadlines, for a connection that cannot go back to it)."""
        return 0.0

    def may_wait(self, client: Client) -> bool:
        """Whether a handler may spend its slot waiting for a connection's next head now."""
        return not self.stopping

    def wait_readable(self, client: Client, poller: select.poll, seconds: float) -> bool:
        return bool(poller.poll(max(1, round(seconds * 1000))))

    def hands_back_for_body(self, client: Client, event: RequestHead) -> bool:
        """Whether a handler that read `event` itself lets the loop wait for its body."""
        return self.loop.body_on_its_way(client, event)

    # -- stopping --------------------------------------------------------------------------------

    def begin_stop(self) -> None:
        """Stopping: tell whatever runs requests to finish the one in flight and keep nothing."""

    def end_stop(self) -> None:
        """After --graceful-timeout: whatever still runs is given up."""
