"""A folder or file the server's user cannot read (a container's non-root user and a host folder
of mode 0700, say): 403 for the client and a log line naming the path, the reason and the user
(issue 24 A4), on every front."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.servers import start_server


def other_user_prefix() -> list[str]:
    """Serve as a user that is not the files' owner: setpriv to a free uid when running as root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root (who reads everything) and util-linux setpriv is missing")
    uid = 43000 + os.getpid() % 1000
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


@pytest.fixture
def site():
    # outside pytest's own 0700 tree, which the other user could not enter at all
    base = Path(tempfile.mkdtemp(prefix="cgibox-unreadable-"))
    root, cgi_dir = base / "www", base / "cgi-bin"
    root.mkdir()
    cgi_dir.mkdir()
    (root / "open.txt").write_text("readable\n")
    (root / "locked").mkdir()
    (root / "locked" / "inside.txt").write_text("x\n")
    (root / "secret.txt").write_text("no\n")
    for path in (base, root, cgi_dir):
        path.chmod(0o755)
    (root / "open.txt").chmod(0o644)
    (root / "locked").chmod(0o700)
    (root / "secret.txt").chmod(0o600)
    yield root, cgi_dir
    (root / "locked").chmod(0o700)
    shutil.rmtree(base, ignore_errors=True)


def wait_for_errors(server, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in server.errors() and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.errors()


def test_an_unreadable_folder_or_file_is_403_with_the_reason_logged(front, site, tmp_path):
    if os.geteuid() != 0 and not other_user_prefix():
        # not root: the files are the server's own, so make them unreadable to their owner too
        (site[0] / "locked").chmod(0o000)
        (site[0] / "secret.txt").chmod(0o000)
    root, cgi_dir = site
    running = start_server(front, root, cgi_dir, tmp_path / "logs", prefix=other_user_prefix())
    try:
        assert running.get("/open.txt").body == b"readable\n"
        for path, shown in (("/locked/", "locked"), ("/locked/inside.txt", "locked"),
                            ("/secret.txt", "secret.txt")):
            reply = running.get(path)
            assert reply.status == 403, path
            errors = wait_for_errors(running, f"{shown}: Permission denied")
            line = next(line for line in errors.splitlines() if f"{shown}: Permission denied" in line)
            assert line.startswith("cgibox: 403: ") and "for uid " in line and "chmod" in line
            assert str(root) in line
    finally:
        running.stop()
