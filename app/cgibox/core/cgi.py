"""CGI/1.1 runs (RFC 3875) under /cgi-bin/: finding the script, the --cgi-max slots every process
of one server shares, starting the script in its own session with a minimal environment, feeding
its stdin, reading its head before anything is sent, streaming its body, local redirects, and
ending it (done, timed out, client gone) with its whole process group and no zombie left behind.

The environment and the parsing of a script's head are in core/cgi_protocol.py (no I/O there).
"""

from __future__ import annotations

import atexit
import math
import os
import select
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from cgibox.core.accesslog import server_log
from cgibox.core.cgi_protocol import (
    MAX_HEAD,
    MalformedHead,
    add_configured_environ,
    add_login_environ,
    build_environ,
    check_environ,
    head_end,
    parse_head,
    parse_nph_head,
    query_argv,
)
from cgibox.core.errors import HTTPError
from cgibox.core.limits import describe, find_prlimit, limit_reached, wrapper_argv
from cgibox.core.paths import resolve, safe_segments, stat_error_status
from cgibox.core.request import EMPTY_BODY, Headers, Request
from cgibox.core.response import ConnectionCut, Response
from cgibox.core.shared import SharedCells, process_alive
from cgibox.core.wire import SERVER, has_no_body

if TYPE_CHECKING:
    from cgibox.core.router import App

CGI_ROOT = "/cgi-bin"
READ_SIZE = 64 * 1024
# a chunked request body is spooled (to count it for CONTENT_LENGTH): in memory up to this, then on disk
SPOOL_IN_MEMORY = 1024 * 1024
# seconds between SIGTERM and SIGKILL for a script that has to be ended
TERM_GRACE = 0.5
# a script whose output has ended gets this long to exit by itself before it is ended
EXIT_WAIT = 0.2
# the thread feeding stdin is waited for this long once the script is gone
THREAD_JOIN = 1.0
# stderr is read to its end for this long once the script is gone (a leftover child may hold it)
STDERR_DRAIN = 0.2
MAX_LOCAL_REDIRECTS = 8
RETRY_AFTER = "1"
MAX_LOG_LINE = 4096
# the end of a script's stderr kept to tell which --cgi-limits limit stopped it
STDERR_TAIL = 2048
# request headers a local redirect's GET does not inherit: it has no body
_BODY_HEADERS = frozenset({"content-length", "content-type", "transfer-encoding", "expect"})


class ScriptTimeout(Exception):
    """The script is past --cgi-timeout."""


@dataclass(frozen=True, slots=True)
class Script:
    """A located script: its SCRIPT_NAME, real file and the PATH_INFO after it."""

    name: str
    filename: str
    path_info: str
    # what is started, the query's words after it: the file itself unless a front's
    # Request.script_command said otherwise
    command: tuple[str, ...] = ()

    @property
    def nph(self) -> bool:
        return os.path.basename(self.name).startswith("nph-")


# -- --cgi-max across processes ------------------------------------------------------------------

def _holder_alive(value: int) -> bool:
    """A slot's value names a live holder: a running script (a session leader, so a recycled pid
    of some other process hardly ever passes), or a live process that is starting one."""
    if value > 0:
        try:
            return process_alive(value) and os.getpgid(value) == value
        except ProcessLookupError:
            return False
    if value < 0:
        return process_alive(-value)
    return False


class ScriptSlots:
    """`count` slots in a SharedCells file that every process of the server maps: 0 is free, a
    script's pid while it runs, minus the pid of a process about to start one. A slot whose
    holder is gone (a forked child or worker killed mid-run) is free again, so none leaks."""

    def __init__(self, path: str, count: int) -> None:
        self.count = count
        self.cells = SharedCells(path, count)

    def acquire(self) -> tuple[int, int] | None:
        """(slot, holder value) reserved for this process, or None when every slot is busy."""
        marker = -os.getpid()
        with self.cells.locked():
            values = [self.cells.get(i) for i in range(self.count)]
            free = next((i for i, value in enumerate(values) if value == 0), None)
            if free is None:
                free = next((i for i, value in enumerate(values) if not _holder_alive(value)), None)
            if free is None:
                return None
            self.cells.set(free, marker)
            return free, marker

    def assign(self, index: int, old: int, pid: int) -> int:
        """The reserved slot now names the script. No lock: a slot marked with a live process's
        reservation is written by that process alone."""
        if self.cells.get(index) == old:
            self.cells.set(index, pid)
        return pid

    def release(self, index: int, holder: int) -> None:
        """Free the slot. No lock, as long as the caller releases while its holder still counts
        as alive (a script not yet reaped): until then no other process takes the slot over."""
        if self.cells.get(index) == holder:
            self.cells.set(index, 0)

    def busy(self) -> int:
        with self.cells.locked():
            return sum(1 for i in range(self.count) if _holder_alive(self.cells.get(i)))


# -- one running script --------------------------------------------------------------------------

_RUNNING: set[ScriptRun] = set()
_RUNNING_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    """A server that exits ends the scripts it still runs (threading front, gunicorn workers)."""
    with _RUNNING_LOCK:
        runs = [run for run in _RUNNING if run.owner == os.getpid()]
    for run in runs:
        run.stop("the server is stopping")


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _end_unowned(process: subprocess.Popen) -> None:
    """A script started but never handed to a ScriptRun: its group killed, reaped, pipes closed."""
    if process.returncode is None:  # not reaped yet, so its pid (the group id) is still its own
        _killpg(process.pid, signal.SIGKILL)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        pass
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


class ScriptRun:
    """One running script: its process (leader of its own session and process group), the thread
    that feeds its stdin (when there is a body), its stdout read against the deadline together
    with its stderr (logged line by line), and its slot.

    `stop()` is the single way it ends, whatever happened, and runs once: the group is ended if
    the script is still running (SIGTERM, TERM_GRACE, SIGKILL), the leader is reaped, the pipes
    are closed and the slot released.
    """

    def __init__(self, script: Script, process: subprocess.Popen, slots: ScriptSlots, slot: int,
                 holder: int, timeout: float, stdin_source: BinaryIO | None, first: bytes,
                 spool: BinaryIO | None, limits: dict[str, int] | None = None) -> None:
        self.script = script
        self.limits = limits or {}
        self._stderr_tail = ""
        self._cpu_seconds = 0.0
        self.process = process
        self.owner = os.getpid()
        self.slots = slots
        self.slot = slot
        self.holder = holder
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.eof = False
        self.spool = spool
        self._stopped = False
        self._slot_released = False
        self._lock = threading.Lock()
        assert process.stdout is not None and process.stderr is not None
        self._stdout_fd = process.stdout.fileno()
        self._stderr_fd: int | None = process.stderr.fileno()
        self._stderr_pending = b""
        # stdout and stderr are read in one poll loop by the request's own thread: no thread
        # per run just to carry log lines
        self._poll = select.poll()
        self._poll.register(self._stdout_fd, select.POLLIN)
        self._poll.register(self._stderr_fd, select.POLLIN)
        self._threads: list[threading.Thread] = []
        try:
            self._pidfd: int | None = os.pidfd_open(process.pid)
        except (AttributeError, OSError):  # not Linux >= 5.3: _wait_exit polls instead
            self._pidfd = None
        if stdin_source is not None:
            self._threads.append(threading.Thread(target=self._feed, args=(stdin_source, first),
                                                  daemon=True, name=f"cgi-stdin-{process.pid}"))
        with _RUNNING_LOCK:
            _RUNNING.add(self)
        try:
            for thread in self._threads:
                thread.start()
        except BaseException:  # e.g. "can't start new thread": the run must still end
            self._threads = [thread for thread in self._threads if thread.ident is not None]
            self.stop("its stdin could not be fed")
            raise

    @property
    def tag(self) -> str:
        return f"cgibox: {self.script.name}[{self.process.pid}]"

    # -- stdin and stderr (threads) ---------------------------------------------------------------

    def _feed(self, source: BinaryIO, first: bytes) -> None:
        """Copy the request body to the script's stdin as it arrives; stop when it stops reading."""
        stdin = self.process.stdin
        assert stdin is not None
        try:
            data = first or source.read(READ_SIZE)
            while data:
                _write_all(stdin.fileno(), data)
                data = source.read(READ_SIZE)
        except OSError:
            pass  # the script closed its stdin or ended: the rest of the body is not wanted
        except HTTPError as error:
            server_log(f"{self.tag}: request body broke off: {error.detail or error.status}")
        except Exception as error:  # noqa: BLE001 - a body reader of another front may raise anything
            server_log(f"{self.tag}: request body broke off: {error!r}")
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _read_stderr(self) -> bool:
        """Log what the script has written to stderr, one server-log line per line; False at EOF."""
        fd = self._stderr_fd
        if fd is None:
            return False
        try:
            data = os.read(fd, 8192)
        except OSError:
            data = b""
        if not data:
            self._close_stderr()
            return False
        pending = self._stderr_pending + data
        *lines, pending = pending.split(b"\n")
        while len(pending) > MAX_LOG_LINE:
            lines.append(pending[:MAX_LOG_LINE])
            pending = pending[MAX_LOG_LINE:]
        self._stderr_pending = pending
        for line in lines:
            self._log_line(line)
        return True

    def _close_stderr(self) -> None:
        fd, self._stderr_fd = self._stderr_fd, None
        if fd is None:
            return
        if self._stderr_pending:
            self._log_line(self._stderr_pending)
            self._stderr_pending = b""
        try:
            self._poll.unregister(fd)
        except (KeyError, ValueError):
            pass
        assert self.process.stderr is not None
        self.process.stderr.close()

    def _drain_stderr(self, timeout: float) -> None:
        """What is left on stderr once the script has ended (a leftover child may hold it open:
        give up after `timeout`)."""
        deadline = time.monotonic() + timeout
        while self._stderr_fd is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._stderr_fd], [], [], remaining)[0]:
                break
            self._read_stderr()
        self._close_stderr()

    def _log_line(self, line: bytes) -> None:
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        server_log(f"{self.tag}: {text}")
        if self.limits:
            self._stderr_tail = (self._stderr_tail + text + "\n")[-STDERR_TAIL:]

    # -- stdout ----------------------------------------------------------------------------------

    def read(self) -> bytes:
        """Some of the script's stdout, b"" at its end; ScriptTimeout once the deadline has passed."""
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise ScriptTimeout
            for fd, _ in self._poll.poll(math.ceil(remaining * 1000)):
                if fd == self._stdout_fd:
                    data = os.read(self._stdout_fd, READ_SIZE)
                    if not data:
                        self.eof = True
                    return data
                self._read_stderr()

    def read_head(self) -> tuple[bytes, bytes]:
        """(head up to and including its blank line, body bytes already read after it)."""
        buffer = b""
        while True:
            end = head_end(buffer)
            if end is not None:
                return buffer[:end], buffer[end:]
            if len(buffer) > MAX_HEAD:
                raise MalformedHead(f"no blank line in the first {MAX_HEAD} bytes")
            data = self.read()
            if not data:
                raise MalformedHead("output ended inside the head" if buffer else "it wrote nothing")
            buffer += data

    def body(self, first: bytes, length: int | None, emit: bool = True) -> Iterator[bytes]:
        """The rest of stdout as it comes: at most `length` bytes are sent, the rest is drained.

        Raises ConnectionCut when the script runs past its deadline, or ends short of `length`,
        while the response is not complete: the front then cuts the connection.
        """
        remaining = length
        data = first
        try:
            while True:
                if emit and data:
                    if remaining is not None:
                        data = data[:remaining]
                        remaining -= len(data)
                    if data:
                        yield data
                if remaining == 0:
                    emit = False  # complete: whatever else the script writes is drained, not sent
                data = self.read()
                if not data:
                    break
        except ScriptTimeout:
            self.stop(f"still running after {self.timeout:g} s (--cgi-timeout)")
            if emit:
                raise ConnectionCut from None
            return
        if emit and remaining:
            server_log(f"{self.tag}: output ended {remaining} bytes short of its Content-Length")
            raise ConnectionCut

    def drain(self) -> None:
        """Read stdout to its end (a local redirect's script must write nothing more)."""
        for _ in self.body(b"", None, emit=False):
            pass

    # -- the end ---------------------------------------------------------------------------------

    def _exited(self) -> bool:
        """The leader has exited; it stays unreaped, so its pid (= the group id) cannot be recycled."""
        try:
            return os.waitid(os.P_PID, self.process.pid,
                             os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def _wait_exit(self, timeout: float) -> bool:
        if self._pidfd is not None:
            # the pidfd becomes readable when the process exits: no sleeping in steps
            if not select.select([self._pidfd], [], [], timeout)[0]:
                return self._exited()
            return True
        deadline = time.monotonic() + timeout
        pause = 0.002
        while not self._exited():
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return True

    def stop(self, reason: str | None = None) -> None:
        """End the run (once): the process group if still running, the pipes, threads and slot."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        pid = self.process.pid
        try:
            if self.eof and reason is None:
                self._wait_exit(EXIT_WAIT)
            if self._exited():
                _killpg(pid, signal.SIGTERM)  # anything it left behind in its group
            else:
                if reason is not None or self.eof:
                    server_log(f"{self.tag}: {reason or 'still running after its output ended'}; "
                               "ending its process group")
                _killpg(pid, signal.SIGTERM)
                self._wait_exit(TERM_GRACE)
                _killpg(pid, signal.SIGKILL)
            self._release_slot()  # before reaping: an unreaped script still holds it
            self._reap(5)
        finally:
            self._release()

    def _reap(self, timeout: float) -> None:
        """Wait for the leader with wait4, which also gives its CPU time (for --cgi-limits)."""
        if self._pidfd is not None:
            select.select([self._pidfd], [], [], timeout)
        try:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if pid:
            self.process.returncode = os.waitstatus_to_exitcode(status)
            self._cpu_seconds = usage.ru_utime + usage.ru_stime
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server_log(f"{self.tag}: did not exit after SIGKILL")

    def _report_limit(self) -> None:
        """One log line naming the --cgi-limits limit that ended a failed run, when one did."""
        name = limit_reached(self.limits, self.process.returncode, self._cpu_seconds, self._stderr_tail)
        if name is not None:
            server_log(f"{self.tag}: stopped by its {name} limit "
                       f"(--cgi-limits {describe(name, self.limits)})")

    def _release_slot(self) -> None:
        if not self._slot_released:
            self._slot_released = True
            self.slots.release(self.slot, self.holder)

    def _release(self) -> None:
        self._drain_stderr(STDERR_DRAIN)
        if self.limits:
            self._report_limit()
        try:
            self._poll.unregister(self._stdout_fd)
        except (KeyError, ValueError):
            pass
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        for thread in self._threads:
            thread.join(THREAD_JOIN)
        if self.spool is not None:
            self.spool.close()
        self._release_slot()
        with _RUNNING_LOCK:
            _RUNNING.discard(self)


# -- the runner ----------------------------------------------------------------------------------

def read_request_body(request: Request, size: int) -> bytes:
    """Up to `size` bytes of the request body. The body stream is the front's: gunicorn's raises
    its own exceptions for a broken chunked body (InvalidChunkSize, NoMoreData...), so whatever
    it raises is the client's broken body, 400 and the connection closed, never a 500."""
    try:
        return request.body.read(size)
    except HTTPError:
        raise
    except Exception as error:  # noqa: BLE001 - a front's body stream may raise anything
        raise HTTPError(400, f"the request body could not be read: {type(error).__name__}",
                        close_connection=True) from None


_redirects = threading.local()


def _command(real: str, st: os.stat_result,
             script_command: Callable[[str], list[str] | None] | None) -> tuple[str, ...]:
    """How the regular file `real` is started: itself when executable, or as the front's
    script_command says; 403 when it cannot run."""
    if script_command is None:
        if st.st_mode & 0o111 and os.access(real, os.X_OK):
            return (real,)
        raise HTTPError(403, "not an executable script")
    command = script_command(real)
    if not command:
        raise HTTPError(403, "not an executable script")
    return tuple(command)


class CGIRunner:
    """Answers every request under /cgi-bin/ for one App."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.config = app.config
        self.slots = ScriptSlots(self._slots_path(app), app.config.cgi_max)
        self.configured_env = app.config.cgi_env + app.config.cgi_pass_env
        self.limits = dict(app.config.cgi_limits)
        self.wrapper: list[str] = []
        if self.limits:
            prlimit = find_prlimit()
            if prlimit is None:
                raise RuntimeError("--cgi-limits needs util-linux's prlimit, which is not installed")
            self.wrapper = wrapper_argv(prlimit, app.config.cgi_limits)

    @staticmethod
    def _slots_path(app: App) -> str:
        """Next to the stats file, which every process of one server already shares."""
        base = getattr(getattr(app.stats, "cells", None), "path", None)
        if base is None:
            base = os.path.join(tempfile.gettempdir(), f"cgibox-{os.getuid()}-{os.getpid()}")
        return base + ".cgi"

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
        prefix, folder = mount or (CGI_ROOT, self.app.cgi_dir)
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
            return Script(name, real, decoded_path[len(name):], _command(real, st, script_command))
        raise HTTPError(403, f"folders under {prefix}/ are not listed")

    # -- running ---------------------------------------------------------------------------------

    def run(self, request: Request, decoded_path: str, mount: tuple[str, str] | None = None) -> Response:
        """Run the script `decoded_path` names (under `mount`: URL prefix, real folder) and
        answer with what it writes."""
        script = self.locate(decoded_path, mount, request.script_command)
        # a chunked body is spooled (to /tmp past SPOOL_IN_MEMORY) only once a slot is taken,
        # so at most --cgi-max bodies spool at once, not one per handler thread
        chunked = request.body_length is None
        source, content_length, first, spool = (None, 0, b"", None) if request.body_length is None \
            else self._request_body(request, request.body_length)
        # checked with the spooled length's stand-in: CONTENT_LENGTH is digits either way
        env = self.environ(request, script, content_length)
        argv = [*(script.command or (script.filename,)), *query_argv(request.query)]
        reserved = self.slots.acquire()
        if reserved is None:
            raise HTTPError(503, "every CGI slot is busy; try again shortly",
                            headers=[("Retry-After", RETRY_AFTER)])
        try:
            if chunked:
                source, content_length, first, spool = self._spool(request)
                env["CONTENT_LENGTH"] = str(content_length)
        except BaseException:  # _spool closes its own file; the slot is still this call's
            self.slots.release(*reserved)
            raise
        try:
            run = self._start(script, argv, env, reserved, source, first, spool)
        except BaseException:  # _start has released the slot
            if spool is not None:
                spool.close()
            raise
        try:
            return self._respond(request, run)
        except BaseException:
            run.stop("the request failed")
            raise

    def _request_body(self, request: Request, length: int) -> tuple[BinaryIO | None, int | None, bytes, None]:
        """(stdin source, CONTENT_LENGTH, first bytes already read, no spool) for a body of
        known `length`. Reading starts here, once the script is known to run (that sends
        `100 Continue`)."""
        if length > self.config.max_body:
            raise HTTPError(413, close_connection=True)
        if length == 0:
            return None, (0 if "content-length" in request.headers else None), b"", None
        first = read_request_body(request, min(READ_SIZE, length))
        return request.body, length, first, None

    def _spool(self, request: Request) -> tuple[BinaryIO | None, int, bytes, BinaryIO | None]:
        """A chunked body, de-chunked into a temporary file so that its length can be given."""
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        total = 0
        try:
            while True:
                data = read_request_body(request, READ_SIZE)
                if not data:
                    break
                total += len(data)
                if total > self.config.max_body:
                    raise HTTPError(413, close_connection=True)
                spool.write(data)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        if not total:
            spool.close()
            return None, 0, b"", None
        return spool, total, b"", spool  # type: ignore[return-value]

    def environ(self, request: Request, script: Script, content_length: int | None) -> dict[str, str]:
        """The script's environment, checked (400) before any slot or process is taken."""
        translated = resolve(self.app.root, script.path_info) if script.path_info else None
        env = build_environ(request, script_name=script.name, path_info=script.path_info,
                            script_filename=script.filename, document_root=self.app.root,
                            path_translated=translated, content_length=content_length,
                            server_software=SERVER)
        add_login_environ(env, request)
        add_configured_environ(env, self.configured_env)
        return check_environ(env)

    def _start(self, script: Script, argv: list[str], env: dict[str, str], reserved: tuple[int, int],
               source: BinaryIO | None, first: bytes, spool: BinaryIO | None) -> ScriptRun:
        """Spawn the script in the slot `reserved` for it. The slot is this call's until a
        ScriptRun owns it (and frees it in stop()): on every way out before that, exceptions of
        any kind included (Popen refuses an environment with ValueError, not OSError), the slot is
        released and a process already started is ended."""
        slot, marker = reserved
        try:
            # with --cgi-limits the wrapper sets them and execs the script (same pid, same session)
            process = subprocess.Popen(
                self.wrapper + argv, executable=self.wrapper[0] if self.wrapper else argv[0],
                env=env, cwd=os.path.dirname(script.filename),
                stdin=subprocess.PIPE if source is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
                close_fds=True, start_new_session=True)
        except OSError as error:
            self.slots.release(slot, marker)
            server_log(f"cgibox: {script.name}: cannot start: {error.strerror or error}")
            if isinstance(error, PermissionError):
                raise HTTPError(403, "the script cannot be executed") from None
            raise HTTPError(502, "the script could not be started") from None
        except BaseException:
            self.slots.release(slot, marker)
            raise
        holder = marker
        try:
            holder = self.slots.assign(slot, marker, process.pid)
            return ScriptRun(script, process, self.slots, slot, holder, self.config.cgi_timeout,
                             source, first, spool, self.limits)
        except BaseException:
            _end_unowned(process)
            self.slots.release(slot, holder)
            raise

    def _respond(self, request: Request, run: ScriptRun) -> Response:
        """The script's head decides the response before anything is sent."""
        try:
            head, rest = run.read_head()
        except ScriptTimeout:
            run.stop(f"no head after {run.timeout:g} s (--cgi-timeout)")
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
        server_log(f"{run.tag}: malformed CGI head: {error}")
        run.stop()
        return self._failure(request, 502, "The script's answer was not a valid CGI response.")

    def _failure(self, request: Request, status: int, detail: str) -> Response:
        """An error page for a run that happened (so /stats still counts it)."""
        response = self.app.error(request, status, detail)
        response.cgi_run = True
        return response

    def _local_redirect(self, request: Request, location: str) -> Response:
        """`Location: /path` alone: answer a GET of that path instead (RFC 3875 6.2.2)."""
        depth = getattr(_redirects, "depth", 0)
        if depth >= MAX_LOCAL_REDIRECTS:
            server_log(f"cgibox: {request.target}: more than {MAX_LOCAL_REDIRECTS} local redirects")
            return self._failure(request, 502, "Too many local redirects.")
        headers = Headers((k, v) for k, v in request.headers if k.lower() not in _BODY_HEADERS)
        redirected = Request(
            method="GET", target=location.split("#", 1)[0], protocol=request.protocol,
            headers=headers, body=EMPTY_BODY, body_length=0, remote_addr=request.remote_addr,
            remote_port=request.remote_port, server_name=request.server_name,
            server_port=request.server_port, scheme=request.scheme, received_at=request.received_at,
            script_command=request.script_command)
        _redirects.depth = depth + 1
        try:
            response = self.app.route(redirected)
        finally:
            _redirects.depth = depth
        response.cgi_run = True
        return response
