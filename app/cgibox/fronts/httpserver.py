"""The http.server fronts' entry: `make_server` picks the threading or the forking front, `serve`
runs one serving process's loop until SIGTERM/SIGINT, then stops gracefully.

    accept ─► loop (selector: new, head arriving, idle keep-alive; deadlines in a heap)
                │ complete head or early error (core.connection)
                ▼
              Handler (fronts/handler.py) in a pool thread (threading_front.py) or a forked
                │ child (forking_front.py); keep-alive decided by core.connection
                └──► back to the loop, or straight on to a next head arriving soon
"""

from __future__ import annotations

import signal
import socket
import threading

from cgibox.config import Config
from cgibox.core.accesslog import server_log
from cgibox.core.router import App
from cgibox.fronts.forking_front import ForkingServer
from cgibox.fronts.forks import release
from cgibox.fronts.loop_server import LoopServer
from cgibox.fronts.threading_front import ThreadingServer


def make_server(config: Config, app: App) -> LoopServer:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    server_class: type[ThreadingServer | ForkingServer] = \
        ThreadingServer if config.front == "threading" else ForkingServer
    server_class.address_family = family
    return server_class((config.host, config.port), app, config)


def serve(server: LoopServer, config: Config) -> int:
    """Serve until SIGTERM/SIGINT; then stop accepting, close parked connections, answer heads
    already complete, and let requests in flight finish within --graceful-timeout."""
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()  # only a flag: the loop acts on it (the wake-up fd ends its wait)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    release()  # a --processes child was forked holding them (fronts/processes.py)
    server.start_loop()
    loop = server.loop
    loop.run(stop)
    server_log(f"cgibox: stopping; finishing requests in flight (up to {config.graceful_timeout:g} s)")
    server.stopping = True
    loop.stop_accepting()
    server.begin_stop()
    loop.close_parked()
    loop.drain(config.graceful_timeout, server.busy)
    server.end_stop()
    loop.close_all()
    return 0
