"""App.handle(request) -> Response: the single entry point of the core, and App.finish, which
every front calls once a response is over (access log line and counters)."""

from __future__ import annotations

import json
import os
import stat
import time
import traceback
from typing import TYPE_CHECKING, Any

from cgibox import __version__
from cgibox.config import Config
from cgibox.core import conditional, wire, writes_page
from cgibox.core.access import (
    ALLOW,
    LOGIN,
    READ,
    RUN,
    WRITE,
    WRITE_METHODS,
    Access,
    PrivateRule,
    Rules,
    WriteRule,
)
from cgibox.core.accesslog import AccessLog, server_log
from cgibox.core.archive import Archives
from cgibox.core.auth import Auth
from cgibox.core.cgi import MAX_LOCAL_REDIRECTS, CGIRunner, LocalRedirect
from cgibox.core.compress import Compressor
from cgibox.core.durations import CGI, ERROR, FILE, INTERNAL, LISTING
from cgibox.core.errors import KNOWN_METHODS, HTTPError, error_response, refuse_method, warm_error_pages
from cgibox.core.extra_headers import apply_extra_headers
from cgibox.core.favicon import favicon_ico
from cgibox.core.paths import decode_path, resolve, stat_error_status
from cgibox.core.ready import ReadyResponses, ready_key
from cgibox.core.request import Request, request_problem
from cgibox.core.response import Response
from cgibox.core.script_mounts import OperatorRunner, mount_runner, needs_own_runner
from cgibox.core.static import StaticFiles
from cgibox.core.stats import Stats, shared_path
from cgibox.core.stats_page import render_stats_page
from cgibox.core.templates import Templates
from cgibox.core.writes import Writes, is_write
from cgibox.core.writes_page import WriteControls

if TYPE_CHECKING:
    from cgibox.core.webdav import WebDAV

CGI_ROOT = "/cgi-bin"
# paths the server itself answers; they shadow files of the same name in the root
RESERVED = ("/healthz", "/stats", "/metrics")
# served from the root when it has one, else the built-in icon (browsers ask for it on every site)
FAVICON = "/favicon.ico"


class App:
    """One configured cgibox application, shared by every connection of every front."""

    def __init__(self, config: Config, stats: Stats, front: str) -> None:
        self.config = config
        self.front = front
        self.root = os.path.realpath(config.root)
        # None: no scripts at /cgi-bin (--cgi-dir none, or no ./cgi-bin by default)
        self.cgi_dir = os.path.realpath(config.cgi_dir) if config.cgi_dir is not None else None
        self.cgi_mounts = cgi_mounts(config)
        self.templates = Templates(config.templates, config.extra_templates)
        self.stats = stats
        self.access_log = AccessLog(config.log_format)
        # no script folder is ever served as files, whether its scripts run or not
        self.compressor = Compressor(compress_files=config.compress_files)
        self.static = StaticFiles(self.root, self.templates,
                                  exclude=tuple(folder for _, folder in self.cgi_mounts),
                                  index_pages=config.index_pages, content_types=dict(config.content_types),
                                  readme=not config.no_readme, compressor=self.compressor)
        # cgibox's own folders are the operator's (symlinks in them run); cgibox.compat's sit
        # under the root and keep its confinement
        runner = OperatorRunner if config.cgi_mounts is None else CGIRunner
        self.cgi = runner(config, self.root, self.cgi_dir, shared_path(stats, "slots"), self.error)
        # every prefix that runs something, programs included, shortest first; and the runners
        # of the mounts with a program or settings of their own
        self.script_mounts = script_mounts(config, self.cgi_mounts)
        self.runners = {mount.path: mount_runner(self.cgi, mount)
                        for mount in config.cgi_mount if needs_own_runner(mount)}
        warm_error_pages(self.templates)
        self.auth = self._auth(config, stats)
        self.access = Access(access_rules(config, self.script_mounts), self.auth)
        # the largest body any route takes (--max-body, a mount's own max_body, or with --write
        # no limit there): the fronts' wire limit; each route holds its own (a script's runner its
        # mount's max_body, an upload --max-upload a file)
        self.body_limit = writes_body_limit(config, max((config.max_body, *(
            mount.max_body for mount in config.cgi_mount if mount.max_body is not None))))
        self.archives = Archives(self.root, self.static.exclude,
                                 lambda request, path: self.access.answer(request, READ, path) == ALLOW)
        self.writes = Writes(self.root, self.static.exclude, config.max_upload, self._check_write)
        self.write_controls = WriteControls(self.templates, self._write_offer, self._check_write,
                                            config.max_upload)
        self.webdav = self._webdav(config, stats) if config.webdav else None
        self.ready = ReadyResponses()

    @staticmethod
    def _auth(config: Config, stats: Stats) -> Auth | None:
        """The login step (--auth-file); its failure table sits beside the shared stats file."""
        if config.auth_file is None:
            return None
        return Auth(str(config.auth_file), shared_path(stats, "logins"))

    def _webdav(self, config: Config, stats: Stats) -> WebDAV:
        """--webdav; its lock table sits beside the shared stats file, like the login throttle's."""
        from cgibox.core.dav_locks import LockTable
        from cgibox.core.webdav import WebDAV

        return WebDAV(self.root, self.static, self.static.exclude, LockTable(shared_path(stats, "locks")),
                      self.access, self.writes)

    def load_on_demand_modules(self) -> None:
        """Import now what a serving process otherwise imports on first use (prometheus_client
        for /metrics, markdown-it-py for a README.md, bcrypt for a login), to save the memory
        of the many processes that never use them. For a front whose children are forked per
        connection and exit: loaded once in the parent, not again in every child that needs it."""
        from cgibox.core import metrics  # noqa: F401
        from cgibox.core.readme import markdown

        if not self.config.no_readme:
            markdown()
        if self.auth is not None:
            import bcrypt  # noqa: F401

    # -- handling ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises (errors become templated pages). A plain request
        whose answer was recorded and still holds gets it from memory (core/ready.py)."""
        key = ready_key(request)
        if key is not None:
            ready = self.ready.replay(key, request)
            if ready is not None:
                return ready
        response = self._handle(request)
        if key is not None:
            self.ready.record(key, request, response, self._static_only, self.static.missing_check)
        return response

    def ready_response(self, request: Request) -> Response | None:
        """The recorded answer to `request` when it is a plain one whose answer still holds, else
        None (App.handle then answers it the full way). Fronts may write it from where they
        are (the loop), with the same framing, App.finish and close as any Response."""
        key = ready_key(request)
        return None if key is None else self.ready.replay(key, request)

    def _static_only(self, decoded: str | None) -> bool:
        """Whether only core.static answers a plain GET/HEAD of `decoded` (no query), whoever
        asks: no service route, script, WebDAV or built-in icon, and no login wanted there."""
        if decoded is None:
            return True  # 404 before any route
        config = self.config
        if self.webdav is not None or (decoded in RESERVED and config.service_routes) or \
                (decoded == FAVICON and config.builtin_favicon) or self.in_place_script(decoded) is not None:
            return False
        if config.run_scripts and self.cgi_mount_for(decoded) is not None:
            return False
        return self.access.rules.answer(READ, decoded, "", None) == ALLOW

    def _handle(self, request: Request) -> Response:
        try:
            wire.check_limits(request)
            problem = request_problem(request)
            if problem is not None:
                raise HTTPError(400, problem, close_connection=True)
            response = self.route(request)
        except HTTPError as error:
            response = self.error(request, error.status, error.detail, error.headers,
                                  error.close_connection)
            response.route_kind = ERROR
        except Exception:  # noqa: BLE001 - a bug answers 500, it never takes the server down
            server_log(f"cgibox: error handling {request.method} {request.target}:\n"
                       + traceback.format_exc().rstrip())
            response = self.error(request, 500)
            response.route_kind = ERROR
        # before HEAD drops the body, so HEAD gets GET's headers (Content-Length of the encoded body)
        try:
            response = self.compressor.apply(request, response)
        except Exception:  # noqa: BLE001 - a failed encoding sends the body as it is
            server_log(f"cgibox: error compressing {request.method} {request.target}:\n"
                       + traceback.format_exc().rstrip())
        if request.method == "HEAD":
            self._drop_body(response)
        apply_extra_headers(response, self.config.header)
        return response

    def error(self, request: Request | None, status: int, detail: str = "",
              headers: list[tuple[str, str]] | None = None, close_connection: bool = False) -> Response:
        response = error_response(self.templates, request, status, detail, headers, close_connection)
        apply_extra_headers(response, self.config.header)  # early errors of the fronts come here
        return response

    def early_answer(self, status: int, detail: str = "") -> tuple[bytes, int]:
        """What every front sends for a head it could not turn into a Request (bad, late, TLS on
        the plain port): the templated page with --header's fields, framed; then it closes.
        Returns (bytes to send, body length for the access log)."""
        return wire.frame_early(self.error(None, status, detail, close_connection=True))

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
        """The response, its route kind set: what answered, for the duration histograms. A
        script's local redirect is routed (and checked) again, at most MAX_LOCAL_REDIRECTS times."""
        for redirects in range(MAX_LOCAL_REDIRECTS + 1):
            answer, kind = self._dispatch(request)
            if not isinstance(answer, LocalRedirect):
                answer.route_kind = answer.route_kind or kind  # a listing names itself
                answer.cgi_run = answer.cgi_run or redirects > 0  # a script ran, whatever answered
                return answer
            request = answer.request
        server_log(f"cgibox: {request.target}: more than {MAX_LOCAL_REDIRECTS} local redirects")
        response = self.error(request, 502, "Too many local redirects.")
        response.route_kind, response.cgi_run = CGI, True
        return response

    def _dispatch(self, request: Request) -> tuple[Response | LocalRedirect, str]:
        decoded = decode_path(request.raw_path)
        if decoded is None:  # NUL, an encoded slash: no file has that name, no write may give it
            raise HTTPError(400 if is_write(request) else 404)
        reserved = decoded in RESERVED and self.config.service_routes
        mount = self.cgi_mount_for(decoded) if self.config.run_scripts and not reserved else None
        in_place = self.in_place_script(decoded) if mount is None else None
        # here rather than in handle: a script's local redirect is routed again, and checked again
        self.access.check(request, self.kind_of(request, mount or in_place), decoded)
        if reserved:
            if request.method not in ("GET", "HEAD"):
                raise refuse_method(request.method, "GET, HEAD")
            if decoded == "/healthz":
                return self.text(200, "ok\n", "text/plain; charset=utf-8"), INTERNAL
            if decoded == "/stats":
                return self.stats_page(request), INTERNAL
            return self.metrics(), INTERNAL
        if mount is not None:
            return self.runners.get(mount[0], self.cgi).run(request, decoded, mount), CGI
        if in_place is not None and self._runs_in_place(request, decoded, in_place):
            return self.cgi.run(request, decoded, ("", self.root)), CGI
        if self.webdav is not None and request.method in self.webdav.methods:
            return self.webdav.handle(request, decoded), FILE
        if is_write(request) and (request.method != "POST" or decoded.endswith("/")):
            return self.writes.handle(request, decoded), FILE
        archive = self.archives.wanted(request, decoded)
        if archive is not None:
            return self.archives.respond(request, decoded, archive), FILE
        if decoded == FAVICON and self.config.builtin_favicon:
            return self.favicon(request), FILE
        response = self.static.serve(request, decoded)
        if response.route_kind == LISTING:  # a writer's listing shows the write controls
            response = self.write_controls.apply(request, decoded, response)
        return response, FILE

    @staticmethod
    def kind_of(request: Request, script: object) -> str:
        """What the request does, for core.access: runs a script (`script` is not None: a
        mount's path or a --cgi-ext name), writes, or reads."""
        if script is not None:
            return RUN
        if request.method in WRITE_METHODS and request.method in KNOWN_METHODS:
            return WRITE
        return READ

    def _check_write(self, request: Request, decoded: str) -> None:
        """May this request write at `decoded`? core.access's rules: 401/403/405 when not."""
        self.access.check(request, WRITE, decoded)

    def _write_offer(self, request: Request, decoded: str) -> str:
        """What a page offers this reader at `decoded`: the write controls when the rules allow
        it (or would, with the credentials the request carries: only then is a login tried), a
        login link when they want one, else nothing."""
        answer = self.access.answer(request, WRITE, decoded)
        if answer == ALLOW:
            return writes_page.WRITE
        if answer != LOGIN:
            return writes_page.NOTHING
        if "authorization" not in request.headers:
            return writes_page.LOGIN
        try:
            self.access.check(request, WRITE, decoded)
        except HTTPError:
            return writes_page.NOTHING
        return writes_page.WRITE

    def in_place_script(self, decoded: str) -> str | None:
        """--cgi-ext: the URL path of the script `decoded` names under the root (its first
        segment with one of the extensions; the rest is PATH_INFO), by name alone."""
        if not self.config.cgi_ext or not self.config.run_scripts:
            return None
        end = 0
        for segment in decoded.split("/")[1:]:
            end += 1 + len(segment)
            if segment.endswith(self.config.cgi_ext):
                return decoded[:end]
        return None

    def _runs_in_place(self, request: Request, decoded: str, script: str) -> bool:
        """Whether the --cgi-ext name `script` is a script to run (False: a folder so named,
        served as files). It runs with the root's confinement (core.paths: no symlink out, no
        hidden name, no script folder); a file on the way to it, or a name that is missing, is
        404, and a file that cannot run is 403: its source is never sent (Apache's AddHandler)."""
        found = resolve(self.root, script, self.static.exclude)
        if found is None:
            raise HTTPError(404)
        try:
            if stat.S_ISDIR(os.stat(found).st_mode):
                return False
        except OSError as error:  # missing, or a file on the way (ENOTDIR): as for files
            raise HTTPError(stat_error_status(error)) from None
        located = self.cgi.locate(decoded, ("", self.root), request.script_command)
        if located.name != script:
            raise HTTPError(404)
        return True

    def cgi_mount_for(self, decoded: str) -> tuple[str, str] | None:
        """The (URL prefix, real folder or program) whose script `decoded` names: the shortest
        prefix that is the path or a segment-wise start of it, as http.server's is_cgi() found it."""
        for prefix, folder in self.script_mounts:
            if decoded == prefix or decoded.startswith(prefix + "/"):
                return prefix, folder
        return None

    def favicon(self, request: Request) -> Response:
        """The root's own favicon.ico, or the built-in one (cacheable for a day, with an ETag)."""
        try:
            return self.static.serve(request, FAVICON)
        except HTTPError as error:
            if error.status != 404:
                raise
        etag = f'"cgibox-favicon-{__version__}"'
        body = favicon_ico()
        response = Response(200, [("Content-Type", "image/x-icon"), ("Content-Length", str(len(body))),
                                  ("ETag", etag), ("Cache-Control", "public, max-age=86400")], body)
        answer = conditional.evaluate(request.method, request.headers, etag, None)
        if answer == 412:
            raise HTTPError(412)
        return conditional.not_modified_response(response) if answer == 304 else response

    @staticmethod
    def text(status: int, body: str, content_type: str) -> Response:
        data = body.encode("utf-8")
        return Response(status, [("Content-Type", content_type), ("Content-Length", str(len(data))),
                                 ("Cache-Control", "no-store")], data)

    # -- /stats and /metrics -----------------------------------------------------------------

    def stats_document(self) -> dict[str, Any]:
        document = self.stats.snapshot()
        document["front"] = self.front
        document["version"] = __version__
        return document

    def stats_page(self, request: Request) -> Response:
        document = self.stats_document()
        if request.wants_json:
            response = self.text(200, json.dumps(document), "application/json")
        else:
            html = render_stats_page(self.templates, document, self.stats.started_at, self.config.fleet_url)
            response = self.text(200, html, "text/html; charset=utf-8")
        response.compress = "page"
        return response

    def metrics(self) -> Response:
        from cgibox.core import metrics  # on the first scrape (load_on_demand_modules)

        body = metrics.exposition(self.stats_document(), self.stats)
        return self.text(200, body, "text/plain; version=0.0.4; charset=utf-8")

    # -- after the response ------------------------------------------------------------------

    def finish(self, request: Request | None, status: int, bytes_sent: int, *,
               request_line: str | None = None, remote_addr: str | None = None,
               cgi_run: bool = False, route_kind: str = ERROR) -> None:
        """Count and log one finished exchange; `bytes_sent` counts body bytes actually written.
        `route_kind` is the response's (the router's decision); an exchange without a request
        (an early error of the front) is counted but not timed. A health-check probe (is_probe) is
        neither, unless --log-probes."""
        config = self.config
        if request is not None and not config.log_probes and is_probe(request, config.service_routes):
            return
        if request is not None:
            duration = time.time() - request.received_at
            self.stats.record(status, bytes_sent, cgi_run, route_kind, duration)
            line = request_line or f"{request.method} {request.target} {request.protocol}"
            self.access_log.log(
                remote_addr=request.remote_addr, request_line=line, status=status,
                bytes_sent=bytes_sent, referer=request.headers.get("referer"), user=request.remote_user,
                user_agent=request.headers.get("user-agent"),
                duration=duration, method=request.method,
                path=request.raw_path)
        else:
            self.stats.record(status, bytes_sent, cgi_run)
            self.access_log.log(remote_addr=remote_addr or "-", request_line=request_line or "-",
                                status=status, bytes_sent=bytes_sent, referer=None, user_agent=None,
                                duration=0.0)


def writes_body_limit(config: Config, scripts: int) -> int:
    """The framing's body limit: the largest a script takes, or with --write no limit there
    (each script still gets its own, each uploaded file --max-upload)."""
    if config.write:
        return 1 << 62
    return scripts


# a probe announces itself by its User-Agent: the image's HEALTHCHECK, Kubernetes' kubelet
PROBE_AGENTS = ("cgibox-healthcheck", "kube-probe/")


def is_probe(request: Request, service_routes: bool = True) -> bool:
    """A health-check probe: `/healthz` asked by a User-Agent of PROBE_AGENTS (nothing else can hide
    from the log this way: only the health answer is left out)."""
    agent = request.headers.get("user-agent") or ""
    return service_routes and request.raw_path == "/healthz" and agent.startswith(PROBE_AGENTS)


def cgi_mounts(config: Config) -> list[tuple[str, str]]:
    """The config's script folders by URL prefix, shortest prefix first, folders made real:
    --cgi-dir at /cgi-bin and the folder mounts of --cgi-mount (which win at the same prefix),
    or cgibox.compat's cgi_mounts."""
    if config.cgi_mounts is None:
        mounts = {} if config.cgi_dir is None else {CGI_ROOT: os.path.realpath(config.cgi_dir)}
        mounts.update((mount.path, os.path.realpath(mount.dir))
                      for mount in config.cgi_mount if mount.dir is not None)
    else:
        mounts = {prefix.rstrip("/"): os.path.realpath(folder) for prefix, folder in config.cgi_mounts}
    return sorted(((prefix, folder) for prefix, folder in mounts.items() if prefix.startswith("/")),
                  key=lambda mount: (mount[0].count("/"), mount[0]))


def script_mounts(config: Config, folders: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The folder mounts and --cgi-mount's programs (a program at "/" takes every path but
    the server's own), shortest prefix first."""
    programs = [(mount.path, str(mount.program)) for mount in config.cgi_mount
                if mount.program is not None]
    return sorted(folders + programs, key=lambda mount: (mount[0].count("/"), mount[0]))


def access_rules(config: Config, mounts: list[tuple[str, str]]) -> Rules:
    """core.access's table for this configuration."""
    return Rules(logins=config.auth_file is not None, scope=config.auth_scope, public=config.public,
                 private=tuple(PrivateRule.parse(text) for text in config.private),
                 writes=tuple(WriteRule.parse(text) for text in config.write),
                 script_prefixes=tuple(prefix for prefix, _ in mounts), script_exts=config.cgi_ext)
