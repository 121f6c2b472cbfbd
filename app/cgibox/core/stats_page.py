"""The /stats page as HTML: the counters of one stats snapshot and the requests-per-minute chart
(an inline SVG drawn by stats.html from the bars computed here)."""

from __future__ import annotations

import os
import time
from typing import Any

from cgibox.core.templates import Templates


def render_stats_page(templates: Templates, document: dict[str, Any], started_at: float,
                      fleet_url: str | None) -> str:
    """stats.html for `document` (App.stats_document), naming this instance and the fleet's page."""
    return templates.render("stats.html", stats=document, responses=sorted(document["responses"].items()),
                            started=started_at,
                            chart=minute_chart(document.get("requests_per_minute", []), time.time()),
                            instance=os.uname().nodename, fleet_url=fleet_url)


# the /stats chart: one bar per minute in a viewBox this wide and high (the SVG scales to its box)
CHART_WIDTH, CHART_HEIGHT, CHART_TOP = 600, 120, 14


def minute_chart(series: list[int], now: float) -> dict[str, Any]:
    """Bars of requests per minute (oldest first) for stats.html, with each bar's minute in UTC."""
    peak = max(series, default=0)
    slot = CHART_WIDTH / max(1, len(series))
    this_minute = int(now // 60) * 60
    bars = []
    for index, count in enumerate(series):
        height = 0.0 if not peak else max(1.5, (CHART_HEIGHT - CHART_TOP) * count / peak) if count else 0.0
        minute = this_minute - (len(series) - 1 - index) * 60
        bars.append({"x": round(index * slot + 1, 1), "width": round(slot - 2, 1),
                     "y": round(CHART_HEIGHT - height, 1), "height": round(height, 1), "count": count,
                     "minute": time.strftime("%H:%M", time.gmtime(minute))})
    return {"bars": bars, "peak": peak, "total": sum(series), "width": CHART_WIDTH, "height": CHART_HEIGHT}
