"""`--processes N` for the threading front: the first process forks N serving processes that share
its listening socket, replaces one that dies (and says so), and on SIGTERM/SIGINT passes the signal
to all of them and waits for each to stop gracefully."""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable

from cgibox.core.accesslog import server_log
from cgibox.core.cgi_slots import reclaim_orphans
from cgibox.fronts.forks import fork_holding

# after --graceful-timeout, how long a serving process gets to close up before SIGKILL
STOP_MARGIN = 5.0
# a serving process that dies sooner than this after its start is replaced only after this long,
# so that one failing at start-up does not make the supervisor fork as fast as it can
RESTART_DELAY = 1.0


def supervise(count: int, serve_one: Callable[[], int], close_listener: Callable[[], None],
              graceful_timeout: float) -> int:
    """Run `serve_one` in `count` forked processes until SIGTERM/SIGINT; exit status 0."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    stopping: list[int] = []

    def on_signal(signum, frame) -> None:
        stopping.append(signum)  # only a flag: the loop below acts on it

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake the wait below
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    children: set[int] = set()
    started: dict[int, float] = {}

    def start() -> None:
        pid = fork_holding()  # the child's serve() releases them once its handlers are set
        if pid == 0:
            status = 1
            try:
                signal.set_wakeup_fd(-1)
                os.close(wake_r)
                os.close(wake_w)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                status = serve_one()
            finally:
                os._exit(status)
        children.add(pid)
        started[pid] = time.monotonic()

    for _ in range(count):
        start()
    while not stopping:
        select.select([wake_r], [], [], 1.0)
        try:
            while os.read(wake_r, 512):
                pass
        except BlockingIOError:
            pass
        for pid, status in reap(children):
            if not stopping:
                server_log(f"cgibox: serving process {pid} {describe(status)}; starting another")
                if time.monotonic() - started.pop(pid, 0.0) < RESTART_DELAY:
                    time.sleep(RESTART_DELAY)
                start()
    close_listener()  # the serving processes close their copies: new connections are refused
    for pid in children:
        try:
            os.kill(pid, stopping[0])
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + graceful_timeout + STOP_MARGIN
    while children and time.monotonic() < deadline:
        select.select([wake_r], [], [], 0.2)
        list(reap(children))
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    signal.set_wakeup_fd(-1)
    return 0


def reap(children: set[int]):
    """(pid, wait status) of every serving process that has exited, taken out of `children`."""
    for pid in list(children):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done:
            children.discard(pid)
            reclaim_orphans()  # the scripts it still ran are ended, their slots freed
            yield pid, status


def describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
