"""--cgi-limits on every front: a runaway loop, a memory hog, a file-size hog and a fork bomb each
end with 502/504 and a log line naming the limit, while the server and other scripts go on.

RLIMIT_NPROC counts the processes of a user and the kernel never applies it to root, so when the
suite runs as root (CI does) the fork-bomb server runs as a user id of its own (util-linux
`setpriv`), as cgibox should be run in production; the bomb itself stops after 300 forks, so
even a limit that failed to hold could not take the machine down.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.behaviour.test_cli import assert_one_line_error, run_cgibox
from tests.servers import start_server

PY = "#!/usr/bin/env python3\n"
SCRIPTS = {
    "spin": PY + "while True:\n    pass\n",
    # 2 GiB asked for at once: refused under the limit; nothing is touched, so no memory is used
    "hog": PY + "data = bytearray(2 * 1024 ** 3)\nprint('Content-Type: text/plain\\n\\nallocated')\n",
    "bigfile": PY + """import tempfile
with tempfile.TemporaryFile() as f:
    f.write(b"x" * (2 * 1024 * 1024))
print("Content-Type: text/plain\\n\\nwritten")
""",
    "ok": "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nstill here\\n'\n",
    # a bounded fork bomb: children sleep holding stdout; it gives up after 300 forks
    "bomb": PY + """import os, sys, time
made = 0
try:
    for _ in range(300):
        if os.fork() == 0:
            time.sleep(20)
            os._exit(0)
        made += 1
except OSError as error:
    sys.stderr.write(f"fork {made + 1} failed: {error}\\n")
    sys.exit(1)
print(f"Content-Type: text/plain\\n\\nforked {made}")
""",
}


@pytest.fixture(scope="module")
def limit_site():
    """A root and cgi dir any user can read (the bomb's server may run as another user)."""
    base = Path(tempfile.mkdtemp(prefix="cgibox-limits-"))
    (base / "www").mkdir()
    (base / "www" / "index.html").write_text("<p>limits</p>\n")
    cgi_dir = base / "cgi"
    cgi_dir.mkdir()
    for name, body in SCRIPTS.items():
        (cgi_dir / name).write_text(body)
        (cgi_dir / name).chmod(0o755)
    for folder in (base, base / "www", cgi_dir):
        folder.chmod(0o755)
    yield base / "www", cgi_dir
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def limited(front, limit_site, tmp_path_factory):
    root, cgi_dir = limit_site
    running = start_server(front, root, cgi_dir, tmp_path_factory.mktemp("logs"),
                           ["--cgi-limits", "cpu=1,memory=300m,file-size=1m,processes=10000",
                            "--cgi-timeout", "20"])
    yield running
    running.stop()


def wait_for_log(server, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        errors = server.errors()
        if text in errors:
            return errors
        time.sleep(0.1)
    raise AssertionError(f"no {text!r} in the server log:\n{server.errors()}")


def test_a_runaway_loop_is_stopped_by_the_cpu_limit(limited):
    results: dict[str, int] = {}
    # one CPU second can take many seconds of wall time on a busy machine: a generous client timeout
    spinning = threading.Thread(target=lambda: results.update(
        spin=limited.request("GET", "/cgi-bin/spin", timeout=60).status))
    spinning.start()
    # meanwhile another script and a file are served
    assert limited.get("/cgi-bin/ok").body == b"still here\n"
    assert limited.get("/").status == 200
    spinning.join(60)
    assert results["spin"] in (502, 504)
    wait_for_log(limited, "stopped by its cpu limit (--cgi-limits cpu=1)")
    assert limited.alive()
    assert limited.get("/cgi-bin/ok").status == 200


def test_a_memory_hog_is_stopped_by_the_memory_limit(limited):
    assert limited.get("/cgi-bin/hog").status == 502
    wait_for_log(limited, "stopped by its memory limit (--cgi-limits memory=314572800)")
    assert limited.get("/cgi-bin/ok").status == 200


def test_a_large_file_is_stopped_by_the_file_size_limit(limited):
    assert limited.get("/cgi-bin/bigfile").status == 502
    wait_for_log(limited, "stopped by its file-size limit (--cgi-limits file-size=1048576)")
    assert limited.get("/cgi-bin/ok").status == 200


def test_scripts_within_their_limits_run_as_before(limited):
    reply = limited.get("/cgi-bin/ok")
    assert (reply.status, reply.body) == (200, b"still here\n")


# -- the fork bomb ----------------------------------------------------------------------------------

def _uids_in_use() -> set[int]:
    uids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                uids.add(os.stat(f"/proc/{entry}").st_uid)
            except OSError:
                pass
    return uids


def _tasks_of(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                pass
    return count


def _processes_running(path_part: str) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as file:
                    if path_part.encode() in file.read():
                        count += 1
            except OSError:
                pass
    return count


def bomb_server_setup() -> tuple[list[str], int]:
    """(command prefix, processes=N) under which the process limit can hold."""
    if os.geteuid() != 0:
        return [], _tasks_of(os.getuid()) + 80
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, where RLIMIT_NPROC does not apply, and util-linux setpriv "
                    "is missing to serve as another user")
    in_use = _uids_in_use()
    uid = next(candidate for candidate in range(42000 + os.getpid() % 1000, 60000) if candidate not in in_use)
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"], 60


def test_a_fork_bomb_is_contained_by_the_process_limit(front, limit_site, tmp_path):
    root, cgi_dir = limit_site
    prefix, processes = bomb_server_setup()
    running = start_server(front, root, cgi_dir, tmp_path / "logs",
                           ["--cgi-limits", f"processes={processes}", "--cgi-timeout", "1"],
                           prefix=prefix)
    try:
        reply = running.get("/cgi-bin/bomb")
        assert reply.status in (502, 504)
        errors = wait_for_log(running, f"stopped by its processes limit (--cgi-limits processes={processes})")
        assert "failed: [Errno 11]" in errors
        assert running.alive()
        assert running.get("/cgi-bin/ok").body == b"still here\n"
        # the whole group is ended with the run: no bomb child is left
        deadline = time.monotonic() + 10
        while _processes_running(str(cgi_dir / "bomb")):
            assert time.monotonic() < deadline, "bomb processes outlived their run"
            time.sleep(0.1)
    finally:
        running.stop()


def test_root_is_warned_that_the_process_limit_does_not_hold(limited):
    if os.geteuid() != 0:
        pytest.skip("only root is exempt from RLIMIT_NPROC")
    assert "processes= does not hold for scripts run as root" in limited.errors()


@pytest.mark.parametrize("value", ["cpu=abc", "bogus=1", "memory=-5", "cpu=1m", "processes"])
def test_bad_limits_are_refused(site_dirs, value):
    root, cgi_dir = site_dirs
    result = run_cgibox("--root", str(root), "--cgi-dir", str(cgi_dir), "--cgi-limits", value)
    assert_one_line_error(result, "cgi-limits")
