"""Request-duration histograms by route kind, laid out as integer cells of a stats row.

The router names each response's route kind; Stats adds one observation per finished request
to its own row, so the histograms are whole-server totals like every other counter.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

# what answered: a file (also 304, 206 and the slash redirect), a folder listing, a CGI script,
# the server's own /healthz, /stats and /metrics, or an error page (4xx/5xx of the core)
FILE, LISTING, CGI, INTERNAL, ERROR = "file", "listing", "cgi", "internal", "error"
ROUTE_KINDS = (FILE, LISTING, CGI, INTERNAL, ERROR)

# upper bounds in seconds (Prometheus' defaults, with 30 s for slow scripts); +Inf comes after
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BUCKETS = len(BOUNDS) + 1  # the last one is +Inf
_SUM = _BUCKETS  # the kind's total time, in microseconds (cells hold integers)
_PER_KIND = _BUCKETS + 1
CELLS = len(ROUTE_KINDS) * _PER_KIND


def increments(base: int, route_kind: str, seconds: float) -> dict[int, int]:
    """The cell increments (from the cell `base` of a row) that record one request."""
    if route_kind not in ROUTE_KINDS:
        route_kind = ERROR
    seconds = max(0.0, seconds)
    start = base + ROUTE_KINDS.index(route_kind) * _PER_KIND
    # bucket i holds BOUNDS[i-1] < seconds <= BOUNDS[i]: bisect_left puts a bound itself in its bucket
    return {start + bisect.bisect_left(BOUNDS, seconds): 1, start + _SUM: round(seconds * 1e6)}


def histograms(cells: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Read the CELLS summed cells back: per kind, cumulative (bound, count) pairs, count and sum."""
    out: dict[str, dict[str, Any]] = {}
    for k, kind in enumerate(ROUTE_KINDS):
        own = cells[k * _PER_KIND:(k + 1) * _PER_KIND]
        cumulative, running = [], 0
        for bound, count in zip((*BOUNDS, float("inf")), own[:_BUCKETS], strict=True):
            running += count
            cumulative.append((bound, running))
        out[kind] = {"buckets": cumulative, "count": running, "sum": own[_SUM] / 1e6}
    return out
