"""`--front threading`: busy connections run in a bounded pool of handler threads of each serving
process (at most --threads); waiting connections cost no thread (they wait in fronts.loop)."""

from __future__ import annotations

import os
import queue
import socketserver
import threading
from collections.abc import Callable
from typing import Any

from cgibox.config import Config
from cgibox.core.router import App
from cgibox.fronts import processes
from cgibox.fronts.client import Client
from cgibox.fronts.handler import Handler
from cgibox.fronts.loop import SHARED_ACCEPT_BATCH
from cgibox.fronts.loop_server import LoopServer

# a pool thread keeps a connection whose next request follows within this long (a keep-alive
# client such as a browser or a load generator sends it at once); a thread holds no more than that
# for an idle one, and never while other heads wait for a thread
KEEP_BUSY_THREAD = 0.05


class HandlerPool:
    """At most `size` daemon threads running handlers, started as work needs them. Daemon: a
    handler stuck on a client that never reads must not hold the process past --graceful-timeout."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_flight = 0  # submitted and not finished
        self._started = 0
        self._lock = threading.Lock()
        self._work: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]]] = queue.SimpleQueue()

    def submit(self, function: Callable[..., None], *args: Any) -> None:
        with self._lock:
            self.in_flight += 1
            if self._started < min(self.size, self.in_flight):
                self._started += 1
                threading.Thread(target=self._run, name="cgibox-handler", daemon=True).start()
        self._work.put((function, args))

    def _run(self) -> None:
        while True:
            function, args = self._work.get()
            try:
                function(*args)
            finally:
                with self._lock:
                    self.in_flight -= 1


class ThreadingServer(socketserver.ThreadingMixIn, LoopServer):
    """Busy connections run in a pool of at most `threads` handler threads; waiting ones cost no thread."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: App, config: Config) -> None:
        self.pool = HandlerPool(config.threads)
        super().__init__(address, app, config, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # ThreadingMixIn's step (process_request_thread: the handler, then shutdown_request),
        # run by the bounded pool instead of a new thread per connection
        self.pool.submit(self.process_request_thread, request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.loop.hand_back(request)  # the loop parks it again or closes it

    def start_loop(self) -> None:
        super().start_loop()
        if (self.config.processes or os.cpu_count() or 1) > 1:
            self.loop.accept_batch = SHARED_ACCEPT_BATCH
        if processes.SIBLINGS is not None:  # accept only while not ahead of the others
            self.loop.may_accept = processes.SIBLINGS.may_accept
        # a ready answer is written by the loop's thread itself: no hand-off to a pool thread
        self.loop.answer = self.answer_ready
        self.loop_answers_ready = True

    def busy(self) -> bool:
        return self.pool.in_flight > 0

    def handler_window(self, client: Client) -> float | None:
        return KEEP_BUSY_THREAD

    def may_wait(self, client: Client) -> bool:
        # not while other heads wait for a thread: then the loop is the cheaper place to wait
        return not self.stopping and self.pool.in_flight <= self.pool.size
