"""The CGI/1.1 runner (RFC 3875): finding the script, reading the request body whole before a
--cgi-max slot is taken, starting the script in its own session with a minimal environment,
reading its head before anything is sent, and answering with its body, an error page or a local
redirect.

The environment and the parsing of a script's head are in core/cgi_protocol.py (no I/O there),
one running script in core/cgi_run.py, the slots every process shares in core/cgi_slots.py.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from cgibox.config import Config
from cgibox.core.accesslog import server_log
from cgibox.core.cgi_protocol import (
    MalformedHead,
    add_configured_environ,
    add_login_environ,
    build_environ,
    check_environ,
    parse_head,
    parse_nph_head,
    query_argv,
)
from cgibox.core.cgi_run import READ_SIZE, Script, ScriptRun, ScriptTimeout, end_unowned
from cgibox.core.cgi_slots import ScriptSlots
from cgibox.core.cgi_spawn import spawn
from cgibox.core.cgi_start import not_executable, start_problem
from cgibox.core.errors import BodyTimeout, HTTPError
from cgibox.core.limits import find_prlimit, wrapper_argv
from cgibox.core.paths import resolve, safe_segments, stat_error_status
from cgibox.core.request import EMPTY_BODY, Headers, Request
from cgibox.core.response import Response
from cgibox.core.wire import SERVER, has_no_body

__all__ = ["CGI_ROOT", "MAX_LOCAL_REDIRECTS", "CGIRunner", "LocalRedirect", "Script", "read_request_body"]

CGI_ROOT = "/cgi-bin"
# a request body is read whole before its script runs: in memory up to this, then in a temporary file
SPOOL_IN_MEMORY = 1024 * 1024
MAX_LOCAL_REDIRECTS = 8
RETRY_AFTER = "1"
# the exit statuses of a program that could not exec the one it was to run (util-linux's prlimit,
# coreutils' env: EX_EXEC_FAILED, EX_EXEC_ENOENT; POSIX shells use the same)
EXEC_FAILED = (126, 127)
# request headers a local redirect's GET does not inherit: it has no body
_BODY_HEADERS = frozenset({"content-length", "content-type", "transfer-encoding", "expect"})


def _busy() -> HTTPError:
    return HTTPError(503, "every CGI slot is busy; try again shortly", headers=[("Retry-After", RETRY_AFTER)])


def read_request_body(request: Request, size: int, body_timeout: float | None = None) -> bytes:
    """Up to `size` bytes of the request body. The body stream is the front's: a socket timeout
    is the client's silence (BodyTimeout: 408 and close, as the fronts' own streams raise it);
    gunicorn's stream raises its own exceptions for a broken chunked body (InvalidChunkSize,
    NoMoreData...), so whatever else it raises is the client's broken body, 400 and the
    connection closed, never a 500."""
    try:
        return request.body.read(size)
    except HTTPError:
        raise
    except TimeoutError:
        if body_timeout is None:  # a caller that does not say how long the stream waited
            raise HTTPError(408, "the request body stopped arriving", close_connection=True) from None
        raise BodyTimeout(body_timeout) from None
    except Exception as error:  # noqa: BLE001 - a front's body stream may raise anything
        raise HTTPError(400, f"the request body could not be read: {type(error).__name__}",
                        close_connection=True) from None


def _command(name: str, real: str, st: os.stat_result,
             script_command: Callable[[str], list[str] | None] | None) -> tuple[str, ...]:
    """How the regular file `real` is started: itself when executable, or as the front's
    script_command says; 403 when it cannot run (with a log line saying how to fix it)."""
    if script_command is None:
        if st.st_mode & 0o111 and os.access(real, os.X_OK):
            return (real,)
        server_log(f"cgibox: {name}: {not_executable(real)}")
        raise HTTPError(403, "The script is not executable: its execute bit is off (chmod +x).")
    command = script_command(real)
    if not command:
        raise HTTPError(403, "not an executable script")
    return tuple(command)


@dataclass(frozen=True, slots=True)
class LocalRedirect:
    """A script answered `Location: /path` alone (RFC 3875 6.2.2): the server answers `request`,
    a GET of that path, instead. App.route loops on it (routing and checking it again), at most
    MAX_LOCAL_REDIRECTS times: the runner never calls back into the router."""

    request: Request


# what a page for a failed run is made by (App.error): request, status, detail
ErrorPage = Callable[[Request, int, str], Response]


class CGIRunner:
    """Runs scripts for one configured server. It is given what it shares with the rest of the
    server by value: the settings, the served root (DOCUMENT_ROOT, PATH_TRANSLATED), the default
    cgi dir, the slot table's file, and how an error page is made."""

    def __init__(self, config: Config, root: str, cgi_dir: str | None, slots_path: str,
                 error_page: ErrorPage) -> None:
        self.config = config
        self.root = root
        self.cgi_dir = cgi_dir
        self.error_page = error_page
        self.slots = ScriptSlots(slots_path, config.cgi_max)
        self.configured_env = config.cgi_env + config.cgi_pass_env
        self.limits = dict(config.cgi_limits)
        self.wrapper: list[str] = []
        if self.limits:
            prlimit = find_prlimit()
            if prlimit is None:
                raise RuntimeError("--cgi-limits needs util-linux's prlimit, which is not installed")
            self.wrapper = wrapper_argv(prlimit, config.cgi_limits)

    # -- routing ---------------------------------------------------------------------------------

    def locate(self, decoded_path: str, mount: tuple[str, str] | None = None,
               script_command: Callable[[str], list[str] | None] | None = None) -> Script:
        """The first segment under the mount's folder (the cgi dir at /cgi-bin unless another is
        given) that is a file is the script, the rest PATH_INFO.

        Missing (or unreachable: hidden, `..`, symlinked out) is 404; the cgi dir itself, a folder,
        a non-regular or a non-executable file is 403; a failed stat answers what it answers for
        files (paths.stat_error_status). Confinement is core.paths' one function. With
        `script_command` (Request.script_command) that front's rule, not the x bit, says how a
        regular file runs, if at all.
        """
        if mount is None:
            if self.cgi_dir is None:  # no default script folder (--cgi-dir none)
                raise HTTPError(404)
            mount = (CGI_ROOT, self.cgi_dir)
        prefix, folder = mount
        rest = decoded_path[len(prefix):]
        segments = safe_segments(rest or "/")
        if segments is None:
            raise HTTPError(404)
        for count in range(1, len(segments) + 1):
            relative = "/" + "/".join(segments[:count])
            real = resolve(folder, relative)
            if real is None:
                raise HTTPError(404)
            try:
                st = os.stat(real)
            except OSError as error:
                raise HTTPError(stat_error_status(error)) from None
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise HTTPError(403, "not an executable script")
            name = prefix + relative
            return Script(name, real, decoded_path[len(name):], _command(name, real, st, script_command))
        raise HTTPError(403, f"folders under {prefix}/ are not listed")

    # -- running ---------------------------------------------------------------------------------

    def run(self, request: Request, decoded_path: str,
            mount: tuple[str, str] | None = None) -> Response | LocalRedirect:
        """Run the script `decoded_path` names (under `mount`: URL prefix, real folder) and
        answer with what it writes."""
        script = self.locate(decoded_path, mount, request.script_command)
        declared = request.body_length
        if declared is not None and declared > self.config.max_body:
            raise HTTPError(413, close_connection=True)
        # checked with a stand-in length: CONTENT_LENGTH is digits whatever the body's length
        env = self.environ(request, script, declared if declared is not None else 0)
        argv = [*(script.command or (script.filename,)), *query_argv(request.query)]
        if not self.slots.any_free():
            raise _busy()  # before reading a body that could not run now anyway
        # the whole body is read before a slot is taken (nginx's request buffering): a client's
        # slowness holds no slot and never counts against the script, and its silence is the
        # front's 408 (BodyTimeout), not a 504
        spool, content_length = self._spool(request)
        if content_length is None:
            env.pop("CONTENT_LENGTH", None)
        else:
            env["CONTENT_LENGTH"] = str(content_length)
        try:
            slot = self.slots.acquire()
            if slot is None:
                raise _busy()
            run = self._start(script, argv, env, slot, spool)
        except BaseException:  # _start has released the slot
            if spool is not None:
                spool.close()
            raise
        try:
            return self._respond(request, run)
        except BaseException:
            run.stop("the request failed")
            raise

    def _spool(self, request: Request) -> tuple[BinaryIO | None, int | None]:
        """(the whole request body, rewound, or None; its length for CONTENT_LENGTH, None when
        the request has no body). Read up to --max-body, in memory up to SPOOL_IN_MEMORY, then
        in a temporary file; a chunked body is de-chunked, so that its length can be given.
        Reading starts here, once the script is known to run (that sends `100 Continue`)."""
        declared = request.body_length
        if declared == 0:
            return None, (0 if "content-length" in request.headers else None)
        limit = self.config.max_body if declared is None else declared
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        total = 0
        try:
            while total <= limit:
                data = read_request_body(request, min(READ_SIZE, limit + 1 - total),
                                         self.config.body_timeout)
                if not data:
                    break
                total += len(data)
                if total > self.config.max_body:
                    raise HTTPError(413, close_connection=True)
                self._spool_write(request, spool, data)
                if total == declared:
                    break
            if declared is not None and total < declared:
                raise HTTPError(400, "the request body ended before its Content-Length",
                                close_connection=True)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        if not total:
            spool.close()
            return None, 0
        return spool, total  # type: ignore[return-value]

    @staticmethod
    def _spool_write(request: Request, spool: tempfile.SpooledTemporaryFile[bytes], data: bytes) -> None:
        try:
            spool.write(data)
        except OSError as error:  # past SPOOL_IN_MEMORY the spool is a file in the temp folder
            server_log(f"cgibox: {request.target}: cannot hold its request body: {error.strerror or error}")
            status = 507 if error.errno in (errno.ENOSPC, errno.EDQUOT) else 500
            raise HTTPError(status, "no room to hold the request body", close_connection=True) from None

    def environ(self, request: Request, script: Script, content_length: int | None) -> dict[str, str]:
        """The script's environment, checked (400) before any slot or process is taken."""
        translated = resolve(self.root, script.path_info) if script.path_info else None
        env = build_environ(request, script_name=script.name, path_info=script.path_info,
                            script_filename=script.filename, document_root=self.root,
                            path_translated=translated, content_length=content_length,
                            server_software=SERVER)
        add_login_environ(env, request)
        add_configured_environ(env, self.configured_env)
        return check_environ(env)

    def _start(self, script: Script, argv: list[str], env: dict[str, str], slot: int,
               spool: BinaryIO | None) -> ScriptRun:
        """Spawn the script in the slot taken for it. The slot is this call's until a ScriptRun
        owns it (and frees it in stop()): on every way out before that, exceptions of any kind
        included (Popen refuses an environment with ValueError, not OSError), the slot is
        released and a process already started is ended (core/cgi_spawn starts it: posix_spawn
        in the script's folder, its own session, no other fd, signals at their defaults)."""
        try:
            # with --cgi-limits the wrapper sets them and execs the script (same pid, same session)
            process = spawn(self.wrapper + argv, env, os.path.dirname(script.filename), spool is not None)
        except OSError as error:
            self.slots.release(slot)
            problem = start_problem(script.filename, error.errno) or \
                f"it could not be started: {error.strerror or error}"
            server_log(f"cgibox: {script.name}: cannot start: {problem}")
            if isinstance(error, PermissionError):
                raise HTTPError(403, f"The script cannot be executed: {problem}.") from None
            raise HTTPError(502, f"The script could not be started: {problem}.") from None
        except BaseException:
            self.slots.release(slot)
            raise
        try:
            self.slots.assign(slot, process.pid)
            return ScriptRun(script, process, self.slots, slot, self.config.cgi_timeout,
                             self.config.cgi_max_time, spool, self.limits)
        except BaseException:
            end_unowned(process)
            self.slots.release(slot)
            raise

    def _respond(self, request: Request, run: ScriptRun) -> Response | LocalRedirect:
        """The script's head decides the response before anything is sent."""
        try:
            head, rest = run.read_head()
        except ScriptTimeout as timeout:
            run.stop(f"{timeout}, no head yet")
            return self._failure(request, 504, "The script did not answer in time.")
        except MalformedHead as error:
            return self._bad_head(request, run, error)
        if run.script.nph:
            try:
                status, headers = parse_nph_head(head)
            except MalformedHead as error:
                return self._bad_head(request, run, error)
            response = Response(status, headers, run.body(rest, None), close_connection=True,
                                raw_head=head)
        else:
            try:
                parsed = parse_head(head)
            except MalformedHead as error:
                return self._bad_head(request, run, error)
            if parsed.local_redirect:
                run.drain()
                run.stop()
                assert parsed.location is not None
                return self._local_redirect(request, parsed.location)
            emit = not has_no_body(parsed.status)
            response = Response(parsed.status, parsed.headers, run.body(rest, parsed.content_length, emit),
                                reason=parsed.reason)
        response.cleanups.append(run.stop)
        response.cgi_run = True
        return response

    def _bad_head(self, request: Request, run: ScriptRun, error: MalformedHead) -> Response:
        run.stop()
        if not run.wrote and run.process.returncode in EXEC_FAILED:
            # the --cgi-limits wrapper, or the `env` of a #! line, could not exec what it was
            # given (it says so on stderr)
            problem = start_problem(run.script.filename, None)
            if problem is not None:
                server_log(f"cgibox: {run.script.name}: cannot start: {problem}")
                return self._failure(request, 502, f"The script could not be started: {problem}.")
        server_log(f"{run.tag}: malformed CGI head: {error}")
        return self._failure(request, 502, "The script's answer was not a valid CGI response.")

    def _failure(self, request: Request, status: int, detail: str) -> Response:
        """An error page for a run that happened (so /stats still counts it)."""
        response = self.error_page(request, status, detail)
        response.cgi_run = True
        return response

    @staticmethod
    def _local_redirect(request: Request, location: str) -> LocalRedirect:
        """`Location: /path` alone: a GET of that path, to be answered instead (RFC 3875 6.2.2)."""
        headers = Headers((k, v) for k, v in request.headers if k.lower() not in _BODY_HEADERS)
        return LocalRedirect(Request(
            method="GET", target=location.split("#", 1)[0], protocol=request.protocol,
            headers=headers, body=EMPTY_BODY, body_length=0, remote_addr=request.remote_addr,
            remote_port=request.remote_port, server_name=request.server_name,
            server_port=request.server_port, scheme=request.scheme, received_at=request.received_at,
            script_command=request.script_command))
