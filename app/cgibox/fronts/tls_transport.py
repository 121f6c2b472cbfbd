"""HTTPS on the http.server fronts: a fronts.client Client whose transport step is a non-blocking TLS
handshake, run by the loop (never by a handler), after one peeked byte tells a ClientHello from
plain HTTP. Its reads see what the SSL layer already decrypted; its file regions go in chunks
(sendfile cannot encrypt). Only ssl and sockets here: what the bytes mean, core.connection says.
"""

from __future__ import annotations

import selectors
import socket
import ssl
from collections.abc import Callable
from typing import Any

from cgibox.core import wire
from cgibox.core.accesslog import server_log
from cgibox.core.connection import CLOSED_EVENT, PLAIN_ON_TLS_PORT, Connection, Event
from cgibox.fronts.client import IO_TIMEOUT, RECV_SIZE, Client
from cgibox.tls import HANDSHAKE_FAILED_LOG

STALLED_LOG = "cgibox: TLS handshake with {peer} not finished within --header-timeout; closed"


class TLSClient(Client):
    """One HTTPS connection. Wrapped at accept (no I/O: do_handshake_on_connect=False), so the
    loop registers the SSLSocket itself. Between loop calls the socket is in Python's timeout mode
    (IO_TIMEOUT) for the handlers: a blocking SSLSocket under SO_RCVTIMEO would retry forever.
    The loop's own calls switch it to non-blocking for their duration."""

    __slots__ = ("selector", "checked", "handshaken", "events")
    sock: ssl.SSLSocket  # a plain socket only once the plain-HTTP answer has replaced it
    sendfile_ok = False
    # the session state (sequence numbers, keys, buffered records) lives in the process that
    # read and wrote it: the forking front relays it to a child instead of sending it there
    pinned = True

    def __init__(self, sock: socket.socket, address: tuple[Any, ...], http: Connection,
                 context: ssl.SSLContext, selector: selectors.BaseSelector) -> None:
        super().__init__(sock, address, http)
        self.selector = selector
        self.checked = False  # the first byte was peeked at: a ClientHello
        self.handshaken = False
        self.events = selectors.EVENT_READ
        self.sock = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        self.sock.settimeout(IO_TIMEOUT)

    def advance_transport(self) -> bool | Event:
        if self.handshaken:
            return True
        sock = self.sock
        sock.settimeout(0)
        try:
            return self._handshake_step(sock)
        finally:
            if self.sock is sock:  # not swapped for the plain answer
                sock.settimeout(IO_TIMEOUT)

    def _handshake_step(self, sock: ssl.SSLSocket) -> bool | Event:
        if not self.checked:
            try:  # the raw socket's recv: the SSL layer must not see this byte yet
                first = socket.socket.recv(sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                return CLOSED_EVENT
            if not first:
                return CLOSED_EVENT
            if not wire.looks_like_tls(first):
                # the answer goes in plain text: the same descriptor, without the SSL layer
                self.sock = socket.socket(fileno=sock.detach())  # type: ignore[assignment]
                self.sock.settimeout(IO_TIMEOUT)
                return PLAIN_ON_TLS_PORT  # the handler logs and answers it
            self.checked = True
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._want(selectors.EVENT_READ)
            return False
        except ssl.SSLWantWriteError:  # the send buffer is full: wait until it drains
            self._want(selectors.EVENT_READ | selectors.EVENT_WRITE)
            return False
        except ssl.SSLError as error:
            server_log(HANDSHAKE_FAILED_LOG.format(peer=self.address[0],
                                                   reason=error.reason or error))
            return CLOSED_EVENT
        except OSError:  # reset mid-handshake: nobody to tell
            return CLOSED_EVENT
        self._want(selectors.EVENT_READ)
        self.handshaken = True
        return True

    def _want(self, events: int) -> None:
        if events != self.events:
            self.selector.modify(self.sock, events, self.selector.get_key(self.sock).data)
            self.events = events

    def recv_ready(self) -> bytes:
        """Decrypted bytes available now, with all that the SSL layer already holds (pending():
        the selector cannot see those); BlockingIOError when nothing."""
        if not self.handshaken:
            raise BlockingIOError  # no HTTP bytes before the handshake (stopping's last look)
        sock = self.sock
        sock.settimeout(0)
        try:
            data = sock.recv(RECV_SIZE)
            while data and sock.pending():
                data += sock.recv(RECV_SIZE)
            return data
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError from None
        except ssl.SSLZeroReturnError:  # close_notify
            return b""
        finally:
            sock.settimeout(IO_TIMEOUT)

    def send_ready(self, data: bytes) -> bool:
        sock = self.sock
        if not isinstance(sock, ssl.SSLSocket):  # the plain answer to plain HTTP on this port
            return Client.send_ready(self, data)
        sock.settimeout(0)
        try:
            return sock.send(data) == len(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError, InterruptedError):
            return False
        finally:
            sock.settimeout(IO_TIMEOUT)

    def recv_body(self, seconds: float) -> bytes:
        """Request-body bytes for a handler, under --body-timeout (Python's timeout mode here)."""
        sock = self.sock
        sock.settimeout(seconds)
        try:
            return sock.recv(RECV_SIZE)
        except ssl.SSLZeroReturnError:  # close_notify
            return b""
        finally:
            sock.settimeout(IO_TIMEOUT)

    def transport_pending(self) -> bool:
        return self.handshaken and self.sock.pending() > 0

    def timed_out(self) -> Event:
        if self.handshaken:
            return self.http.timed_out()
        if self.checked:  # a handshake began and stalled (a silent connection just closes)
            server_log(STALLED_LOG.format(peer=self.address[0]))
        return CLOSED_EVENT


def client_factory(context: ssl.SSLContext, selector: selectors.BaseSelector
                   ) -> Callable[[socket.socket, tuple[Any, ...], Connection], TLSClient]:
    """What the loop calls for each accepted connection on the HTTPS port."""
    def make(sock: socket.socket, address: tuple[Any, ...], http: Connection) -> TLSClient:
        return TLSClient(sock, address, http, context, selector)
    return make
