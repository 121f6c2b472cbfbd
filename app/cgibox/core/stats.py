"""Server-wide traffic counters and uptime, shared by every process of one server.

Each process adds to a row of its own in a SharedCells file, so counting a request takes no
system call and no lock shared with other processes; a reader sums the rows. A row whose process
has exited keeps its counts and is taken over, counts included, by the next process that needs one.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

from cgibox.core import durations
from cgibox.core.shared import SharedCells, process_alive

# the file: a header, then ROWS rows of ROW cells
_STARTED_AT = 0  # float: when the server started
_ROWS_USED = 1  # rows 0..n-1 are in use (readers sum these)
_HEADER = 2
# a row: its owner's pid, then the counters
_OWNER = 0
_REQUESTS = 1
_BYTES_SENT = 2
_CGI_RUNS = 3
_STATUS_BASE = 4  # one cell for each status 100..599
_STATUS_COUNT = 500
# requests per minute over the last hour: a ring of cells, each beside the minute it counts
_MINUTES = 60
_MINUTE_COUNTS = _STATUS_BASE + _STATUS_COUNT
_MINUTE_STAMPS = _MINUTE_COUNTS + _MINUTES  # minutes since the epoch
# request-duration histograms by route kind (core/durations.py lays out these cells)
_DURATIONS_BASE = _MINUTE_STAMPS + _MINUTES
_DURATIONS_END = _DURATIONS_BASE + durations.CELLS
ROW = _DURATIONS_END
# row 0 is shared (updated under the file lock) by processes that find every other row taken
ROWS = 256
CELLS = _HEADER + ROWS * ROW
_ROW_FORMAT = struct.Struct(f"<{ROW}q")


class Stats:
    """Counters kept in a SharedCells file; the first process to open it sets the start time."""

    def __init__(self, path: str, started_at: float | None = None) -> None:
        self.cells = SharedCells(path, CELLS)
        with self.cells.locked():
            if started_at is not None or self.cells.get_float(_STARTED_AT) == 0.0:
                self.cells.set_float(_STARTED_AT, started_at or time.time())
        self._row: int | None = None  # this process's row, claimed on its first count
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a lock held by another thread at fork time stays held
        self._row = None  # a child counts in a row of its own

    @classmethod
    def create(cls, path: str) -> Stats:
        """A fresh store for a new server: any old file at `path` is replaced."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return cls(path, started_at=time.time())

    @property
    def started_at(self) -> float:
        return self.cells.get_float(_STARTED_AT)

    def _claim_row(self, pid: int) -> int:
        """A row for this process: a free or orphaned one, a new one, or else the shared row 0."""
        cells = self.cells
        with cells.locked():
            used = max(1, cells.get(_ROWS_USED))  # row 0 always counts
            for row in range(1, used):
                owner = cells.get(_HEADER + row * ROW + _OWNER)
                # free, left by an exited process, or left by an earlier process with our (reused) pid
                if owner in (0, pid) or not process_alive(owner):
                    break
            else:
                row = used if used < ROWS else 0
                if row:
                    cells.set(_ROWS_USED, used + 1)
            if row:
                cells.set(_HEADER + row * ROW + _OWNER, pid)
        return row

    def record(self, status: int, bytes_sent: int, cgi_run: bool = False,
               route_kind: str | None = None, duration: float | None = None) -> None:
        with self._lock:
            if self._row is None:
                self._row = self._claim_row(os.getpid())
            base = _HEADER + self._row * ROW
            increments = {base + _REQUESTS: 1, base + _BYTES_SENT: bytes_sent}
            if 100 <= status <= 599:
                increments[base + _STATUS_BASE + status - 100] = 1
            if cgi_run:
                increments[base + _CGI_RUNS] = 1
            increments[base + _MINUTE_COUNTS + self._minute_cell(base)] = 1
            if route_kind is not None and duration is not None:
                increments.update(durations.increments(base + _DURATIONS_BASE, route_kind, duration))
            # row 0 is shared with other processes; every other row is this process's alone
            self.cells.add_many(increments, exclusive=self._row == 0)

    def _minute_cell(self, base: int) -> int:
        """This minute's cell of the row at `base`, emptied first if it still counts an older minute.
        Only ever moves a cell forward, so a late writer cannot wipe a newer minute."""
        minute = int(time.time() // 60)
        cell = minute % _MINUTES
        stamp = base + _MINUTE_STAMPS + cell
        if self.cells.get(stamp) < minute:
            with self.cells.locked() if self._row == 0 else nullcontext():
                if self.cells.get(stamp) < minute:
                    # count first, then stamp: a reader never sees the new minute with old counts
                    self.cells.set(base + _MINUTE_COUNTS + cell, 0)
                    self.cells.set(stamp, minute)
        return cell

    def per_minute(self, now: float | None = None) -> list[int]:
        """Requests in each of the last 60 minutes, oldest first, the current minute last."""
        minute = int((time.time() if now is None else now) // 60)
        series = [0] * _MINUTES
        used = max(1, self.cells.get(_ROWS_USED))
        for row in range(used):
            values = self.cells.row(_HEADER + row * ROW, _ROW_FORMAT)
            for cell in range(_MINUTES):
                age = minute - values[_MINUTE_STAMPS + cell]
                if 0 <= age < _MINUTES:
                    series[_MINUTES - 1 - age] += values[_MINUTE_COUNTS + cell]
        return series

    def totals(self) -> list[int]:
        """Every counter summed over the rows in use (the owner column is meaningless here)."""
        used = max(1, self.cells.get(_ROWS_USED))
        rows = [self.cells.row(_HEADER + row * ROW, _ROW_FORMAT) for row in range(used)]
        return [sum(column) for column in zip(*rows, strict=True)]

    def duration_histograms(self, values: list[int] | None = None) -> dict[str, dict[str, Any]]:
        """The request-duration histograms by route kind, summed over every process."""
        values = self.totals() if values is None else values
        return durations.histograms(values[_DURATIONS_BASE:_DURATIONS_END])

    def snapshot(self) -> dict[str, Any]:
        values = self.totals()
        started_at = self.started_at
        now = time.time()
        responses = {
            str(100 + i): count
            for i, count in enumerate(values[_STATUS_BASE:_STATUS_BASE + _STATUS_COUNT]) if count
        }
        return {
            "uptime_seconds": round(max(0.0, now - started_at), 3),
            "started_at": datetime.fromtimestamp(started_at, UTC).isoformat(timespec="seconds"),
            "requests_total": values[_REQUESTS],
            "responses": responses,
            "bytes_sent": values[_BYTES_SENT],
            "cgi_runs": values[_CGI_RUNS],
            "requests_per_minute": self.per_minute(now),
        }
