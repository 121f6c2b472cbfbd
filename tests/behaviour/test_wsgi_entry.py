"""`gunicorn cgibox.wsgi:application`, configured by CGIBOX_* variables alone (the contract's WSGI
entry point, without the `cgibox` command in front of it)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.servers import REPO, Server

LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


@pytest.fixture(scope="module")
def plain_gunicorn(site_dirs, tmp_path_factory):
    root, cgi_dir = site_dirs
    logs = tmp_path_factory.mktemp("wsgi")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CGIBOX_")}
    env.update(CGIBOX_ROOT=str(root), CGIBOX_CGI_DIR=str(cgi_dir), CGIBOX_CGI_TIMEOUT="5")
    out, err = logs / "out", logs / "err"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "cgibox.wsgi:application", "--bind", "127.0.0.1:0",
             "--workers", "2", "--log-level", "info", "--graceful-timeout", "5"],
            stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env, cwd=REPO,
            start_new_session=True)
    server = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        match = LISTENING.search(err.read_text("utf-8", "replace"))
        if match:
            port = int(match.group(1))
            server = Server("gunicorn-wsgi", process, "127.0.0.1", port, out, err, root, cgi_dir)
            break
        time.sleep(0.05)
    if server is None:
        process.kill()
        pytest.fail(f"gunicorn did not start: {err.read_text()}")
    while time.monotonic() < deadline:
        try:
            if server.get("/healthz").status == 200:
                break
        except OSError:
            time.sleep(0.05)
    yield server
    server.stop()


def test_serves_files_and_scripts_from_the_environment(plain_gunicorn):
    assert plain_gunicorn.get("/hello.txt").body == b"hello, world\n"
    reply = plain_gunicorn.get("/cgi-bin/hello")
    assert reply.status == 200 and reply.body.startswith(b"Hello from cgibox")


def test_stats_count_every_worker(plain_gunicorn):
    before = plain_gunicorn.stats()["requests_total"]
    for _ in range(20):  # fresh connections: gunicorn spreads them over both workers
        assert plain_gunicorn.get("/healthz").status == 200
    stats = plain_gunicorn.stats()
    assert stats["requests_total"] >= before + 20
    assert stats["front"] == "gunicorn"


def test_access_log_is_the_cores(plain_gunicorn):
    plain_gunicorn.get("/hello.txt?wsgi-entry")
    deadline = time.monotonic() + 5
    while "wsgi-entry" not in plain_gunicorn.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(line for line in plain_gunicorn.log().splitlines() if "wsgi-entry" in line)
    assert '"GET /hello.txt?wsgi-entry HTTP/1.1" 200 13' in line


def test_sigterm_exits_zero(plain_gunicorn):
    assert plain_gunicorn.stop(signal.SIGTERM) == 0


def test_a_bad_variable_stops_it_with_a_line_naming_the_variable(site_dirs):
    """Checked when gunicorn loads the module: the server stops at once instead of failing requests."""
    root, cgi_dir = site_dirs
    env = {k: v for k, v in os.environ.items() if not k.startswith("CGIBOX_")}
    env.update(CGIBOX_ROOT=str(root), CGIBOX_CGI_DIR=str(cgi_dir), CGIBOX_CGI_TIMEOUT="abc")
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "cgibox.wsgi:application", "--bind", "127.0.0.1:0",
         "--workers", "1"],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO, stdin=subprocess.DEVNULL)
    assert result.returncode == 4, result.stderr  # gunicorn's "App failed to load."
    assert "cgibox: CGIBOX_CGI_TIMEOUT='abc': not a number of seconds\n" in result.stderr
