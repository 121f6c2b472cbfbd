"""/metrics: one stats snapshot presented to prometheus_client, which writes the text format.

Imported on the first scrape rather than at start-up (App.metrics): prometheus_client adds about
1.2 MB to every serving process, most of which are never scraped.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from cgibox.core.stats import Stats


def exposition(document: dict[str, Any], stats: Stats) -> str:
    """The Prometheus text format of `document` (App.stats_document) and the stats histograms."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatsCollector(document))
    registry.register(_FleetCollector(document, stats))
    return generate_latest(registry).decode("utf-8")


class _StatsCollector:
    """Presents one stats snapshot to prometheus_client, which writes the text format."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def collect(self) -> Iterator[Metric]:
        doc = self.document
        info = GaugeMetricFamily("cgibox_info", "cgibox version and front", labels=["version", "front"])
        info.add_metric([doc["version"], doc["front"]], 1)
        yield info
        yield GaugeMetricFamily("cgibox_uptime_seconds", "Seconds since the server started",
                                value=doc["uptime_seconds"])
        yield CounterMetricFamily("cgibox_requests", "Requests answered", value=doc["requests_total"])
        responses = CounterMetricFamily("cgibox_responses", "Responses by status code", labels=["code"])
        for code, count in sorted(doc["responses"].items()):
            responses.add_metric([code], count)
        yield responses
        yield CounterMetricFamily("cgibox_sent_bytes", "Body bytes sent", value=doc["bytes_sent"])
        yield CounterMetricFamily("cgibox_cgi_runs", "CGI scripts run", value=doc["cgi_runs"])


class _FleetCollector:
    """What a fleet's Prometheus needs beyond the counters: build info, start time and the
    request-duration histograms by route kind (the `instance` label comes from the scrape)."""

    def __init__(self, document: dict[str, Any], stats: Stats) -> None:
        self.document = document
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        doc = self.document
        build = GaugeMetricFamily("cgibox_build_info", "cgibox build: version, front and Python",
                                  labels=["version", "front", "python"])
        build.add_metric([doc["version"], doc["front"], platform.python_version()], 1)
        yield build
        yield GaugeMetricFamily("process_start_time_seconds",
                                "Start time of the server (its first process) in Unix seconds",
                                value=self.stats.started_at)
        histogram = HistogramMetricFamily("cgibox_request_duration_seconds",
                                          "Seconds from a request's arrival to its response's end, by route",
                                          labels=["route"])
        for kind, data in self.stats.duration_histograms().items():
            buckets = [(_go_float(bound), count) for bound, count in data["buckets"]]
            histogram.add_metric([kind], buckets, sum_value=data["sum"])
        yield histogram


def _go_float(value: float) -> str:
    """A bucket bound as Prometheus writes it (`+Inf`, `0.005`): prometheus_client's own rule."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text
