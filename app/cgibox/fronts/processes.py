"""`--processes N` for the threading front: the first process forks N serving processes that share
its listening socket, replaces one that dies (and says so), and on SIGTERM/SIGINT passes the signal
to all of them and waits for each to stop gracefully. The serving processes see each other's open
connection counts (`Siblings`), so that each accepts only while it is not ahead of the others."""

from __future__ import annotations

import mmap
import os
import select
import signal
import struct
import time
from collections.abc import Callable, Iterator

from cgibox.core.accesslog import server_log
from cgibox.core.cgi_slots import reclaim_orphans
from cgibox.fronts import forks
from cgibox.fronts.forks import fork_holding

# after --graceful-timeout, how long a serving process gets to close up before SIGKILL
STOP_MARGIN = 5.0
# a serving process that dies sooner than this after its start is replaced only after this long,
# so that one failing at start-up does not make the supervisor fork as fast as it can
RESTART_DELAY = 1.0
# a serving process accepts while it holds no more than this many open connections above the
# fewest among its siblings: a burst (wrk's 32) ends split evenly instead of 28 to 4
ACCEPT_SLACK = 2
ABSENT = -1  # a slot whose process is not running (dead, not yet replaced)


class Siblings:
    """Each serving process's count of open connections, in an anonymous MAP_SHARED map made
    before the forks (no file, no lock: each process writes its own slot only)."""

    SLOT = struct.Struct("q")

    def __init__(self, count: int) -> None:
        self.count = count
        self.map = mmap.mmap(-1, self.SLOT.size * count)
        self.index = -1  # this process's slot (set in each serving process)
        for index in range(count):
            self.put(index, ABSENT)

    def put(self, index: int, value: int) -> None:
        self.SLOT.pack_into(self.map, self.SLOT.size * index, value)

    def may_accept(self, mine: int) -> bool:
        """Publish this process's count; True unless a live sibling holds fewer by ACCEPT_SLACK."""
        self.put(self.index, mine)
        fewest = min((value for index, (value,) in enumerate(self.SLOT.iter_unpack(self.map))
                      if index != self.index and value != ABSENT), default=mine)
        return mine <= fewest + ACCEPT_SLACK


# in a serving process of `supervise`: the map shared with its siblings
SIBLINGS: Siblings | None = None


def supervise(count: int, serve_one: Callable[[], int], close_listener: Callable[[], None],
              graceful_timeout: float) -> int:
    """Run `serve_one` in `count` forked processes until SIGTERM/SIGINT; exit status 0."""
    siblings = Siblings(count)
    slots: dict[int, int] = {}  # pid -> its slot in `siblings`
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    stopping: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stopping.append(signum)  # only a flag: the loop below acts on it

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake the wait below
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    children: set[int] = set()
    forks.release()  # a stop signal held since the start-up line is handled now
    started: dict[int, float] = {}

    def start(index: int) -> None:
        siblings.put(index, 0)
        pid = fork_holding()  # the child's serve() releases them once its handlers are set
        if pid == 0:
            status = 1
            try:
                global SIBLINGS
                siblings.index = index
                SIBLINGS = siblings
                signal.set_wakeup_fd(-1)
                os.close(wake_r)
                os.close(wake_w)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                status = serve_one()
            finally:
                os._exit(status)
        children.add(pid)
        slots[pid] = index
        started[pid] = time.monotonic()

    for index in range(count):
        start(index)
    while not stopping:
        select.select([wake_r], [], [], 1.0)
        try:
            while os.read(wake_r, 512):
                pass
        except BlockingIOError:
            pass
        for pid, status in reap(children):
            index = slots.pop(pid)
            siblings.put(index, ABSENT)  # its queued connections go to the others meanwhile
            if not stopping:
                server_log(f"cgibox: serving process {pid} {describe(status)}; starting another")
                if time.monotonic() - started.pop(pid, 0.0) < RESTART_DELAY:
                    time.sleep(RESTART_DELAY)
                start(index)
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


def reap(children: set[int]) -> Iterator[tuple[int, int]]:
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
