"""`python -m cgibox.compat` as a real process on port 0 and 127.0.0.1: http.server's flags,
defaults and start-up line, 127.0.0.1 unless -b says otherwise, no script without --cgi, and
one-line errors (exit status 2) for a bad command line."""

from __future__ import annotations

import http.client
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import REPO

STARTUP = re.compile(r"^Serving HTTP on (\S+) port (\d+) \(http://(\S+):(\d+)/\) \.\.\.$")
# the output is not in the source, so a served source cannot pass for a run
SCRIPT = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nscript %s' ran\n"


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "www"
    (root / "cgi-bin").mkdir(parents=True)
    (root / "index.txt").write_text("served\n")
    script = root / "cgi-bin" / "hello"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    return root


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cgibox.compat", *args]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "app"), env.get("PYTHONPATH")]))
    return env


@contextmanager
def running(*args: str, cwd: Path) -> Iterator[tuple[str, int, subprocess.Popen]]:
    process = subprocess.Popen(command(*args), cwd=cwd, env=environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 20)
        line = process.stdout.readline().rstrip("\n") if ready else ""
        match = STARTUP.match(line)
        assert match, f"no start-up line: {line!r} {process.poll()}"
        host, port, url_host, url_port = match.groups()
        assert port == url_port
        yield host, int(port), process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        process.stdout.close()
        process.stderr.close()


def fetch(host: str, port: int, path: str) -> tuple[int, int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.version, response.read()
    finally:
        conn.close()


def test_defaults_current_directory_127_0_0_1_and_no_scripts(folder):
    with running("0", cwd=folder) as (host, port, _):
        assert host == "127.0.0.1"
        status, version, body = fetch(host, port, "/index.txt")
        assert (status, version, body) == (200, 10, b"served\n")
        status, _, body = fetch(host, port, "/cgi-bin/hello")
        assert status == 200 and body == SCRIPT.encode()  # without --cgi nothing runs: a file


def test_cgi_directory_bind_and_protocol(folder, tmp_path):
    with running("--cgi", "-d", str(folder), "-b", "127.0.0.1", "-p", "HTTP/1.1", "0",
                 cwd=tmp_path) as (host, port, process):
        status, version, body = fetch(host, port, "/cgi-bin/hello")
        assert (status, version, body) == (200, 11, b"script ran")
        status, _, body = fetch(host, port, "/cgi-bin/")
        assert status == 403 and b"script ran" not in body
        assert fetch(host, port, "/index.txt")[2] == b"served\n"
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_the_default_port_is_8000_in_help_and_the_bind_default_is_said():
    result = subprocess.run(command("--help"), env=environment(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for flag in ("[--cgi]", "[-b ADDRESS]", "[-d DIRECTORY]", "[-p VERSION]", "[port]", "--bind",
                 "--directory", "--protocol"):
        assert flag in text, flag
    assert "default: 127.0.0.1" in text and "(default: 8000)" in text and "(default: HTTP/1.0)" in text


@pytest.mark.parametrize("args", [
    ["-p", "HTTP/2.0", "0"], ["-p", "HTTP/1.1\n", "0"], ["-p", "HTTP/1.0 ", "0"],
    ["-d", "/no/such/folder", "0"], ["not-a-port"], ["70000"],
    ["--no-such-flag"], ["-b", "192.0.2.1", "0"],
])
def test_bad_command_lines_are_one_line_and_status_2(args, tmp_path):
    result = subprocess.run(command(*args), cwd=tmp_path, env=environment(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and "error" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_port_in_use_is_one_line_and_status_2(folder):
    with running("0", cwd=folder) as (_, port, _):
        result = subprocess.run(command(str(port)), cwd=folder, env=environment(), capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 2 and "cannot listen" in result.stderr and result.stderr.count("\n") == 1
