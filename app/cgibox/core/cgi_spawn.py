"""Starting a script: the C library's posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK), no copy
of the server's page tables and no Python in the child) in the script's folder, as the leader of
its own session and process group, with every other fd closed, every signal at its default and
none blocked; its exec error comes back as the OSError subprocess raised. Where the C library
lacks what that needs (posix_spawn_file_actions_addchdir_np, addclosefrom_np: glibc >= 2.34),
subprocess.Popen does the same start."""

from __future__ import annotations

import array
import ctypes
import itertools
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# glibc's posix_spawnattr flags (spawn.h)
SETSIGDEF = 0x04
SETSIGMASK = 0x08
SETSID = 0x80
# bytes reserved for a posix_spawn_file_actions_t, posix_spawnattr_t and sigset_t: more than any
# C library needs (glibc x86-64: 80, 336 and 128)
_OPAQUE_SIZE = 1024
DEV_NULL = b"/dev/null"
_POINTER_CODE = "Q" if ctypes.sizeof(ctypes.c_void_p) == 8 else "I"
# how os.fsencode encodes (check_environ has made sure every value can be)
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


@dataclass(slots=True)
class Child:
    """A started script: its pid (= its session and process group id) and the parent's ends of
    its pipes (raw fds: stdin None when it reads /dev/null). `popen` is kept when subprocess
    started it, so that subprocess never reaps it behind the run's back."""

    pid: int
    stdin: int | None
    stdout: int | None
    stderr: int | None
    returncode: int | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # each fd is closed once, here, and forgotten: a number closed twice could be another
    # thread's new fd by then
    def close_stdin(self) -> None:
        fd, self.stdin = self.stdin, None
        _close(fd)

    def close_stdout(self) -> None:
        fd, self.stdout = self.stdout, None
        _close(fd)

    def close_stderr(self) -> None:
        fd, self.stderr = self.stderr, None
        _close(fd)

    def reaped(self, status: int) -> None:
        """The wait status the leader was reaped with (os.wait4)."""
        self.returncode = os.waitstatus_to_exitcode(status)
        if self.popen is not None:
            self.popen.returncode = self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """Reap the leader (blocking up to `timeout`); its exit code, or None if still running."""
        if self.returncode is not None:
            return self.returncode
        if self.popen is not None:
            try:
                self.returncode = self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
            return self.returncode
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.002
        while True:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
                return self.returncode
            if pid:
                self.reaped(status)
                return self.returncode
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


def _close(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


class _Libc:
    """The C library functions of a spawn, found once (None when one is missing)."""

    def __init__(self) -> None:
        # the C library this process already has (no find_library: it runs ldconfig)
        lib = ctypes.CDLL(None)
        c_void_p, c_int, c_char_p = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
        self.spawn = lib.posix_spawn
        self.spawn.argtypes = [ctypes.POINTER(ctypes.c_int), c_void_p, c_void_p, c_void_p, c_void_p, c_void_p]
        self.spawn.restype = c_int
        self.fa_init = self._fn(lib, "posix_spawn_file_actions_init", [c_void_p])
        self.fa_destroy = self._fn(lib, "posix_spawn_file_actions_destroy", [c_void_p])
        self.fa_dup2 = self._fn(lib, "posix_spawn_file_actions_adddup2", [c_void_p, c_int, c_int])
        self.fa_open = self._fn(lib, "posix_spawn_file_actions_addopen",
                                [c_void_p, c_int, c_char_p, c_int, ctypes.c_uint])
        self.fa_chdir = self._fn(lib, "posix_spawn_file_actions_addchdir_np", [c_void_p, c_char_p])
        self.fa_closefrom = self._fn(lib, "posix_spawn_file_actions_addclosefrom_np", [c_void_p, c_int])
        self.attr_init = self._fn(lib, "posix_spawnattr_init", [c_void_p])
        self.attr_destroy = self._fn(lib, "posix_spawnattr_destroy", [c_void_p])
        self.attr_flags = self._fn(lib, "posix_spawnattr_setflags", [c_void_p, ctypes.c_short])
        self.attr_sigdefault = self._fn(lib, "posix_spawnattr_setsigdefault", [c_void_p, c_void_p])
        self.attr_sigmask = self._fn(lib, "posix_spawnattr_setsigmask", [c_void_p, c_void_p])
        self.sigemptyset = self._fn(lib, "sigemptyset", [c_void_p])
        self.sigfillset = self._fn(lib, "sigfillset", [c_void_p])
        # the attributes are the same for every script: made once
        self.attr = ctypes.create_string_buffer(_OPAQUE_SIZE)
        every, none = ctypes.create_string_buffer(_OPAQUE_SIZE), ctypes.create_string_buffer(_OPAQUE_SIZE)
        self._check(self.attr_init(self.attr))
        self._check(self.sigfillset(every))
        self._check(self.sigemptyset(none))
        self._check(self.attr_flags(self.attr, SETSID | SETSIGDEF | SETSIGMASK))
        # every signal to its default (but glibc's own two, 32 and 33, which its posix_spawn
        # leaves ignored in every child, as in system()'s): copied into the attributes
        self._check(self.attr_sigdefault(self.attr, every))
        self._check(self.attr_sigmask(self.attr, none))

    @staticmethod
    def _fn(lib: ctypes.CDLL, name: str, argtypes: list[type]) -> Any:
        function = getattr(lib, name)  # AttributeError: this C library lacks it
        function.argtypes = argtypes
        function.restype = ctypes.c_int
        return function

    @staticmethod
    def _check(result: int) -> None:
        if result != 0:
            raise OSError(result, os.strerror(result))


def _load() -> _Libc | None:
    if os.name != "posix":
        return None
    try:
        return _Libc()
    except (OSError, AttributeError):
        return None


_LIBC: _Libc | None = _load()


def available() -> bool:
    """Whether scripts start through posix_spawn here (else through subprocess.Popen)."""
    return _LIBC is not None


def _pointers(texts: list[str]) -> tuple[ctypes.Array[ctypes.c_char], array.array[int]]:
    """A NULL-ended char *[] of `texts`, each ending with its NUL already (encoded as os.fsencode
    does): one buffer holding them all and an array of their addresses, built by C loops (map,
    accumulate): a ctypes array of c_char_p costs ~1.5 us an item, this a tenth. Both must be
    kept alive while the C library reads them."""
    joined = "".join(texts)
    if joined.isascii():
        blob = joined.encode("ascii")
        lengths = list(map(len, texts))
    else:
        encoded = [text.encode(_FS_ENCODING, _FS_ERRORS) for text in texts]
        blob = b"".join(encoded)
        lengths = list(map(len, encoded))
    if blob.count(0) != len(texts):
        raise ValueError("embedded null byte")
    buffer = ctypes.create_string_buffer(blob, len(blob))
    starts = itertools.accumulate(lengths[:-1], initial=ctypes.addressof(buffer)) if texts else ()
    addresses = array.array(_POINTER_CODE, starts)
    addresses.append(0)
    return buffer, addresses


class _Actions:
    """One posix_spawn_file_actions_t: stdin (a pipe's end, or /dev/null when `stdin` < 0),
    stdout and stderr to fds 0-2, every other fd closed, then chdir to `cwd`."""

    def __init__(self, libc: _Libc, stdin: int, stdout: int, stderr: int, cwd: str) -> None:
        self._destroy = libc.fa_destroy
        self.buffer = ctypes.create_string_buffer(_OPAQUE_SIZE)
        _Libc._check(libc.fa_init(self.buffer))
        try:
            if stdin >= 0:
                _Libc._check(libc.fa_dup2(self.buffer, stdin, 0))
            else:
                _Libc._check(libc.fa_open(self.buffer, 0, DEV_NULL, os.O_RDONLY, 0))
            _Libc._check(libc.fa_dup2(self.buffer, stdout, 1))
            _Libc._check(libc.fa_dup2(self.buffer, stderr, 2))
            _Libc._check(libc.fa_closefrom(self.buffer, 3))
            _Libc._check(libc.fa_chdir(self.buffer, os.fsencode(cwd)))
        except BaseException:
            self._destroy(self.buffer)
            raise

    def __del__(self) -> None:
        self._destroy(self.buffer)


# each thread's file actions by (stdin, stdout, stderr, cwd): a thread's pipes mostly get the
# same fd numbers run after run, and building the actions costs five C calls and as many
# getrlimit syscalls (glibc checks each fd). Per thread, so that no action set is ever shared
# by two spawns at once or dropped while one is in use; bounded.
_THREAD = threading.local()
ACTIONS_PER_THREAD = 16


def _actions(libc: _Libc, stdin: int, stdout: int, stderr: int, cwd: str) -> _Actions:
    cache: dict[tuple[int, int, int, str], _Actions] | None = getattr(_THREAD, "actions", None)
    if cache is None:
        cache = _THREAD.actions = {}
    key = (stdin, stdout, stderr, cwd)
    actions = cache.get(key)
    if actions is None:
        if len(cache) >= ACTIONS_PER_THREAD:
            cache.clear()
        actions = cache[key] = _Actions(libc, stdin, stdout, stderr, cwd)
    return actions


def spawn(argv: list[str], env: dict[str, str], cwd: str, stdin: bool) -> Child:
    """Start argv[0] (a path) with `argv` and exactly `env`, in `cwd`, in a new session, stdout
    and stderr to pipes, stdin from a pipe when `stdin` is true, else /dev/null. OSError (with
    the errno of the failed chdir or exec) when it could not start; ValueError for a NUL byte
    in an argument or the environment, as subprocess raises."""
    if _LIBC is None or "/" not in argv[0]:
        return _popen(argv, env, cwd, stdin)
    libc = _LIBC
    args_kept, args = _pointers(list(map("{}\0".format, argv)))
    env_kept, envp = _pointers(list(map("{}={}\0".format, env, env.values())))
    fds: list[int] = []
    try:
        stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC) if stdin else (-1, -1)
        fds += [stdin_r, stdin_w] if stdin else []
        stdout_r, stdout_w = os.pipe2(os.O_CLOEXEC)
        fds += [stdout_r, stdout_w]
        stderr_r, stderr_w = os.pipe2(os.O_CLOEXEC)
        fds += [stderr_r, stderr_w]
        actions = _actions(libc, stdin_r, stdout_w, stderr_w, cwd)
        pid = ctypes.c_int(0)
        # the GIL is let go during the call (ctypes): other requests go on meanwhile
        error = libc.spawn(ctypes.byref(pid), args_kept, actions.buffer, libc.attr,
                           args.buffer_info()[0], envp.buffer_info()[0])
        if error:  # OSError(errno, ...) is the subclass subprocess would raise (PermissionError...)
            raise OSError(error, os.strerror(error), argv[0])
        for fd in (stdin_r, stdout_w, stderr_w) if stdin else (stdout_w, stderr_w):
            os.close(fd)
        return Child(pid.value, stdin_w if stdin else None, stdout_r, stderr_r)
    except BaseException:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        raise


def _popen(argv: list[str], env: dict[str, str], cwd: str, stdin: bool) -> Child:
    """The same start through subprocess (it uses vfork where it can, with Python around it)."""
    stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC) if stdin else (-1, -1)
    stdout_r, stdout_w = os.pipe2(os.O_CLOEXEC)
    stderr_r, stderr_w = os.pipe2(os.O_CLOEXEC)
    theirs = [stdin_r, stdout_w, stderr_w] if stdin else [stdout_w, stderr_w]
    ours = [stdin_w, stdout_r, stderr_r] if stdin else [stdout_r, stderr_r]
    try:
        process = subprocess.Popen(argv, env=env, cwd=cwd,
                                   stdin=stdin_r if stdin else subprocess.DEVNULL,
                                   stdout=stdout_w, stderr=stderr_w, close_fds=True,
                                   start_new_session=True, restore_signals=True)
    except BaseException:
        for fd in theirs + ours:
            os.close(fd)
        raise
    for fd in theirs:
        os.close(fd)
    return Child(process.pid, stdin_w if stdin else None, stdout_r, stderr_r, popen=process)
