"""Server-wide traffic counters and uptime, shared by every process of one server."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from cgibox.core.shared import SharedCells

# cell layout of the stats file
_STARTED_AT = 0
_REQUESTS = 1
_BYTES_SENT = 2
_CGI_RUNS = 3
_STATUS_BASE = 4  # one cell for each status 100..599
_STATUS_COUNT = 500
CELLS = _STATUS_BASE + _STATUS_COUNT


class Stats:
    """Counters kept in a SharedCells file; the first process to open it sets the start time."""

    def __init__(self, path: str, started_at: float | None = None) -> None:
        self.cells = SharedCells(path, CELLS)
        with self.cells.locked():
            if started_at is not None or self.cells.get_float(_STARTED_AT) == 0.0:
                self.cells.set_float(_STARTED_AT, started_at or time.time())

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

    def record(self, status: int, bytes_sent: int, cgi_run: bool = False) -> None:
        increments = {_REQUESTS: 1, _BYTES_SENT: bytes_sent}
        if 100 <= status <= 599:
            increments[_STATUS_BASE + status - 100] = 1
        if cgi_run:
            increments[_CGI_RUNS] = 1
        self.cells.add_many(increments)

    def snapshot(self) -> dict:
        values = self.cells.snapshot(0, CELLS)
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
        }
