"""core/durations.py and Stats' duration histograms: one observation per request, by route kind,
summed over every process that shares the stats file."""

from __future__ import annotations

import os

from cgibox.core import durations
from cgibox.core.stats import Stats


def test_a_bound_falls_in_its_own_bucket_and_sums_are_microseconds():
    cells = [0] * durations.CELLS
    for kind, seconds in ((durations.FILE, 0.005), (durations.FILE, 0.0051), (durations.CGI, 40.0),
                          (durations.LISTING, -1.0)):
        for index, amount in durations.increments(0, kind, seconds).items():
            cells[index] += amount
    histograms = durations.histograms(cells)
    assert set(histograms) == set(durations.ROUTE_KINDS)
    file = dict(histograms["file"]["buckets"])
    assert file[0.005] == 1 and file[0.01] == 2 and file[float("inf")] == 2
    assert histograms["file"]["count"] == 2 and abs(histograms["file"]["sum"] - 0.0101) < 1e-9
    cgi = dict(histograms["cgi"]["buckets"])
    assert cgi[30.0] == 0 and cgi[float("inf")] == 1 and histograms["cgi"]["sum"] == 40.0
    assert dict(histograms["listing"]["buckets"])[0.005] == 1  # a clock step back counts as 0 s
    assert histograms["error"]["count"] == histograms["internal"]["count"] == 0


def test_an_unknown_kind_counts_as_an_error():
    cells = [0] * durations.CELLS
    for index, amount in durations.increments(0, "teapot", 0.2).items():
        cells[index] += amount
    assert durations.histograms(cells)["error"]["count"] == 1


def test_stats_histograms_add_up_across_processes(tmp_path):
    stats = Stats.create(str(tmp_path / "stats"))
    stats.record(200, 10, route_kind=durations.FILE, duration=0.002)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            Stats(str(tmp_path / "stats")).record(200, 1, cgi_run=True, route_kind=durations.CGI,
                                                  duration=0.3)
            stats.record(404, 1, route_kind=durations.ERROR, duration=0.001)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    stats.record(400, 5)  # an early error of a front: counted, not timed
    histograms = stats.duration_histograms()
    assert {kind: h["count"] for kind, h in histograms.items()} == {
        "file": 1, "listing": 0, "cgi": 1, "internal": 0, "error": 1}
    assert dict(histograms["cgi"]["buckets"])[0.25] == 0 and dict(histograms["cgi"]["buckets"])[0.5] == 1
    snapshot = stats.snapshot()
    assert snapshot["requests_total"] == 4 and snapshot["cgi_runs"] == 1
    assert snapshot["responses"] == {"200": 2, "400": 1, "404": 1}  # the counters beside are untouched
