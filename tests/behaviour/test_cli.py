"""The `cgibox` command itself (run once, not per front): bad input is one line on stderr and
exit status 2; --port 0 prints the chosen port; environment variables apply, and flags beat them."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time

import pytest

from tests.servers import ALL_FRONTS, REPO, STARTUP, cgibox_command, start_server


def run_cgibox(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("CGIBOX_")}
    child_env.update(env or {})
    return subprocess.run(cgibox_command(*args), capture_output=True, text=True, timeout=30,
                          env=child_env, cwd=REPO, stdin=subprocess.DEVNULL)


@pytest.fixture
def dirs(site_dirs) -> list[str]:
    root, cgi_dir = site_dirs
    return ["--root", str(root), "--cgi-dir", str(cgi_dir)]


def assert_one_line_error(result: subprocess.CompletedProcess, mentions: str = "") -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cgibox: ")
    assert mentions in lines[0]


@pytest.mark.parametrize(("args", "mentions"), [
    (["--no-such-flag"], "--no-such-flag"),
    (["--por", "0"], "--por"),  # abbreviations are unknown flags too
    (["--port", "eighty"], "cgibox: --port 'eighty': not a port number"),
    (["--port", "65536"], "cgibox: --port '65536': "),
    (["--port", "-1"], "--port"),
    (["--front", "tornado"], "cgibox: --front 'tornado': must be threading, forking or gunicorn"),
    (["--threads", "0"], "cgibox: --threads '0': "),
    (["--log-format", "xml"], "cgibox: --log-format 'xml': "),
    (["--header-timeout", "never"], "cgibox: --header-timeout 'never': not a number of seconds"),
    (["--host", "::nope"], "cgibox: --host '::nope': "),
])
def test_bad_flags(dirs, args, mentions):
    assert_one_line_error(run_cgibox(*dirs, "--port", "0", *args), mentions)


def test_missing_root(site_dirs, tmp_path):
    _, cgi_dir = site_dirs
    result = run_cgibox("--root", str(tmp_path / "absent"), "--cgi-dir", str(cgi_dir), "--port", "0")
    assert_one_line_error(result, f"cgibox: --root {str(tmp_path / 'absent')!r}: no such folder")


def test_missing_cgi_dir(site_dirs, tmp_path):
    root, _ = site_dirs
    result = run_cgibox("--root", str(root), "--cgi-dir", str(tmp_path / "absent"), "--port", "0")
    assert_one_line_error(result, "cgibox: --cgi-dir ")


def test_empty_paths_are_errors(site_dirs):
    """An empty path is no folder: never the current one (every executable there would run)."""
    root, cgi_dir = site_dirs
    assert_one_line_error(run_cgibox("--root", str(root), "--cgi-dir", ""), "--cgi-dir '': an empty path")
    assert_one_line_error(run_cgibox("--root", "", "--cgi-dir", str(cgi_dir)), "--root '': an empty path")


def test_the_folder_given_twice(site_dirs):
    root, _ = site_dirs
    assert_one_line_error(run_cgibox(str(root), "--root", str(root)), "given twice")


@pytest.mark.parametrize(("variable", "value"), [
    ("CGIBOX_PORT", "http"), ("CGIBOX_FRONT", "nginx"), ("CGIBOX_MAX_BODY", "-5"),
    ("CGIBOX_ROOT", "/no/such/folder"), ("CGIBOX_CGI_TIMEOUT", "0"), ("CGIBOX_CGI_TIMEOUT", "abc"),
])
def test_bad_environment_values(site_dirs, variable, value):
    root, cgi_dir = site_dirs
    env = {"CGIBOX_ROOT": str(root), "CGIBOX_CGI_DIR": str(cgi_dir), "CGIBOX_PORT": "0", variable: value}
    assert_one_line_error(run_cgibox(env=env), f"cgibox: {variable}={value!r}: ")


def test_the_issue_example():
    result = run_cgibox(env={"CGIBOX_CGI_TIMEOUT": "abc", "CGIBOX_PORT": "0"})
    assert_one_line_error(result)
    assert result.stderr == "cgibox: CGIBOX_CGI_TIMEOUT='abc': not a number of seconds\n"


def test_port_in_use(dirs):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert_one_line_error(run_cgibox(*dirs, "--port", str(port)), str(port))


def test_port_in_use_on_every_front(dirs, front):
    """Every front reports a port it cannot listen on the same way: one line, exit status 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert_one_line_error(run_cgibox(*ALL_FRONTS[front], *dirs, "--port", str(port)), str(port))


def test_version():
    result = run_cgibox("--version")
    assert result.returncode == 0 and re.fullmatch(r"cgibox \d+\.\d+\.\d+\n", result.stdout)


def test_port_zero_start_up_line(site_dirs, tmp_path):
    root, cgi_dir = site_dirs
    server = start_server("threading", root, cgi_dir, tmp_path)
    try:
        out = server.log()
        first = out.splitlines()[0]
        match = STARTUP.match(first)
        assert match, first
        assert match.group(1) == "threading"
        assert f" serving {root} on http://127.0.0.1:" in first
        assert server.port != 0 and first.endswith(f":{server.port}/")
        assert server.get("/healthz").status == 200
    finally:
        assert server.stop() == 0


def test_environment_is_honoured(site_dirs, tmp_path):
    """Everything from CGIBOX_* variables: root, cgi dir, port 0, front, log format."""
    root, cgi_dir = site_dirs
    env = {k: v for k, v in os.environ.items() if not k.startswith("CGIBOX_")}
    env.update({"CGIBOX_ROOT": str(root), "CGIBOX_CGI_DIR": str(cgi_dir), "CGIBOX_PORT": "0",
                "CGIBOX_FRONT": "forking", "CGIBOX_LOG_FORMAT": "json"})
    out_path = tmp_path / "out"
    with open(out_path, "wb") as out:
        process = subprocess.Popen(cgibox_command(), stdout=out, stderr=subprocess.DEVNULL, env=env,
                                   cwd=REPO, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        match = None
        deadline = time.monotonic() + 30
        while match is None and time.monotonic() < deadline and process.poll() is None:
            match = STARTUP.search(out_path.read_text())
            time.sleep(0.05)
        assert match, out_path.read_text()
        assert match.group(1) == "forking"
        port = int(match.group(2).rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /hello.txt HTTP/1.0\r\n\r\n")
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(b"hello, world\n")
        record = None
        deadline = time.monotonic() + 10
        while record is None and time.monotonic() < deadline:
            lines = [line for line in out_path.read_text().splitlines() if line.startswith("{")]
            record = json.loads(lines[0]) if lines else None
            time.sleep(0.05)
        assert record and record["path"] == "/hello.txt" and record["status"] == 200
    finally:
        process.terminate()
        assert process.wait(20) == 0


def test_flag_beats_environment(site_dirs, tmp_path):
    root, cgi_dir = site_dirs
    env = {"CGIBOX_FRONT": "forking", "CGIBOX_ROOT": "/no/such/folder", "CGIBOX_PORT": "1",
           "CGIBOX_LOG_FORMAT": "json"}
    server = start_server("threading", root, cgi_dir, tmp_path, extra=["--log-format", "combined"], env=env)
    try:
        assert STARTUP.search(server.log()).group(1) == "threading"
        assert server.get("/hello.txt").status == 200
        deadline = time.monotonic() + 10
        while "GET /hello.txt" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        line = next(line for line in server.log().splitlines() if "/hello.txt" in line)
        assert line.startswith("127.0.0.1 - - [")  # combined, as the flag said
    finally:
        assert server.stop() == 0
