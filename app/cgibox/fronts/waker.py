"""How another thread (or a signal) wakes a thread that waits in a selector: the connection
loop's, and each TLS relay thread's on the forking front.
"""

from __future__ import annotations

import collections
import selectors
import socket
from collections.abc import Callable


class Waker:
    """Wakes a thread that waits in a selector, from another thread (or, through
    signal.set_wakeup_fd, a signal): a socketpair whose reading end is in that selector, and the
    calls queued for that thread, run at its wake-up after `on_wake`."""

    def __init__(self, selector: selectors.BaseSelector, on_wake: Callable[[], None] | None = None) -> None:
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(False)
        self.writer.setblocking(False)
        self.on_wake = on_wake
        self.calls: collections.deque[Callable[[], None]] = collections.deque()
        selector.register(self.reader, selectors.EVENT_READ, self._on_readable)

    def wake(self) -> None:
        try:
            self.writer.send(b"\0")
        except BlockingIOError:  # already full: the thread wakes anyway
            pass

    def call_soon(self, call: Callable[[], None]) -> None:
        """From any thread: run `call` in the selector's thread at its next wake-up."""
        self.calls.append(call)
        self.wake()

    def _on_readable(self, _fileobj: object) -> None:
        try:
            while self.reader.recv(4096):
                pass
        except BlockingIOError:
            pass
        if self.on_wake is not None:
            self.on_wake()
        while self.calls:
            self.calls.popleft()()

    def close(self) -> None:
        self.reader.close()
        self.writer.close()
