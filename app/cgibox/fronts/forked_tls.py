"""TLS connections on the forking front. A TLS session's state (sequence numbers, keys, buffered
records) lives in the OpenSSL object of the process that read and wrote it, and no API moves it,
so the loop keeps the TLS layer: for each busy spell a child forked ahead is sent one end of a
Unix socketpair in place of the connection, and the loop relays plaintext between the TLS socket
and the other end (`Relay`). Between requests the connection is parked in the loop like any
other, so a TLS request that stalls holds no child.

Handing back without losing a byte: the child, done, shuts its end for reading (a send from the
loop after that fails with EPIPE, so the loop keeps those bytes), takes what was queued to it
into the bytes it reports, then closes its end. The loop finishes once the child's end is closed
and every response byte has gone out through TLS.
"""

from __future__ import annotations

import selectors
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from cgibox.fronts.loop import RECV_SIZE, Client

if TYPE_CHECKING:
    from cgibox.fronts.loop import ConnectionLoop

# the relay reads no more from one side while this much waits to be written to the other
RELAY_WINDOW = 256 * 1024


class Relay:
    """Plaintext between one TLS connection (its SSLSocket, in the loop's process) and a child's
    end of a socketpair, driven by readiness of either socket (level-triggered: each wake-up does
    all it can)."""

    def __init__(self, loop: ConnectionLoop, client: Client, mine: socket.socket,
                 done: Callable[[Relay], None]) -> None:
        self.loop = loop
        self.client = client
        self.mine = mine  # the loop's end of the pair
        self.done = done  # called once the child's end is closed and every byte relayed
        self.to_child = bytearray()  # decrypted from the client, not yet given to the child
        self.to_client = bytearray()  # from the child, not yet encrypted to the client
        self.undelivered = bytearray()  # client bytes the child refused (it was handing back)
        self.child_closed = False
        self.client_closed = False
        self.finished = False
        mine.setblocking(False)
        self._events: dict[int, int] = {}  # fd -> events registered (absent: not registered)
        self.report: tuple[bool, int, bytes] | None = None  # the child's, once it came
        self.pump()

    def _on_ready(self, _fileobj: object) -> None:
        self.pump()

    def pump(self) -> None:
        if self.finished:
            return
        if self.mine.fileno() < 0:
            return
        progress = True
        while progress:
            progress = self._from_client() | self._to_child() | self._from_child() | self._to_client()
        if self.child_closed and not self.to_client:
            self._finish()
            return
        self._want(self.mine, selectors.EVENT_READ | (selectors.EVENT_WRITE if self.to_child else 0))
        self._want(self.client.sock, (selectors.EVENT_READ if not self.client_closed else 0)
                   | (selectors.EVENT_WRITE if self.to_client else 0))

    def _from_client(self) -> bool:
        if self.client_closed or self.child_closed or len(self.to_child) >= RELAY_WINDOW:
            return False
        try:
            data = self.client.recv_ready()
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:
            self.client_closed = True
            try:
                self.mine.shutdown(socket.SHUT_WR)  # the child sees the client's end of stream
            except OSError:
                pass
            return True
        self.to_child += data
        return True

    def _to_child(self) -> bool:
        if not self.to_child or self.child_closed:
            return False
        try:
            sent = self.mine.send(self.to_child)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:  # EPIPE: the child is handing back; these bytes stay the loop's
            self.undelivered += self.to_child
            self.to_child.clear()
            return False
        del self.to_child[:sent]
        return sent > 0

    def _from_child(self) -> bool:
        if self.child_closed or len(self.to_client) >= RELAY_WINDOW:
            return False
        try:
            data = self.mine.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:
            self.child_closed = True
            self.undelivered += self.to_child  # never given to the child: the loop's again
            self.to_child.clear()
            return True
        self.to_client += data
        return True

    def _to_client(self) -> bool:
        if not self.to_client:
            return False
        sock = self.client.sock
        before = sock.gettimeout()  # TLS sockets sit in timeout mode between the loop's calls
        try:
            sock.settimeout(0)
            sent = sock.send(self.to_client)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError, InterruptedError):
            return False
        except OSError:  # the client is gone: nothing more will reach it
            self.to_client.clear()
            self.client_closed = True
            return True
        finally:
            sock.settimeout(before)
        del self.to_client[:sent]
        return sent > 0

    def _want(self, sock: socket.socket, events: int) -> None:
        fd = sock.fileno()
        now = self._events.get(fd, 0)
        if now == events:
            return
        selector = self.loop.selector
        if not events:
            selector.unregister(sock)
            del self._events[fd]
            return
        if now:
            selector.modify(sock, events, self._on_ready)
        else:
            selector.register(sock, events, self._on_ready)
        self._events[fd] = events

    def _finish(self) -> None:
        self.abandon()
        self.done(self)

    def abandon(self) -> None:
        """Stop relaying (finished, or the child died: then the caller closes the client)."""
        if self.finished:
            return
        self.finished = True
        for sock in (self.mine, self.client.sock):
            if self._events.pop(sock.fileno(), 0):
                self.loop.selector.unregister(sock)
        self.mine.close()
