"""gunicorn's sync worker with plain-HTTP request heads parked in a selector of its own: the worker
accepts, waits for every connection's head at once (fed to the core's HeadWatch under
--header-timeout), and runs gunicorn's one-request handle() only for a complete head.
"""

from __future__ import annotations

import errno
import os
import selectors
import time
from collections import deque
from typing import Any

from gunicorn import util
from gunicorn.workers.sync import SyncWorker

from cgibox.core import connection
from cgibox.fronts.gunicorn_sockets import CLOSER, HeadWatch, disarm_head, hand_over
from cgibox.fronts.gunicorn_workers import CoreErrorPages

LISTENER, WAKE = "listener", "wake"
# connections accepted in a row before the parked heads get a look (gunicorn's loop accepts
# until the backlog is empty)
ACCEPT_BATCH = 32


class Parked:
    """A connection whose head is arriving: its listener, the bytes so far, the core's view."""

    __slots__ = ("listener", "client", "addr", "watch", "data", "deadline", "parked")

    def __init__(self, listener: Any, client: Any, addr: Any, watch: HeadWatch, deadline: float) -> None:
        self.listener = listener
        self.client = client
        self.addr = addr
        self.watch = watch
        self.data = bytearray()
        self.deadline = deadline
        self.parked = True


class CgiboxSyncWorker(CoreErrorPages, SyncWorker):  # type: ignore[misc]
    """sync: one request at a time per worker, no keep-alive. gunicorn's sync worker reads a head
    in handle(), blocking the whole worker: here accept() parks the connection (plain HTTP) and
    wait(), where gunicorn's loops sleep between accepts, reads every parked head as it arrives;
    a complete one is handed to gunicorn's handle() with its bytes (served by the first recv()s).
    With TLS the handshake is a blocking call, so the head is read in handle() as gunicorn does,
    under the head deadline."""

    def init_process(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.heads: deque[Parked] = deque()  # in deadline order (one --header-timeout for all)
        self.ready: deque[Parked] = deque()
        self.watching = False
        self.accepted = 0
        super().init_process()

    def accept(self, listener: Any) -> None:
        if self.cfg.is_ssl:
            return self._accept_now(listener)
        if self.accepted >= ACCEPT_BATCH:
            raise BlockingIOError(errno.EAGAIN, "a batch accepted: the parked heads' turn")
        try:
            client, addr = listener.accept()
        except OSError as error:
            if self.alive or error.errno not in (errno.EBADF, errno.EINVAL):
                raise  # EAGAIN: gunicorn's loop waits; a listener closed by handle_exit: stopping
            return None
        client.setblocking(False)
        util.close_on_exec(client)
        self.accepted += 1
        config = self.wsgi.app.config
        park = Parked(listener, client, addr, HeadWatch(self.wsgi.app.body_limit),
                      time.monotonic() + config.header_timeout)
        self.selector.register(client, selectors.EVENT_READ, park)
        self.heads.append(park)
        self.read_head(park)  # a client's head often arrives with the connection
        return None

    def _accept_now(self, listener: Any) -> None:
        try:
            super().accept(listener)
        except OSError as error:
            if self.alive or error.errno not in (errno.EBADF, errno.EINVAL):
                raise

    def wait(self, timeout: float) -> list[Any] | None:
        """gunicorn's loops call this between accepts: wait for the listeners, the wake-up pipe
        and every parked head at once; run the heads that are complete, answer the late ones."""
        self.notify()
        self.accepted = 0
        if not self.watching:
            self.watching = True
            for listener in self.sockets:
                self.selector.register(listener, selectors.EVENT_READ, LISTENER)
            self.selector.register(self.PIPE[0], selectors.EVENT_READ, WAKE)
        if self.ready:
            timeout = 0.0  # heads read at accept wait to be run
        elif self.heads:
            timeout = min(timeout, max(0.0, self.heads[0].deadline - time.monotonic()))
        listeners = []
        try:
            events = self.selector.select(timeout)
        except OSError as error:
            if error.errno != errno.EINTR:
                raise
            events = []
        for key, _ in events:
            if key.data is LISTENER:
                listeners.append(key.fileobj)
            elif key.data is WAKE:
                try:
                    os.read(self.PIPE[0], 64)
                except OSError:
                    pass
            else:
                self.read_head(key.data)
        self.expire_heads()
        while self.ready and self.alive:
            self.notify()
            self.run_head(self.ready.popleft())
        return listeners or None

    def read_head(self, park: Parked) -> None:
        try:
            data = park.client.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        park.data += data
        event = park.watch.feed(data)
        if event is connection.NEED_DATA:
            return
        self.unpark(park)
        if isinstance(event, connection.RequestHead):
            self.ready.append(park)
        else:
            self.end(park, event)

    def unpark(self, park: Parked) -> None:
        park.parked = False  # skipped when it comes up in self.heads
        try:
            self.selector.unregister(park.client)
        except (KeyError, ValueError, OSError):
            pass

    def expire_heads(self) -> None:
        now = time.monotonic()
        while self.heads and (not self.heads[0].parked or self.heads[0].deadline <= now or not self.alive):
            park = self.heads.popleft()
            if park.parked:
                self.unpark(park)
                self.end(park, park.watch.timed_out() if self.alive else connection.CLOSED_EVENT)

    def end(self, park: Parked, event: connection.Event) -> None:
        """The core's answer for a refused or late head (then closed), or a quiet close."""
        if isinstance(event, connection.EarlyError):
            park.client.settimeout(self.wsgi.app.config.header_timeout)  # a client that does not read
            self.answer_early(park.client, park.addr, event, park.watch.seen)
            CLOSER.close_graceful(park.client)
        else:
            util.close(park.client)

    def run_head(self, park: Parked) -> None:
        park.client.setblocking(True)
        hand_over(bytes(park.data))  # what the first recv()s of gunicorn's parser return
        try:
            self.handle(park.listener, park.client, park.addr, park.watch)
        finally:
            hand_over(b"")

    def handle(self, listener: Any, client: Any, addr: Any, watch: HeadWatch | None = None) -> None:
        self.arm_head_deadline(client, None, watch)
        try:
            super().handle(listener, client, addr)
        finally:
            disarm_head()

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self.close_listeners()  # a request in flight finishes; no new connection is accepted

    def handle_request(self, listener: Any, req: Any, client: Any, addr: Any) -> None:
        self.start_request(req, client)
        super().handle_request(listener, req, client, addr)
