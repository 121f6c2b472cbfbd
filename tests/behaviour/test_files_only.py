"""`cgibox [DIR]`: one word serves a folder, with no scripts unless a cgi folder is there or asked
for (CONTRACT: --root, --cgi-dir none), on every front."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.servers import ALL_FRONTS, REPO, STARTUP, Server, cgibox_command


@pytest.fixture
def started(front, tmp_path):
    """start(args, cwd): cgibox run with `args` in the folder `cwd` (no --root, no --cgi-dir)."""
    running: list[Server] = []

    def start(args: list[str], cwd: Path) -> Server:
        out, err = tmp_path / f"out-{len(running)}", tmp_path / f"err-{len(running)}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CGIBOX_")}
        env["PYTHONPATH"] = str(REPO / "app")
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            process = subprocess.Popen(
                cgibox_command(*ALL_FRONTS[front], "--host", "127.0.0.1", "--port", "0", *args),
                stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                start_new_session=True)
        deadline = time.monotonic() + 30
        while not (match := STARTUP.search(out.read_text("utf-8", "replace"))):
            assert process.poll() is None, err.read_text()
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(0.05)
        port = int(match.group(2).rsplit(":", 1)[1])
        server = Server(front, process, "127.0.0.1", port, out, err, cwd, cwd, args)
        running.append(server)
        while server.get("/healthz").status != 200:
            time.sleep(0.05)
        return server

    yield start
    for server in running:
        server.stop()


def folder(tmp_path: Path) -> Path:
    here = tmp_path / "share"
    (here / "cgi-bin").mkdir(parents=True)
    (here / "note.txt").write_text("hello\n")
    script = here / "cgi-bin" / "run"
    script.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nran\\n'\n")
    script.chmod(0o755)
    return here


def test_one_word_serves_the_current_folder_without_scripts(started, tmp_path):
    here = folder(tmp_path)
    (here / "cgi-bin" / "run").rename(here / "run")
    (here / "cgi-bin").rmdir()
    server = started([], here)
    assert server.get("/note.txt").body == b"hello\n"
    assert server.get("/run").status == 200  # a file like any other, never run
    assert server.get("/run").body.startswith(b"#!/bin/sh")
    assert server.get("/cgi-bin/run").status == 404
    assert "no ./cgi-bin here: no scripts" in server.errors()
    assert f"serving {here}" in server.log()


def test_a_folder_argument_and_a_cgi_bin_beside(started, tmp_path):
    here = folder(tmp_path)
    server = started([str(here)], here)  # ./cgi-bin of the working folder runs
    assert server.get("/note.txt").body == b"hello\n"
    assert server.get("/cgi-bin/run").body == b"ran\n"
    assert server.get("/cgi-bin/").status != 200 or b"run" not in server.get("/cgi-bin/").body
    assert "no ./cgi-bin" not in server.errors()


def test_cgi_dir_none_serves_files_only(started, tmp_path):
    here = folder(tmp_path)
    server = started([str(here), "--cgi-dir", "none"], here)
    # no script folder at all: ./cgi-bin is one more folder of the root, as with http.server
    # without --cgi and Apache without ScriptAlias
    assert server.get("/cgi-bin/run").body.startswith(b"#!/bin/sh")
    assert server.get("/note.txt").status == 200
    assert "no ./cgi-bin" not in server.errors()
