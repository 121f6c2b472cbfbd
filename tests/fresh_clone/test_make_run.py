"""README's first command, as a new user types it: `make run` in a fresh clone serves, and says
nothing but its start-up line (plus one line while it installs, the first time).

It clones what is committed (HEAD), installs from PyPI into the clone's own .venv (~10-30 s), so it
is marked `slow`: `pytest -m 'not slow'` leaves it out while you work; `make test` runs it.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import REPO, STARTUP

pytestmark = pytest.mark.slow

INSTALL_NOTICE = "make: installing cgibox into .venv (on the first run, and after pyproject.toml changes)"
# pip's complaint about an index or find-links folder named in this machine's own pip configuration
# that does not exist: the machine's, not cgibox's, so it is the one thing allowed on stderr
MACHINE_PIP_CONFIG = re.compile(
    r"WARNING: Location '[^']*' is ignored: it is neither a file nor a directory\.")
# the start-up note a server run inside a container adds (this machine may be one): cgibox's own
CONTAINER_NOTE = re.compile(r"  \(in a container: \d+ is the container's port; .*\)")


def quiet(stderr: list[str]) -> list[str]:
    """stderr less what this machine, not cgibox, makes it say: pip's configuration's complaint,
    and the container note when this machine is a container (announce.in_container())."""
    from cgibox.announce import in_container

    return [line for line in stderr if not MACHINE_PIP_CONFIG.fullmatch(line)
            and not (in_container() and CONTAINER_NOTE.fullmatch(line))]


@dataclass
class FirstOutput:
    """What `make run` printed up to its start-up line, before any request reached it."""

    stdout: list[str]
    stderr: list[str]
    port: int


def user_environment() -> dict[str, str]:
    """The caller's environment without what would make this run unlike a user's shell: cgibox
    settings, the make running this test, pip settings the Makefile must set itself, this .venv."""
    own_venv = str(REPO / ".venv")
    dropped = ("PIP_DISABLE_PIP_VERSION_CHECK", "PIP_ROOT_USER_ACTION", "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CGIBOX_", "MAKE", "MFLAGS")) and k not in dropped}
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep)
                                  if not part.startswith(own_venv))
    return env


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    for tool in ("git", "make"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip(f"{REPO} is not a git checkout with a commit")
    target = tmp_path_factory.mktemp("fresh") / "cgibox"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True, timeout=120,
                   stdin=subprocess.DEVNULL)
    return target


@contextmanager
def make_run(clone: Path, logs: Path) -> Iterator[FirstOutput]:
    """`make run ARGS="--port 0"` in the clone, until its start-up line; its whole group is ended after."""
    out_path, err_path = logs / "out", logs / "err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen(["make", "run", "ARGS=--port 0"], cwd=clone, stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL, env=user_environment(), start_new_session=True)
    try:
        match = None
        deadline = time.monotonic() + 300  # pip from PyPI on a slow day; a second run needs well under 1 s
        while match is None and time.monotonic() < deadline and process.poll() is None:
            match = STARTUP.search(out_path.read_text("utf-8", "replace"))
            time.sleep(0.05)
        stdout, stderr = out_path.read_text("utf-8", "replace"), err_path.read_text("utf-8", "replace")
        assert match, f"make run did not serve (exit {process.poll()}):\n{stdout}\n{stderr}"
        yield FirstOutput(stdout.splitlines(), stderr.splitlines(), int(match.group(2).rsplit(":", 1)[1]))
    finally:
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(process.pid, sig)
                process.wait(wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def get_root(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        reply = conn.getresponse()
        reply.read()
        return reply.status
    finally:
        conn.close()


def startup_line_for(clone: Path, port: int) -> str:
    return f"cgibox {version_of(clone)} (threading) serving {clone / 'static'} on http://127.0.0.1:{port}/"


def version_of(clone: Path) -> str:
    return re.search(r'^version = "(.*)"', (clone / "pyproject.toml").read_text(), re.M).group(1)


def test_first_make_run_installs_quietly_and_serves(clone, tmp_path):
    with make_run(clone, tmp_path) as first:
        assert first.stdout == [INSTALL_NOTICE, startup_line_for(clone, first.port)]
        assert quiet(first.stderr) == []
        assert get_root(first.port) == 200
    # only what serving needs: the test tools are `make test`'s
    assert not (clone / ".venv" / "bin" / "pytest").exists()
    assert not list((clone / ".venv").glob(".installed-*"))


def test_second_make_run_starts_without_pip(clone, tmp_path):
    if not list((clone / ".venv").glob(".serve-*")):
        pytest.skip("needs the first run's .venv (run the whole module)")
    with make_run(clone, tmp_path) as second:
        assert second.stdout == [startup_line_for(clone, second.port)]  # no install notice: no pip
        assert quiet(second.stderr) == []
        assert get_root(second.port) == 200
