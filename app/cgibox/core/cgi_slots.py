"""The --cgi-max slots every process of one server shares, and who holds them: each taken slot
names the serving process that runs its script and the script's process group. Whoever learns
that a serving process died (its supervisor, the next process to take a slot, the top process
when it exits) ends the group it left and frees the slot, so nothing depends on the dying
process's own cleanup (a SIGKILL, the OOM killer, a crash)."""

from __future__ import annotations

import atexit
import os
import signal
import weakref
from collections.abc import Callable
from typing import NamedTuple

from cgibox.core.shared import SharedCells, process_alive

# the cells of one slot: the serving process (pid, start time), the script's group (its leader's
# pid, which is the group id, and the leader's start time); an owner pid of 0 is a free slot
OWNER, OWNER_START, GROUP, GROUP_START = range(4)
CELLS_PER_SLOT = 4


class ProcessState(NamedTuple):
    """What /proc/PID/stat says of a process that matters here."""

    state: str
    parent: int
    start: int  # clock ticks after boot: with the pid, names one process for good


def process_state(pid: int) -> ProcessState | None:
    """The process `pid` as /proc shows it, or None when there is none."""
    try:  # os.open and one read: open() adds an fstat, an ioctl and two lseeks to every run
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = os.read(fd, 4096)  # the whole line (~300 bytes) comes in one read
    except OSError:
        return None
    finally:
        os.close(fd)
    fields = text[text.rfind(b")") + 2:].split()
    try:
        return ProcessState(fields[0].decode("ascii"), int(fields[1]), int(fields[19]))
    except (IndexError, ValueError):
        return None


def start_time(pid: int) -> int:
    state = process_state(pid)
    return state.start if state is not None else 0


_own: dict[int, int] = {}
_pid = os.getpid()


def _forked() -> None:
    global _pid  # noqa: PLW0603 - one value per process, reset in the child of every os.fork
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def this_pid() -> int:
    """os.getpid() without its syscall (glibc does not cache it): kept by an at-fork hook."""
    return _pid


def own_start() -> int:
    """This process's start time (looked up once per process: a fork has a pid of its own)."""
    pid = _pid
    if pid not in _own:
        _own[pid] = start_time(pid)
    return _own[pid]


def owner_gone(pid: int, start: int) -> bool:
    """The serving process that took a slot no longer runs: it exited (a zombie not yet reaped
    counts as gone), or its pid now names another process (another start time)."""
    state = process_state(pid)
    if state is None:
        return not process_alive(pid)  # no /proc: the pid alone has to do
    return state.state in ("Z", "X") or (start != 0 and state.start != start)


def descends_from(pid: int, ancestor: int, depth: int = 8) -> bool:
    """Whether `ancestor` started `pid`, directly or through at most `depth` processes."""
    for _ in range(depth):
        state = process_state(pid)
        if state is None or state.parent <= 1:
            return False
        if state.parent == ancestor:
            return True
        pid = state.parent
    return False


def end_group(group: int, leader_start: int) -> None:
    """SIGKILL the script's process group, unless its leader's pid now names another process
    (a pid is not reused while a group of that id has members, so the old group is empty)."""
    if group <= 0:
        return
    state = process_state(group)
    if state is not None and leader_start != 0 and state.start != leader_start:
        return
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class ScriptSlots:
    """`count` slots in a SharedCells file that every process of the server maps. A slot is
    written under the file's lock when taken or reclaimed, and without it by its owner alone
    (assign, release), whose slot nobody else touches while it lives."""

    def __init__(self, path: str, count: int) -> None:
        self.count = count
        self.cells = SharedCells(path, count * CELLS_PER_SLOT)
        _TABLES.add(self)

    def _get(self, slot: int, cell: int) -> int:
        return self.cells.get(slot * CELLS_PER_SLOT + cell)

    def _set(self, slot: int, cell: int, value: int) -> None:
        self.cells.set(slot * CELLS_PER_SLOT + cell, value)

    def any_free(self) -> bool:
        """Whether acquire() may find a slot (no lock: a hint, to refuse early when all are busy).
        A free slot is looked for first: the owners of taken ones are asked /proc only when none is."""
        if self._first_free() is not None:
            return True
        me = _pid
        for slot in range(self.count):
            owner = self._get(slot, OWNER)
            if owner == 0 or (owner != me and owner_gone(owner, self._get(slot, OWNER_START))):
                return True
        return False

    def acquire(self) -> int | None:
        """A slot taken for this process, or None when every slot is busy. When none is free,
        the slots of serving processes that died are reclaimed first."""
        with self.cells.locked():
            slot = self._first_free()
            if slot is None and self._reclaim(lambda owner, start: owner_gone(owner, start)):
                slot = self._first_free()
            if slot is None:
                return None
            self._set(slot, GROUP, 0)
            self._set(slot, GROUP_START, 0)
            self._set(slot, OWNER_START, own_start())
            self._set(slot, OWNER, _pid)  # last: the slot is taken once this is written
            return slot

    def _first_free(self) -> int | None:
        return next((slot for slot in range(self.count) if self._get(slot, OWNER) == 0), None)

    def assign(self, slot: int, group: int) -> None:
        """The slot's script now runs as the process group `group` (its leader's pid)."""
        if self._get(slot, OWNER) == _pid:
            self._set(slot, GROUP_START, start_time(group))
            self._set(slot, GROUP, group)  # after its start time: a reader that sees one sees both

    def release(self, slot: int) -> None:
        """Free the slot (the script is ended): only this process's own."""
        if self._get(slot, OWNER) == _pid:
            self._set(slot, GROUP, 0)
            self._set(slot, OWNER, 0)

    def reclaim(self) -> int:
        """End the scripts of serving processes that died and free their slots; how many."""
        with self.cells.locked():
            return self._reclaim(lambda owner, start: owner_gone(owner, start))

    def end_at_exit(self) -> int:
        """When this process exits: end the scripts it runs, those of the serving processes it
        started, directly or through another (the top process of a server), and those of dead ones."""
        me = _pid

        def ending(owner: int, start: int) -> bool:
            return owner == me or owner_gone(owner, start) or descends_from(owner, me)

        with self.cells.locked():
            return self._reclaim(ending)

    def _reclaim(self, ends: Callable[[int, int], bool]) -> int:
        """Under the lock: end the group of every taken slot whose owner `ends`, and free it."""
        freed = 0
        for slot in range(self.count):
            owner = self._get(slot, OWNER)
            if owner == 0 or not ends(owner, self._get(slot, OWNER_START)):
                continue
            end_group(self._get(slot, GROUP), self._get(slot, GROUP_START))
            self._set(slot, GROUP, 0)
            self._set(slot, OWNER, 0)
            freed += 1
        return freed

    def busy(self) -> int:
        with self.cells.locked():
            return sum(1 for slot in range(self.count)
                       if self._get(slot, OWNER) != 0
                       and not owner_gone(self._get(slot, OWNER), self._get(slot, OWNER_START)))


# every slot table of this process's Apps (one, or a few with cgibox.compat, which drops old ones)
_TABLES: weakref.WeakSet[ScriptSlots] = weakref.WeakSet()


def reclaim_orphans() -> int:
    """For supervisors, when a serving process has died: end the scripts it left running and
    free their slots. One call, whatever front: threading's --processes supervisor, the forking
    front's parent, gunicorn's arbiter (child_exit)."""
    return sum(table.reclaim() for table in list(_TABLES))


@atexit.register
def _end_at_exit() -> None:
    """No script outlives the server: a process that exits ends what its own serving processes
    (and it) left running. Registered at import, before the runs' own gentler stop (core/cgi_run),
    so that it runs after it."""
    for table in list(_TABLES):
        try:
            table.end_at_exit()
        except Exception:  # noqa: BLE001,S110 - exiting: nothing to report to
            pass
