"""core/shared.py and core/stats.py: counters shared by every process of one server."""

from __future__ import annotations

import os
import threading
import time

from cgibox.core.shared import SharedCells
from cgibox.core.stats import Stats
from cgibox.core.templates import human_size, uptime_words


def wait_child(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_cells_add_and_read(tmp_path):
    cells = SharedCells(str(tmp_path / "c"), 4)
    cells.add_many({0: 2, 3: 5})
    cells.add_many({0: 1})
    assert [cells.get(i) for i in range(4)] == [3, 0, 0, 5]
    cells.set_float(1, 2.5)
    assert cells.get_float(1) == 2.5


def test_cells_are_shared_with_a_forked_child(tmp_path):
    cells = SharedCells(str(tmp_path / "c"), 2)
    cells.add_many({0: 1})
    pid = os.fork()
    if pid == 0:  # the child: add, then leave without running any test machinery
        code = 1
        try:
            for _ in range(100):
                cells.add_many({0: 1, 1: 2})
            code = 0
        finally:
            os._exit(code)
    assert wait_child(pid) == 0
    assert [cells.get(i) for i in range(2)] == [101, 200]


def test_concurrent_children_and_threads_lose_no_update(tmp_path):
    cells = SharedCells(str(tmp_path / "c"), 1)
    children, rounds = 4, 500

    def add_rounds():
        for _ in range(rounds):
            cells.add_many({0: 1})

    pids = []
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                add_rounds()
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    threads = [threading.Thread(target=add_rounds) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [wait_child(pid) for pid in pids] == [0] * children
    assert cells.get(0) == (children + 2) * rounds


def test_a_second_opener_sees_the_same_cells(tmp_path):
    first = SharedCells(str(tmp_path / "c"), 3)
    first.add_many({2: 7})
    second = SharedCells(str(tmp_path / "c"), 3)
    assert second.get(2) == 7


def test_stats_record_and_snapshot(tmp_path):
    stats = Stats.create(str(tmp_path / "stats"))
    stats.record(200, 100)
    stats.record(200, 50)
    stats.record(404, 10)
    stats.record(200, 0, cgi_run=True)
    stats.record(999, 1)  # an odd status counts as a request, not as a response code
    snap = stats.snapshot()
    assert snap["requests_total"] == 5
    assert snap["responses"] == {"200": 3, "404": 1}
    assert snap["bytes_sent"] == 161
    assert snap["cgi_runs"] == 1
    assert 0 <= snap["uptime_seconds"] < 60
    assert snap["started_at"].endswith("+00:00")


def test_stats_from_a_forked_child_and_uptime_from_the_creator(tmp_path):
    stats = Stats.create(str(tmp_path / "stats"))
    started = stats.started_at
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            time.sleep(0.01)
            child_view = Stats(str(tmp_path / "stats"))  # a worker opening the same file
            stats.record(200, 5)
            child_view.record(201, 5)
            code = 0 if child_view.started_at == started else 3
        finally:
            os._exit(code)
    assert wait_child(pid) == 0
    snap = stats.snapshot()
    assert snap["requests_total"] == 2 and snap["responses"] == {"200": 1, "201": 1}
    assert stats.started_at == started


def test_create_starts_afresh(tmp_path):
    path = str(tmp_path / "stats")
    Stats.create(path).record(200, 1)
    assert Stats.create(path).snapshot()["requests_total"] == 0


def test_human_size_and_uptime_words():
    assert human_size(0) == "0 B"
    assert human_size(1023) == "1023 B"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(5 * 1024**3) == "5.0 GiB"
    assert uptime_words(0) == "0 seconds"
    assert uptime_words(1) == "1 second"
    assert uptime_words(3725) == "1 hour, 2 minutes, 5 seconds"
    assert uptime_words(90061) == "1 day, 1 hour, 1 minute, 1 second"


def test_rows_of_exited_processes_are_reused_with_their_counts(tmp_path):
    """A process per connection (the forking front) must neither lose counts nor run out of rows."""
    stats = Stats.create(str(tmp_path / "stats"))
    children = 300  # more than there are rows
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            try:
                stats.record(200, 10)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    stats.record(404, 1)
    snapshot = stats.snapshot()
    assert snapshot["requests_total"] == children + 1
    assert snapshot["responses"] == {"200": children, "404": 1}
    assert snapshot["bytes_sent"] == children * 10 + 1
    assert stats.cells.get(1) <= 3  # rows in use: the shared row, one child row reused, the parent's


# -- requests per minute -------------------------------------------------------------------------

class FakeClock:
    """time.time() for core.stats, moved by hand: minutes pass without waiting for them."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_requests_per_minute_ring(tmp_path, monkeypatch):
    clock = FakeClock(1_800_000_000.0)  # on a minute boundary
    monkeypatch.setattr("cgibox.core.stats.time.time", clock)
    stats = Stats.create(str(tmp_path / "stats"))
    for _ in range(3):
        stats.record(200, 1)
    clock.now += 60
    stats.record(404, 1)
    series = stats.snapshot()["requests_per_minute"]
    assert len(series) == 60 and series[-2:] == [3, 1] and sum(series) == 4  # oldest first
    clock.now += 59 * 60  # the first minute is now 60 minutes old: out of the window
    assert stats.per_minute()[0] == 1 and sum(stats.per_minute()) == 1
    stats.record(200, 1)  # reuses the ring cell of the minute an hour ago: emptied first
    assert stats.per_minute()[-1] == 1 and sum(stats.per_minute()) == 2
    clock.now += 3600
    assert stats.per_minute() == [0] * 60


def test_requests_per_minute_from_forked_children(tmp_path):
    stats = Stats.create(str(tmp_path / "stats"))
    pids = []
    for _ in range(5):
        pid = os.fork()
        if pid == 0:
            try:
                for _ in range(4):
                    stats.record(200, 1)
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    stats.record(200, 1)
    series = stats.per_minute()
    # a minute may turn over while the children count: the last two cells hold everything
    assert sum(series[-2:]) == sum(series) == 21
