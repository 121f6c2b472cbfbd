"""core/cgi_spawn.py without sockets: a script starts in its folder, as the leader of its own
session, with only fds 0-2, every signal at its default and none blocked, exactly the environment
given, under the --cgi-limits wrapper's limits; a failed start raises the OSError subprocess
raised. Every test runs on both paths: posix_spawn, and the subprocess fallback."""

from __future__ import annotations

import errno
import os
import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cgibox.core import cgi_spawn
from cgibox.core.limits import find_prlimit, wrapper_argv


@pytest.fixture(params=["posix_spawn", "subprocess"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "posix_spawn":
        if not cgi_spawn.available():
            pytest.skip("this C library has no posix_spawn_file_actions_addchdir_np/addclosefrom_np")
    else:
        monkeypatch.setattr(cgi_spawn, "_LIBC", None)
    yield request.param


def script(folder: Path, body: str, name: str = "probe") -> Path:
    file = folder / name
    file.write_text("#!/bin/sh\n" + body)
    file.chmod(0o755)
    return file


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None,
        stdin: bytes | None = None) -> tuple[int, bytes, bytes, int]:
    """(pid, stdout, stderr, exit status) of a finished start."""
    child = cgi_spawn.spawn(argv, env if env is not None else {"PATH": "/usr/bin:/bin"}, str(cwd),
                            stdin is not None)
    stdout, stderr = child.stdout, child.stderr
    assert stdout is not None and stderr is not None
    try:
        if stdin is not None:
            assert child.stdin is not None
            os.write(child.stdin, stdin)
            child.close_stdin()
        else:
            assert child.stdin is None
        out = b"".join(iter(lambda: os.read(stdout, 65536), b""))
        err = b"".join(iter(lambda: os.read(stderr, 65536), b""))
        status = child.wait(10)
        assert status is not None
        return child.pid, out, err, status
    finally:
        child.close_stdout()
        child.close_stderr()


def test_it_runs_in_its_folder_with_exactly_its_environment(path: str, tmp_path: Path) -> None:
    folder = tmp_path / "cgi bin"  # a space, as a folder may have
    folder.mkdir()
    probe = script(folder, "pwd; env | sort\n")
    _, out, err, status = run([str(probe)], folder, {"PATH": "/usr/bin:/bin", "A_B": "x y", "U": "é"})
    assert status == 0, err
    lines = out.decode().splitlines()
    assert lines[0] == str(folder)
    # sh adds PWD (and may add SHLVL, _) of its own; nothing of the server's
    assert {"A_B=x y", "PATH=/usr/bin:/bin", "U=é"} <= set(lines[1:])
    own = ("A_B", "PATH", "U", "PWD", "SHLVL", "_")
    assert not {line for line in lines[1:] if line.split("=")[0] not in own}


def test_arguments_and_stdin_reach_it(path: str, tmp_path: Path) -> None:
    probe = script(tmp_path, 'printf "%s|" "$@"; cat\n')
    _, out, _, status = run([str(probe), "a b", "", "c*"], tmp_path, stdin=b"the body")
    assert status == 0
    assert out == b"a b||c*|the body"


def test_stdin_is_dev_null_without_a_body(path: str, tmp_path: Path) -> None:
    probe = script(tmp_path, "wc -c; readlink /proc/self/fd/0\n")
    _, out, _, _ = run([str(probe)], tmp_path)
    assert out.split() == [b"0", b"/dev/null"]


def test_it_leads_its_own_session_and_process_group(path: str, tmp_path: Path) -> None:
    probe = script(tmp_path, "cut -d' ' -f5,6 /proc/$$/stat\n")  # pgrp, session
    pid, out, _, _ = run([str(probe)], tmp_path)
    assert out.split() == [str(pid).encode(), str(pid).encode()]


def test_no_other_fd_reaches_it(path: str, tmp_path: Path) -> None:
    inheritable = os.open(os.devnull, os.O_RDONLY)  # as gunicorn's listeners are
    os.set_inheritable(inheritable, True)
    try:
        probe = script(tmp_path, "exec ls /proc/self/fd\n")  # ls's own fd for the folder: 3
        _, out, _, _ = run([str(probe)], tmp_path)
    finally:
        os.close(inheritable)
    assert sorted(int(fd) for fd in out.split()) == [0, 1, 2, 3]


def test_signals_are_at_their_defaults_and_none_is_blocked(path: str, tmp_path: Path) -> None:
    probe = script(tmp_path, "exec grep -E '^Sig(Blk|Ign):' /proc/self/status\n")
    result: list[bytes] = []

    def start() -> None:  # in a thread that blocks signals, in a server that ignores SIGPIPE
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM})
        result.append(run([str(probe)], tmp_path)[1])

    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # Python's own setting
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        thread = threading.Thread(target=start)
        thread.start()
        thread.join(30)
    finally:
        signal.signal(signal.SIGHUP, previous)
    fields = dict(line.split(b":") for line in result[0].splitlines())
    ignored = int(fields[b"SigIgn"], 16)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # what subprocess's restore_signals resets
        assert not ignored & (1 << (sig - 1)), sig.name
    if path == "posix_spawn":  # every signal at its default, none blocked
        # but the C library's own (glibc: 32, 33, below SIGRTMIN), which glibc's posix_spawn
        # leaves ignored in every child (system() and popen() too): no program may use them
        own = sum(1 << (sig - 1) for sig in range(32, signal.SIGRTMIN))
        assert ignored & ~own == 0
        assert int(fields[b"SigBlk"], 16) == 0


def test_the_limits_wrappers_limits_apply(path: str, tmp_path: Path) -> None:
    prlimit = find_prlimit()
    if prlimit is None:
        pytest.skip("util-linux prlimit is not installed")
    probe = script(tmp_path, "ulimit -t; ulimit -f; pwd\n")
    wrapper = wrapper_argv(prlimit, (("cpu", 7), ("file-size", 1024 * 1024)))
    _, out, err, status = run([*wrapper, str(probe)], tmp_path)
    assert status == 0, err
    # sh's ulimit -f counts 512-byte blocks
    assert out.split() == [b"7", b"2048", str(tmp_path).encode()]


@pytest.mark.parametrize(("mode", "body", "error", "number"), [
    (0o644, "#!/bin/sh\necho hi\n", PermissionError, errno.EACCES),
    (0o755, "echo no shebang\n", OSError, errno.ENOEXEC),
    (0o755, "#!/no/such/interpreter\n", FileNotFoundError, errno.ENOENT),
])
def test_a_failed_exec_raises_what_subprocess_raised(path: str, tmp_path: Path, mode: int, body: str,
                                                     error: type[OSError], number: int) -> None:
    file = tmp_path / "bad"
    file.write_text(body)
    file.chmod(mode)
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(error) as raised:
        cgi_spawn.spawn([str(file)], {"PATH": "/bin"}, str(tmp_path), False)
    assert raised.value.errno == number
    assert set(os.listdir("/proc/self/fd")) == before  # no pipe left open


def test_a_missing_folder_or_file_raises_file_not_found(path: str, tmp_path: Path) -> None:
    probe = script(tmp_path, "echo hi\n")
    with pytest.raises(FileNotFoundError):
        cgi_spawn.spawn([str(probe)], {}, str(tmp_path / "gone"), False)
    with pytest.raises(FileNotFoundError):
        cgi_spawn.spawn([str(tmp_path / "gone")], {}, str(tmp_path), False)


def test_a_nul_byte_is_refused_before_anything_starts(path: str, tmp_path: Path) -> None:
    probe = script(tmp_path, "echo hi\n")
    with pytest.raises(ValueError, match="null"):
        cgi_spawn.spawn([str(probe), "a\0b"], {}, str(tmp_path), False)
    with pytest.raises(ValueError, match="null"):
        cgi_spawn.spawn([str(probe)], {"A": "a\0b"}, str(tmp_path), False)


def test_many_starts_from_threads_at_once_each_get_their_own_pipes(path: str, tmp_path: Path) -> None:
    folders = []
    for index in range(4):
        folder = tmp_path / f"f{index}"
        folder.mkdir()
        script(folder, 'printf "%s %s" "$(pwd)" "$1"\n')
        folders.append(folder)
    failures: list[str] = []

    def work(index: int) -> None:
        for turn in range(15):
            folder = folders[(index + turn) % len(folders)]
            _, out, _, _ = run([str(folder / "probe"), f"{index}-{turn}"], folder)
            if out != f"{folder} {index}-{turn}".encode():
                failures.append(out.decode())

    threads = [threading.Thread(target=work, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures


def test_the_execute_bit_alone_decides(path: str, tmp_path: Path) -> None:
    """A file the server may read but not execute: the exec's EACCES, as before (core/cgi.py
    answers it 403 with the chmod hint)."""
    probe = script(tmp_path, "echo hi\n")
    probe.chmod(stat.S_IRUSR | stat.S_IWUSR)  # not even root may execute a file with no x bit
    with pytest.raises(PermissionError):
        cgi_spawn.spawn([str(probe)], {}, str(tmp_path), False)
