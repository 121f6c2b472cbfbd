"""One running CGI script: its process (leader of its own session and process group), the thread
feeding its stdin from the spooled request body, its stdout read under --cgi-timeout (silence)
and --cgi-max-time (the whole run), its stderr logged line by line, and its end (done, timed out,
client gone, server stopping) with its whole group, its slot and no zombie left behind."""

from __future__ import annotations

import atexit
import math
import os
import select
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cgibox.core.accesslog import server_log
from cgibox.core.cgi_protocol import MAX_HEAD, MalformedHead, head_end
from cgibox.core.cgi_slots import ScriptSlots, this_pid
from cgibox.core.cgi_spawn import Child
from cgibox.core.limits import describe, limit_reached
from cgibox.core.response import ConnectionCut

READ_SIZE = 64 * 1024
# seconds between SIGTERM and SIGKILL for a script that has to be ended
TERM_GRACE = 0.5
# a script whose output has ended gets this long to exit by itself before it is ended
EXIT_WAIT = 0.2
# the thread feeding stdin is waited for this long once the script is gone
THREAD_JOIN = 1.0
# stderr is read to its end for this long once the script is gone (a leftover child may hold it)
STDERR_DRAIN = 0.2
MAX_LOG_LINE = 4096
# the end of a script's stderr kept to tell which --cgi-limits limit stopped it
STDERR_TAIL = 2048


class ScriptTimeout(Exception):
    """The script stayed silent past --cgi-timeout, or ran past --cgi-max-time (the message says which)."""


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


_RUNNING: set[ScriptRun] = set()
_RUNNING_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    """A server that exits ends the scripts it still runs (threading front, gunicorn workers)."""
    with _RUNNING_LOCK:
        runs = [run for run in _RUNNING if run.owner == this_pid()]
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


def end_unowned(process: Child) -> None:
    """A script started but never handed to a ScriptRun: its group killed, reaped, pipes closed."""
    if process.returncode is None:  # not reaped yet, so its pid (the group id) is still its own
        _killpg(process.pid, signal.SIGKILL)
    process.wait(5)
    process.close_stdin()
    process.close_stdout()
    process.close_stderr()


class ScriptRun:
    """One running script: its process (leader of its own session and process group), the thread
    that feeds its stdin (when there is a body), its stdout read against its deadlines together
    with its stderr (logged line by line), and its slot.

    `stop()` is the single way it ends, whatever happened, and runs once: the group is ended if
    the script is still running (SIGTERM, TERM_GRACE, SIGKILL), the leader is reaped, the pipes
    are closed and the slot released.
    """

    def __init__(self, script: Script, process: Child, slots: ScriptSlots, slot: int,
                 timeout: float, max_time: float | None, spool: BinaryIO | None,
                 limits: dict[str, int] | None = None) -> None:
        self.script = script
        self.limits = limits or {}
        self._stderr_tail = ""
        self._cpu_seconds = 0.0
        self.process = process
        self.owner = this_pid()
        self.slots = slots
        self.slot = slot
        self.timeout = timeout  # --cgi-timeout: seconds of silence
        self.max_time = max_time  # --cgi-max-time: seconds in all, or None
        self.end_by = math.inf if max_time is None else time.monotonic() + max_time
        self.eof = False
        self._exit_seen = False  # the leader is known to have exited (it stays unreaped until stop)
        self.wrote = False  # anything at all on stdout
        self.spool = spool
        self._stopped = False
        self._slot_released = False
        self._lock = threading.Lock()
        assert process.stdout is not None and process.stderr is not None
        self._stdout_fd: int | None = process.stdout
        self._stderr_fd: int | None = process.stderr
        self._stderr_pending = b""
        # stdout and stderr are read in one poll loop by the request's own thread: no thread
        # per run just to carry log lines
        self._poll = select.poll()
        self._poll.register(process.stdout, select.POLLIN)
        self._poll.register(process.stderr, select.POLLIN)
        self._threads: list[threading.Thread] = []
        # opened when an exit has to be waited for: most scripts have exited by their output's end
        self._pidfd: int | None = None
        self._pidfd_tried = False
        self._exit_info: os.waitid_result | None = None  # the leader's exit, seen without reaping
        if spool is not None:
            self._threads.append(threading.Thread(target=self._feed, args=(spool,),
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

    def _feed(self, source: BinaryIO) -> None:
        """Copy the spooled request body to the script's stdin; stop when it stops reading."""
        stdin = self.process.stdin
        assert stdin is not None
        try:
            data = source.read(READ_SIZE)
            while data:
                _write_all(stdin, data)
                data = source.read(READ_SIZE)
        except OSError:
            pass  # the script closed its stdin or ended: the rest of the body is not wanted
        except Exception as error:  # noqa: BLE001 - the run must end cleanly whatever happened
            server_log(f"{self.tag}: its request body could not be fed: {error!r}")
        finally:
            self.process.close_stdin()

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
        self.process.close_stderr()

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
        """Some of the script's stdout, b"" at its end. ScriptTimeout when it stays silent for
        --cgi-timeout from now (the time the client takes to read is not the script's), or
        when its --cgi-max-time runs out."""
        if self._stdout_fd is None:  # the run has been stopped: its output is over
            self.eof = True
            return b""
        silent_by = time.monotonic() + self.timeout
        while True:
            now = time.monotonic()
            if now >= self.end_by:
                raise ScriptTimeout(f"still running after {self.max_time:g} s (--cgi-max-time)")
            if now >= silent_by:
                raise ScriptTimeout(f"silent for {self.timeout:g} s (--cgi-timeout)")
            remaining = min(silent_by, self.end_by) - now
            ready = False
            for fd, _ in self._poll.poll(math.ceil(remaining * 1000)):
                if fd == self._stdout_fd:
                    ready = True
                else:  # stderr first: its end, when it came with stdout's, costs no later wait
                    self._read_stderr()
            if ready:
                assert self._stdout_fd is not None
                data = os.read(self._stdout_fd, READ_SIZE)
                if not data:
                    self.eof = True
                else:
                    self.wrote = True
                return data

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

        Raises ConnectionCut while the response is not complete when the script runs past a
        deadline, ends short of `length`, or ends killed by a signal or a --cgi-limits limit:
        the front then cuts the connection, so that no client takes the body for whole.
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
        except ScriptTimeout as timeout:
            self.stop(str(timeout))
            if emit:
                raise ConnectionCut from None
            return
        failure = self._ended_badly() if emit and remaining is None else None
        # the run is over: its slot is free before the response's last bytes go out, so a
        # client's next request never finds it still taken
        self.stop()
        if emit and remaining:
            server_log(f"{self.tag}: output ended {remaining} bytes short of its Content-Length")
            raise ConnectionCut
        if failure is not None:
            server_log(f"{self.tag}: {failure} after its head; the connection is cut")
            raise ConnectionCut

    def _ended_badly(self) -> str | None:
        """Once stdout has ended: why the script's output is not whole (it was killed by a
        signal, or stopped by a --cgi-limits limit), or None when it exited by itself (whatever
        its exit status: a shell script's last command may fail after a whole answer) or has
        not exited within EXIT_WAIT (it closed its output, so that is the end of it)."""
        if not self._wait_exit(EXIT_WAIT):
            return None
        info = self._exit_info
        if info is None:
            return None
        if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
            name = limit_reached(self.limits, -info.si_status, 0.0, "") if self.limits else None
            if name is not None:
                return f"stopped by its {name} limit"
            return f"killed by {signal.Signals(info.si_status).name}" \
                if info.si_status in signal.valid_signals() else f"killed by signal {info.si_status}"
        if self.limits and info.si_status != 0:
            self._drain_stderr(STDERR_DRAIN)
            name = limit_reached(self.limits, info.si_status, 0.0, self._stderr_tail)
            if name is not None:
                return f"stopped by its {name} limit"
        return None

    def drain(self) -> None:
        """Read stdout to its end (a local redirect's script must write nothing more)."""
        for _ in self.body(b"", None, emit=False):
            pass

    # -- the end ---------------------------------------------------------------------------------

    def _exited(self) -> bool:
        """The leader has exited; it stays unreaped, so its pid (= the group id) cannot be recycled.
        Its exit (waitid's, WNOWAIT) is kept for _ended_badly."""
        if not self._exit_seen:
            try:
                self._exit_info = os.waitid(os.P_PID, self.process.pid,
                                            os.WEXITED | os.WNOHANG | os.WNOWAIT)
                self._exit_seen = self._exit_info is not None
            except ChildProcessError:
                self._exit_seen = True
        return self._exit_seen

    def _exit_fd(self) -> int | None:
        """A pidfd of the leader (readable once it exits), opened on first need; None where
        there are none (not Linux >= 5.3): then waits poll in steps."""
        if not self._pidfd_tried:
            self._pidfd_tried = True
            try:
                self._pidfd = os.pidfd_open(self.process.pid)
            except (AttributeError, OSError):
                self._pidfd = None
        return self._pidfd

    def _wait_exit(self, timeout: float) -> bool:
        if self._exited():
            return True
        pidfd = self._exit_fd()
        if pidfd is not None:
            # the pidfd becomes readable when the process exits: no sleeping in steps
            select.select([pidfd], [], [], timeout)
            return self._exited()
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
        if not self._exit_seen:
            pidfd = self._exit_fd()
            if pidfd is not None:
                select.select([pidfd], [], [], timeout)
        try:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if pid:
            self.process.reaped(status)
            self._cpu_seconds = usage.ru_utime + usage.ru_stime
            return
        if self.process.wait(timeout) is None:
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
            self.slots.release(self.slot)

    def _release(self) -> None:
        self._drain_stderr(STDERR_DRAIN)
        if self.limits:
            self._report_limit()
        fd, self._stdout_fd = self._stdout_fd, None
        if fd is not None:
            try:
                self._poll.unregister(fd)
            except (KeyError, ValueError):
                pass
            self.process.close_stdout()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        for thread in self._threads:
            thread.join(THREAD_JOIN)
        if not any(thread.is_alive() for thread in self._threads):
            self.process.close_stdin()  # when no thread fed it (or one did and has closed it)
        if self.spool is not None:
            self.spool.close()
        self._release_slot()
        with _RUNNING_LOCK:
            _RUNNING.discard(self)


