"""One connection as the http.server fronts hold it (`Client`): its socket, its peer, the core's
Connection for its bytes, and where it is (parked in the loop, with a handler, in a child). Its
reads and writes that never wait, a handler's blocking body read under --body-timeout, and the
seam TLS fills (fronts/tls_transport.py). Only sockets here: what the bytes mean, core.connection says.
"""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING, Any

from cgibox.core.connection import Connection, Event

if TYPE_CHECKING:
    from cgibox.core.request import Request
    from cgibox.core.response import Response

RECV_SIZE = 64 * 1024
# a body write or read that makes no progress for this long ends the connection
IO_TIMEOUT = 60.0


def timeval(seconds: float) -> bytes:
    """A struct timeval for SO_RCVTIMEO / SO_SNDTIMEO; never zero, which would mean 'no timeout'."""
    micro = max(1, round(seconds * 1e6))
    return struct.pack("ll", micro // 1_000_000, micro % 1_000_000)


class Client:
    """One accepted connection: its socket, peer, core Connection, and where the loop holds it.

    The socket stays blocking with kernel timeouts (SO_RCVTIMEO/SO_SNDTIMEO) for the handlers;
    the loop reads it with MSG_DONTWAIT, so no mode switch happens when it changes hands. The
    only blocking read a handler makes is a request body's, so SO_RCVTIMEO is --body-timeout.
    """

    __slots__ = ("sock", "address", "http", "deadline", "parked", "event", "keep", "child",
                 "body_due", "draining", "head", "pending")
    # a TLS transport cannot be written with os.sendfile: file regions then go in chunks
    sendfile_ok = True
    # forking front: a TLS connection stays in the loop's process, whose relay threads carry it to
    # a child (fronts/forked_tls.py)
    pinned = False

    def __init__(self, sock: socket.socket, address: tuple[Any, ...], http: Connection) -> None:
        self.sock = sock  # the socket (a TLS one on the HTTPS port)
        self.address = address
        self.http = http  # the core's Connection: what the bytes mean
        self.deadline = 0.0
        self.parked = False
        self.event: Event | None = None  # what a handler is to act on
        self.keep = False  # set by the handler: the connection goes on
        self.child: int | None = None  # forking front: the child running it
        self.body_due = 0  # parked until the buffer holds this many body bytes (0: not waiting)
        self.draining = 0  # lingering close: bytes still to read and drop (0: not lingering)
        self.head = b""  # with ConnectionLoop.keep_heads: the raw bytes of the head in `event`
        # a response the loop began to write and a handler finishes: (request, response, rest)
        self.pending: tuple[Request, Response, bytes] | None = None

    def fileno(self) -> int:
        return self.sock.fileno()

    def advance_transport(self) -> bool | Event:
        """True once the transport carries HTTP bytes; the loop calls it before reading a head.

        The seam for TLS (fronts/tls_transport.py): a TLS client drives its non-blocking handshake
        here (False: wait for the socket again), or returns the event that ends it (an EarlyError
        to answer, CLOSED_EVENT). Plain TCP is ready at once."""
        return True

    def transport_pending(self) -> bool:
        """Bytes the transport holds that the selector cannot see (TLS: decrypted, not read)."""
        return False

    def timed_out(self) -> Event:
        """The loop's deadline passed while this connection was parked."""
        return self.http.timed_out()

    def recv_ready(self) -> bytes:
        """What the socket holds now, without waiting (BlockingIOError when nothing)."""
        return self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)

    def send_some(self, data: bytes) -> int:
        """Write what the socket takes of `data` now, without waiting; how many bytes it took."""
        try:
            return self.sock.send(data, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return 0

    def send_ready(self, data: bytes) -> bool:
        """Write `data` now without waiting (the loop's own answers: small pages on a connection
        with nothing else to send); False when the socket would not take all of it."""
        try:
            return self.sock.send(data, socket.MSG_DONTWAIT) == len(data)
        except (BlockingIOError, InterruptedError):
            return False

    def recv_body(self, seconds: float) -> bytes:
        """A handler's blocking read of request-body bytes; TimeoutError after `seconds` of
        silence (plain sockets: SO_RCVTIMEO, set to --body-timeout at accept)."""
        try:
            return self.sock.recv(RECV_SIZE)
        except BlockingIOError:  # SO_RCVTIMEO ran out (the socket itself is blocking)
            raise TimeoutError from None
