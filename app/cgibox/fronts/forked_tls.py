"""TLS connections on the forking front. A TLS session's state (sequence numbers, keys, buffered
records) lives in the OpenSSL object of the process that read and wrote it, and no API moves it,
so the loop's process keeps the TLS layer: for each busy spell a child forked ahead is sent one
end of a Unix socketpair in place of the connection, and the loop's process relays plaintext
between the TLS socket and the other end (`Relay`). Between requests the connection is parked in
the loop like any other, so a TLS request that stalls holds no child, and an idle one no thread.

Relays run in a few threads of their own (`RelayThreads`, one per core), each waiting in its own
selector on the relays it was given: the ssl module lets go of the GIL while OpenSSL encrypts and
while the kernel sends, so the relays encrypt on every core at once. Relayed by the loop thread,
they shared one core (64 MiB over TLS fell from ~600 to ~350 MB/s); a thread per relay spent
more on handing the GIL between 32 threads than it saved. A relay's SSL socket is its thread's
alone from `_begin` to `_release` (OpenSSL objects are not for two threads at once); the loop
thread learns of the end through `ConnectionLoop.call_soon`, and only it reads or writes
`finished` and `report`.

Handing back without losing a byte: the child, done, shuts its end for reading (a send from the
relay after that fails with EPIPE, so the relay keeps those bytes), takes what was queued to it
into the bytes it reports, then closes its end. The relay ends once the child's end is closed
and every response byte has gone out through TLS.
"""

from __future__ import annotations

import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cgibox.fronts.client import IO_TIMEOUT, Client
from cgibox.fronts.waker import Waker

if TYPE_CHECKING:
    from cgibox.fronts.loop import ConnectionLoop

# the relay reads no more from the client while this much waits to be given to the child ...
TO_CHILD_WINDOW = 256 * 1024
# ... nor from the child while this much waits to be encrypted (a bigger window: fewer wake-ups
# per byte of a large response; 64 MiB over TLS, 4 connections, medians of three with the child's
# 1 MiB send buffer: 525 MB/s at 256 KiB, 555 at 1 MiB)
TO_CLIENT_WINDOW = 1024 * 1024
# each window starts this small and doubles when full (a 1 KiB response needs no megabyte)
FIRST_WINDOW = 64 * 1024
# a relay told to stop (the child died, the server stops) is waited for this long at most: its
# thread never blocks outside its selector, and the stop wakes that
STOP_WAIT = 5.0
# how often a relay thread looks for relays whose client stopped taking a dead child's last bytes
SWEEP_SECONDS = 1.0
# a read or write that can do nothing now: plain sockets say BlockingIOError, SSL ones SSLWant*
NOTHING_NOW = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError)


class Window:
    """Bytes read from one side, not yet written to the other: a buffer read into and written
    from in place (a bytearray appended to and trimmed for each chunk cost a memmove of the whole
    window each time: 15 % of the relay's CPU on a 64 MiB file)."""

    __slots__ = ("buffer", "view", "start", "end", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = bytearray(min(FIRST_WINDOW, limit))
        self.view = memoryview(self.buffer)
        self.start = 0  # the first byte not yet written
        self.end = 0  # one past the last byte read

    def __bool__(self) -> bool:
        return self.end > self.start

    def make_room(self) -> bool:
        """Whether a read may go in now: room left at the end, or made by doubling the buffer
        up to its limit. False once it holds `limit` bytes not yet written."""
        if self.end < len(self.buffer):
            return True
        if len(self.buffer) < self.limit:
            self._move_to(bytearray(min(2 * len(self.buffer), self.limit)))
            return True
        return False

    def space(self) -> memoryview:
        """Where the next read goes (only after make_room() said True)."""
        return self.view[self.end:]

    def filled(self, count: int) -> None:
        self.end += count

    def waiting(self) -> memoryview:
        return self.view[self.start:self.end]

    def taken(self, count: int) -> None:
        self.start += count
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == len(self.buffer) and self.start >= len(self.buffer) // 2:
            self._move_to(self.buffer)  # what is left (at most half) moves to the front

    def take_all(self) -> bytes:
        data = bytes(self.waiting())
        self.start = self.end = 0
        return data

    def _move_to(self, buffer: bytearray) -> None:
        left = self.end - self.start
        buffer[:left] = self.view[self.start:self.end]
        if buffer is not self.buffer:
            self.buffer = buffer
            self.view = memoryview(buffer)
        self.start, self.end = 0, left


class RelayThread:
    """One thread that runs relays, each woken by its sockets' readiness in this thread's own
    selector (level-triggered: each wake-up does all it can). Other threads reach it only
    through `call_soon`."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.running: set[Relay] = set()  # this thread only: the relays it runs now
        self.given = 0  # the loop thread only: relays given to it, not yet ended
        self.waker = Waker(self.selector)
        self._thread = threading.Thread(target=self._run, name="tls-relay", daemon=True)
        self._thread.start()

    def call_soon(self, call: Callable[[], None]) -> None:
        """From any thread: run `call` in this thread at its next wake-up."""
        self.waker.call_soon(call)

    def _run(self) -> None:
        swept = time.monotonic()
        while True:
            for key, _ in self.selector.select(SWEEP_SECONDS):
                key.data(key.fileobj)
            now = time.monotonic()
            if now - swept >= SWEEP_SECONDS:
                swept = now
                for relay in [r for r in self.running if r.stalled(now)]:
                    relay.give_up_client()


class RelayThreads:
    """The loop process's relay threads, started at the first TLS spell, one per core: a new
    relay goes to the one running fewest."""

    def __init__(self, count: int | None = None) -> None:
        self.count = count or os.cpu_count() or 1
        self.threads: list[RelayThread] = []

    def pick(self) -> RelayThread:
        if len(self.threads) < self.count and all(t.given for t in self.threads):
            self.threads.append(RelayThread())
        return min(self.threads, key=lambda t: t.given)


class Relay:
    """Plaintext between one TLS connection (its SSLSocket, in the loop's process) and a child's
    end of a socketpair, for one busy spell, run by one RelayThread."""

    def __init__(self, thread: RelayThread, loop: ConnectionLoop, client: Client,
                 mine: socket.socket, done: Callable[[Relay], None]) -> None:
        self.thread = thread
        self.loop = loop
        self.client = client
        self.mine = mine  # the loop's end of the pair
        self.done = done  # called in the loop thread once the spell is over
        self.to_child = Window(TO_CHILD_WINDOW)  # decrypted from the client, not yet given to the child
        self.to_client = Window(TO_CLIENT_WINDOW)  # from the child, not yet encrypted to the client
        self.undelivered = bytearray()  # client bytes the child refused (it was handing back)
        self.child_closed = False
        self.client_closed = False  # the client sent its end of stream (it may still read)
        self.client_gone = False  # nothing more reaches the client: the loop closes it after
        self.finished = False  # loop thread only: the spell is over (ended or abandoned)
        self.report: tuple[bool, int, bytes] | None = None  # loop thread only: the child's
        self._events: dict[int, int] = {}  # relay thread: fd -> events registered
        self._timeout_before: float | None = None
        self._released = False  # relay thread: its sockets are no longer watched
        self._last_progress = time.monotonic()
        mine.setblocking(False)
        thread.given += 1
        thread.call_soon(self._begin)

    # -- in the relay thread -----------------------------------------------------------------------

    def _begin(self) -> None:
        sock = self.client.sock
        self._timeout_before = sock.gettimeout()
        sock.settimeout(0)  # its thread's own, until _release
        self.thread.running.add(self)
        self.pump()

    def _on_ready(self, _fileobj: object) -> None:
        self.pump()

    def pump(self) -> None:
        if self._released:
            return
        progress = True
        moved = False
        while progress:
            progress = self._from_client() | self._to_child() | self._from_child() | self._to_client()
            moved = moved or progress
        if moved:
            self._last_progress = time.monotonic()
        if self.child_closed and not self.to_client:
            self._release()
            self.loop.call_soon(self._end)
            return
        self._want(self.mine, (0 if self.child_closed else selectors.EVENT_READ)
                   | (selectors.EVENT_WRITE if self.to_child else 0))
        self._want(self.client.sock, (0 if self.client_closed or self.child_closed else selectors.EVENT_READ)
                   | (selectors.EVENT_WRITE if self.to_client else 0))

    def stalled(self, now: float) -> bool:
        """Bytes wait for the client and nothing moved either way for IO_TIMEOUT (the loop's rule
        for a write that makes no progress; the child, blocked on its send, gives up as long)."""
        return bool(self.to_client) and now - self._last_progress > IO_TIMEOUT

    def give_up_client(self) -> None:
        """From now on the child's bytes are read and dropped, so that it ends; the connection
        is closed after, whatever the child reports."""
        self._client_gone()
        self.pump()

    def _client_gone(self) -> None:
        self.to_client.take_all()
        self.client_gone = self.client_closed = True
        try:
            self.mine.shutdown(socket.SHUT_WR)  # the child reads no more request bytes
        except OSError:
            pass

    def _from_client(self) -> bool:
        if self.client_closed or self.child_closed or not self.to_child.make_room():
            return False
        try:
            count = self.client.sock.recv_into(self.to_child.space())
        except NOTHING_NOW:
            return False
        except OSError:  # reset, or SSLZeroReturnError (close_notify): the client's end of stream
            count = 0
        if not count:
            self.client_closed = True
            try:
                self.mine.shutdown(socket.SHUT_WR)  # the child sees the client's end of stream
            except OSError:
                pass
            return True
        self.to_child.filled(count)
        return True

    def _to_child(self) -> bool:
        if not self.to_child or self.child_closed:
            return False
        try:
            sent = self.mine.send(self.to_child.waiting())
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:  # EPIPE: the child is handing back; these bytes stay the loop's
            self.undelivered += self.to_child.take_all()
            return False
        self.to_child.taken(sent)
        return sent > 0

    def _from_child(self) -> bool:
        if self.child_closed or not self.to_client.make_room():
            return False
        try:
            count = self.mine.recv_into(self.to_client.space())
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            count = 0
        if not count:
            self.child_closed = True
            self.undelivered += self.to_child.take_all()  # never given to the child: the loop's again
            return True
        self.to_client.filled(count)
        if self.client_gone:
            self.to_client.take_all()
        return True

    def _to_client(self) -> bool:
        if not self.to_client:
            return False
        try:
            sent = self.client.sock.send(self.to_client.waiting())
        except NOTHING_NOW:
            return False
        except OSError:  # the client is gone: nothing more will reach it
            self._client_gone()
            return True
        self.to_client.taken(sent)
        return sent > 0

    def _want(self, sock: socket.socket, events: int) -> None:
        fd = sock.fileno()
        now = self._events.get(fd, 0)
        if now == events:
            return
        selector = self.thread.selector
        if not events:
            selector.unregister(fd)
            del self._events[fd]
        elif now:
            selector.modify(fd, events, self._on_ready)
        else:
            selector.register(fd, events, self._on_ready)
        if events:
            self._events[fd] = events

    def _release(self) -> None:
        """This thread lets go of both sockets (the client's goes back in the loop's timeout mode)."""
        if self._released:
            return
        self._released = True
        self.thread.running.discard(self)
        for fd in self._events:
            self.thread.selector.unregister(fd)
        self._events.clear()
        if self._timeout_before is not None:
            try:
                self.client.sock.settimeout(self._timeout_before)
            except OSError:
                pass

    # -- in the loop thread ------------------------------------------------------------------------

    def _end(self) -> None:
        if self.finished:  # abandoned meanwhile
            return
        self.finished = True
        self.thread.given -= 1
        self.mine.close()
        self.done(self)

    def abandon(self) -> None:
        """Stop relaying now (the child died, or the server stops). Once this returns the relay
        thread no longer touches the client's socket, and the caller may close it."""
        if self.finished:
            return
        self.finished = True
        self.thread.given -= 1
        released = threading.Event()

        def release() -> None:
            self._release()
            released.set()

        self.thread.call_soon(release)
        released.wait(STOP_WAIT)
        self.mine.close()
