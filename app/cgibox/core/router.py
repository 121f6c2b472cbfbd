"""App.handle(request) -> Response: the single entry point of the core, and App.finish, which
every front calls once a response is over (access log line and counters)."""

from __future__ import annotations

import json
import os
import time
import traceback

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from cgibox import __version__
from cgibox.config import Config
from cgibox.core import wire
from cgibox.core.accesslog import AccessLog, server_log
from cgibox.core.cgi import CGIRunner
from cgibox.core.compress import Compressor
from cgibox.core.errors import HTTPError, error_response, warm_error_pages
from cgibox.core.paths import decode_path
from cgibox.core.request import Request
from cgibox.core.response import Response
from cgibox.core.static import StaticFiles
from cgibox.core.stats import Stats
from cgibox.core.templates import Templates

CGI_PREFIX = "/cgi-bin/"
# paths the server itself answers; they shadow files of the same name in the root
RESERVED = ("/healthz", "/stats", "/metrics")


class App:
    """One configured cgibox application, shared by every connection of every front."""

    def __init__(self, config: Config, stats: Stats, front: str) -> None:
        self.config = config
        self.front = front
        self.root = os.path.realpath(config.root)
        self.cgi_dir = os.path.realpath(config.cgi_dir)
        self.templates = Templates(config.templates)
        self.stats = stats
        self.access_log = AccessLog(config.log_format)
        self.static = StaticFiles(self.root, self.templates, exclude=(self.cgi_dir,))
        self.cgi = CGIRunner(self)
        self.compressor = Compressor(compress_files=config.compress_files)
        warm_error_pages(self.templates)

    # -- handling ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises (errors become templated pages)."""
        try:
            wire.check_limits(request)
            response = self.route(request)
        except HTTPError as error:
            response = self.error(request, error.status, error.detail, error.headers,
                                  error.close_connection)
        except Exception:  # noqa: BLE001 - a bug answers 500, it never takes the server down
            server_log(f"cgibox: error handling {request.method} {request.target}:\n"
                       + traceback.format_exc().rstrip())
            response = self.error(request, 500)
        # before HEAD drops the body, so HEAD gets GET's headers (Content-Length of the encoded body)
        try:
            response = self.compressor.apply(request, response)
        except Exception:  # noqa: BLE001 - a failed encoding sends the body as it is
            server_log(f"cgibox: error compressing {request.method} {request.target}:\n"
                       + traceback.format_exc().rstrip())
        if request.method == "HEAD":
            self._drop_body(response)
        return response

    def error(self, request: Request | None, status: int, detail: str = "",
              headers: list[tuple[str, str]] | None = None, close_connection: bool = False) -> Response:
        return error_response(self.templates, request, status, detail, headers, close_connection)

    @staticmethod
    def _drop_body(response: Response) -> None:
        """HEAD: same headers as GET, no body; the body's resources are released at once."""
        body = response.body
        response.body = b""
        response.omit_body = True
        close = getattr(body, "close", None)
        if close is not None and not isinstance(body, bytes):
            try:
                close()
            except Exception:  # noqa: BLE001
                pass

    def route(self, request: Request) -> Response:
        decoded = decode_path(request.raw_path)
        if decoded is None:
            raise HTTPError(404)
        if decoded in RESERVED:
            if request.method not in ("GET", "HEAD"):
                raise HTTPError(405, headers=[("Allow", "GET, HEAD")])
            if decoded == "/healthz":
                return self.text(200, "ok\n", "text/plain; charset=utf-8")
            if decoded == "/stats":
                return self.stats_page(request)
            return self.metrics()
        if decoded == "/cgi-bin" or decoded.startswith(CGI_PREFIX):
            return self.cgi.run(request, decoded)
        return self.static.serve(request, decoded)

    @staticmethod
    def text(status: int, body: str, content_type: str) -> Response:
        data = body.encode("utf-8")
        return Response(status, [("Content-Type", content_type), ("Content-Length", str(len(data))),
                                 ("Cache-Control", "no-store")], data)

    # -- /stats and /metrics -----------------------------------------------------------------

    def stats_document(self) -> dict:
        document = self.stats.snapshot()
        document["front"] = self.front
        document["version"] = __version__
        return document

    def stats_page(self, request: Request) -> Response:
        document = self.stats_document()
        if request.wants_json:
            response = self.text(200, json.dumps(document), "application/json")
        else:
            html = self.templates.render("stats.html", stats=document,
                                         responses=sorted(document["responses"].items()))
            response = self.text(200, html, "text/html; charset=utf-8")
        response.compress = "page"
        return response

    def metrics(self) -> Response:
        document = self.stats_document()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_StatsCollector(document))
        body = generate_latest(registry).decode("utf-8")
        return self.text(200, body, "text/plain; version=0.0.4; charset=utf-8")

    # -- after the response ------------------------------------------------------------------

    def finish(self, request: Request | None, status: int, bytes_sent: int, *,
               request_line: str | None = None, remote_addr: str | None = None,
               cgi_run: bool = False) -> None:
        """Count and log one finished exchange; `bytes_sent` counts body bytes actually written."""
        self.stats.record(status, bytes_sent, cgi_run)
        if request is not None:
            line = request_line or f"{request.method} {request.target} {request.protocol}"
            self.access_log.log(
                remote_addr=request.remote_addr, request_line=line, status=status,
                bytes_sent=bytes_sent, referer=request.headers.get("referer"),
                user_agent=request.headers.get("user-agent"),
                duration=time.time() - request.received_at, method=request.method,
                path=request.raw_path)
        else:
            self.access_log.log(remote_addr=remote_addr or "-", request_line=request_line or "-",
                                status=status, bytes_sent=bytes_sent, referer=None, user_agent=None,
                                duration=0.0)


class _StatsCollector:
    """Presents one stats snapshot to prometheus_client, which writes the text format."""

    def __init__(self, document: dict) -> None:
        self.document = document

    def collect(self):
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
