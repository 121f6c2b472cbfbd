"""Counters in a small file-backed shared memory map, so that every process of one server
(forked children, gunicorn workers) adds to the same numbers.

Written by hand: prometheus_client's multiprocess mode keeps one file per process id, which the
forking front (a process per connection) would turn into thousands of files. Here every update
is a few integer additions under a thread lock plus a POSIX record lock on the file.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

_CELL = struct.Struct("<q")
_FLOAT = struct.Struct("<d")


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (ours or not): cells often name their owner."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SharedCells:
    """`count` signed 64-bit cells in a file mapped MAP_SHARED; `add` and `read` are atomic."""

    def __init__(self, path: str, count: int) -> None:
        self.path = path
        self.count = count
        size = count * _CELL.size
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size < size:
                with self._file_lock(fd):
                    if os.fstat(fd).st_size < size:
                        os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        # the cells as native 64-bit integers, for add_many: indexing a view costs a fraction of
        # struct.unpack_from + pack_into (the file's layout is little-endian, as `_CELL` says)
        self._view = memoryview(self._map).cast("q") if sys.byteorder == "little" else None
        self._thread_lock = threading.Lock()
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        # a lock held by another thread at fork time would never be released in the child
        self._thread_lock = threading.Lock()

    @staticmethod
    @contextmanager
    def _file_lock(fd: int) -> Iterator[None]:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive against every thread of every process sharing the file."""
        with self._thread_lock, self._file_lock(self._fd):
            yield

    def get(self, index: int) -> int:
        value: int = _CELL.unpack_from(self._map, index * _CELL.size)[0]
        return value

    def set(self, index: int, value: int) -> None:
        _CELL.pack_into(self._map, index * _CELL.size, value)

    def get_float(self, index: int) -> float:
        value: float = _FLOAT.unpack_from(self._map, index * _CELL.size)[0]
        return value

    def set_float(self, index: int, value: float) -> None:
        _FLOAT.pack_into(self._map, index * _CELL.size, value)

    def row(self, start: int, layout: struct.Struct) -> tuple[int, ...]:
        """Cells from `start` read at once with `layout` (no lock: a row is written by one process)."""
        return layout.unpack_from(self._map, start * _CELL.size)

    def add_many(self, increments: dict[int, int], exclusive: bool = True) -> None:
        """Add to several cells at once. `exclusive=False` skips the lock, for cells that only
        the calling process (and one thread of it at a time) ever writes."""
        view = self._view
        with self.locked() if exclusive else nullcontext():
            if view is None:
                for index, amount in increments.items():
                    self.set(index, self.get(index) + amount)
                return
            for index, amount in increments.items():
                view[index] += amount
