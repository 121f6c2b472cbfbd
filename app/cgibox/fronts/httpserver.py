"""The http.server fronts' entry: `run` (cgibox.startup's table names it for --front threading
and forking) listens, announces and serves; `make_server` picks the front's server class from
SERVERS; `serve` runs one serving process's loop until SIGTERM/SIGINT, then stops gracefully.

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
import sys
import threading

from cgibox.config import Config, usable_cpus
from cgibox.core.accesslog import server_log
from cgibox.core.router import App
from cgibox.fronts.forking_front import ForkingServer
from cgibox.fronts.forks import release
from cgibox.fronts.loop_server import LoopServer
from cgibox.fronts.threading_front import ThreadingServer

# --front NAME -> its server class
SERVERS: dict[str, type[ThreadingServer | ForkingServer]] = {
    "threading": ThreadingServer,
    "forking": ForkingServer,
}


def run(config: Config) -> int:
    """Listen (one line and exit status 2 when the address cannot be had), announce, serve
    (in --processes processes on the threading front) until stopped."""
    from cgibox.startup import make_app, state_folder

    with state_folder() as stats:
        app = make_app(config, stats, config.front)
        try:
            server = make_server(config, app)
        except OSError as error:
            sys.stderr.write(f"cgibox: error: cannot listen on {config.host}:{config.port}: "
                             f"{error.strerror or error}\n")
            return 2
        # a stop signal sent as soon as the start-up line is read waits for the handlers that
        # serve() / supervise() set (they release it), instead of killing this process
        from cgibox.announce import announce
        from cgibox.fronts.forks import hold

        hold()
        announce(config, server.server_port)
        processes = config.processes or usable_cpus()
        try:
            # one serving process too runs under the supervisor: whoever kills it (kill -9, the
            # OOM killer), the supervisor ends the scripts it left and starts another
            if config.front == "threading":
                from cgibox.fronts.processes import supervise
                return supervise(processes, lambda: serve(server, config), server.socket.close,
                                 config.graceful_timeout)
            return serve(server, config)
        finally:
            server.server_close()


def make_server(config: Config, app: App) -> LoopServer:
    server_class = SERVERS[config.front]
    server_class.address_family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
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
