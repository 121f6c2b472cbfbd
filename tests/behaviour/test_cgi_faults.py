"""Faults around scripts, on every front (threading with two serving processes): a serving process
killed mid-run or a server stopped past --graceful-timeout leaves no script running and no slot
taken; slow request bodies hold no --cgi-max slot and end in 408; --cgi-timeout counts silence
and --cgi-max-time the whole run; a script that dies or hits a limit after its head never gives a
response that looks complete."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.behaviour.site_cgi import dechunk, recv_until, split_response, tag, wait_for_file, wait_gone
from tests.behaviour.test_cli import assert_one_line_error, run_cgibox
from tests.servers import read_from

SH = "#!/bin/sh\n"
SCRIPTS = {
    # writes its pid, its parent's (the serving process) and a background child's, sends its head
    # and a line, then stays silent for a minute
    "hang": SH + r"""echo $$ > "{out}/$1.pid"
echo $PPID > "{out}/$1.ppid"
sleep 60 &
echo $! > "{out}/$1.child"
printf 'Content-Type: text/plain\n\nstarted\n'
wait
""",
    "hello": SH + "printf 'Content-Type: text/plain\\n\\nhello\\n'\n",
    # a line every 0.25 s for 2.5 s: never silent for long, but long in all
    "steady": SH + r"""printf 'Content-Type: text/plain\n\n'
i=0
while [ $i -lt 10 ]; do echo "line $i"; sleep 0.25; i=$((i + 1)); done
echo done
""",
    # its head and a line, then killed by a signal
    "dies": SH + r"""printf 'Content-Type: text/plain\n\nbefore\n'
kill -KILL $$
""",
    # its head and a line, then a loop that only the CPU limit ends
    "spin": "#!/usr/bin/env python3\n" + """import sys
sys.stdout.write("Content-Type: text/plain\\n\\nspinning\\n")
sys.stdout.flush()
while True:
    pass
""",
    # its head and a line, then 2 GiB asked for at once: a MemoryError under memory=300m (exit 1)
    "hog": "#!/usr/bin/env python3\n" + """import sys
sys.stdout.write("Content-Type: text/plain\\n\\nallocating\\n")
sys.stdout.flush()
data = bytearray(2 * 1024 ** 3)
print("allocated")
""",
    # the request body it read, and its length
    "echo": SH + r"""printf 'Content-Type: text/plain\n\n%s:' "$CONTENT_LENGTH"
cat
""",
}


@pytest.fixture
def fault_site(tmp_path) -> tuple[Path, Path]:
    """(cgi dir, the folder the scripts write their pids in)."""
    cgi_dir, out = tmp_path / "cgi", tmp_path / "out"
    cgi_dir.mkdir()
    out.mkdir()
    for name, body in SCRIPTS.items():
        path = cgi_dir / name
        path.write_text(body.replace("{out}", str(out)))
        path.chmod(0o755)
    return cgi_dir, out


@pytest.fixture
def start(front, make_server, fault_site):
    """make_server for these scripts; the threading front with two serving processes, so that
    one of them can be killed while its supervisor goes on."""
    cgi_dir, _ = fault_site

    def starting(extra: list[str] | None = None):
        processes = ["--processes", "2"] if front == "threading" else []
        return make_server([*processes, *(extra or [])], cgi_dir=cgi_dir)

    return starting


def start_hang(server, out: Path) -> tuple[socket.socket, int, int, int]:
    """A connection whose script has sent its head and hangs: (socket, serving pid, script, child)."""
    name = tag("hang")
    sock = socket.create_connection((server.host, server.port), timeout=20)
    sock.sendall(f"GET /cgi-bin/hang?{name} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    assert b"started" in recv_until(sock, b"started")
    return (sock, int(wait_for_file(out / f"{name}.ppid")), int(wait_for_file(out / f"{name}.pid")),
            int(wait_for_file(out / f"{name}.child")))


def status_soon(server, path: str, want: int, tries: int = 50) -> int:
    """The status of `path`, asked again (at most `tries` times, 0.1 s apart) until it is `want`."""
    status = 0
    for _ in range(tries):
        status = server.get(path).status
        if status == want:
            break
        time.sleep(0.1)
    return status


def chunked_response(server, request: bytes, timeout: float = 30) -> tuple[str, bytes, bool]:
    """(status line, body data, whether its last chunk came) of a raw HTTP/1.1 request."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(request)
        data, _ = read_from(sock, timeout=timeout)
    status, headers, body = split_response(data)
    assert headers.get("transfer-encoding") == "chunked", data[:300]
    text, complete = dechunk(body)
    return status, text, complete


# -- serving processes that die, servers that stop ---------------------------------------------

def kill_and_expect_its_scripts_gone(serving: int, script: int, child: int) -> None:
    """SIGKILL a serving process: the script it ran and that script's child must end too."""
    os.kill(serving, signal.SIGKILL)
    assert wait_gone(script, timeout=15), "the script outlived its serving process"
    assert wait_gone(child, timeout=15), "the script's child outlived its serving process"


def test_a_killed_serving_process_leaves_no_script_and_frees_its_slot(start, fault_site):
    """kill -9 (or the OOM killer) of the process running a script: its whole group is ended
    and, with --cgi-max 1, the next script runs."""
    _, out = fault_site
    server = start(["--cgi-max", "1", "--cgi-timeout", "120"])
    sock, serving, script, child = start_hang(server, out)
    try:
        assert server.get("/cgi-bin/hello").status == 503  # the only slot is the hanging script's
        kill_and_expect_its_scripts_gone(serving, script, child)
    finally:
        sock.close()
    assert status_soon(server, "/cgi-bin/hello", 200) == 200, "the dead process's slot was never freed"
    assert server.alive()


def test_a_killed_single_serving_process_leaves_no_script(front, make_server, fault_site):
    """The threading front with --processes 1: its one serving process runs under the
    supervisor too, so its scripts end with it and another process takes over."""
    if front != "threading":
        pytest.skip("--processes is the threading front's")
    cgi_dir, out = fault_site
    server = make_server(["--processes", "1", "--cgi-max", "1", "--cgi-timeout", "120"], cgi_dir=cgi_dir)
    sock, serving, script, child = start_hang(server, out)
    try:
        assert serving != server.process.pid, "the serving process is not the supervisor"
        kill_and_expect_its_scripts_gone(serving, script, child)
    finally:
        sock.close()
    assert status_soon(server, "/cgi-bin/hello", 200) == 200, "no process took over, or the slot stayed taken"
    assert server.alive()


def test_a_stop_past_the_graceful_timeout_leaves_no_script(start, fault_site):
    _, out = fault_site
    server = start(["--graceful-timeout", "1", "--cgi-timeout", "120"])
    sock, _, script, child = start_hang(server, out)
    try:
        assert server.stop(signal.SIGTERM, timeout=30) == 0
    finally:
        sock.close()
    assert wait_gone(script), "a script outlived the server"
    assert wait_gone(child), "a script's child outlived the server"


def test_a_single_process_server_stopped_past_the_graceful_timeout_leaves_no_script(
        front, make_server, fault_site):
    """The threading front with one process: the serving process is the top one."""
    if front != "threading":
        pytest.skip("--processes is the threading front's")
    cgi_dir, out = fault_site
    server = make_server(["--processes", "1", "--graceful-timeout", "1", "--cgi-timeout", "120"],
                         cgi_dir=cgi_dir)
    sock, _, script, child = start_hang(server, out)
    try:
        assert server.stop(signal.SIGTERM, timeout=30) == 0
    finally:
        sock.close()
    assert wait_gone(script) and wait_gone(child)


# -- request bodies ----------------------------------------------------------------------------

def test_a_slow_chunked_upload_holds_no_slot(start):
    """With --cgi-max 1, a client sending its chunked body a little at a time does not make
    other scripts answer 503; its own script runs once the body is whole."""
    server = start(["--cgi-max", "1", "--body-timeout", "60"])
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        sock.sendall(b"POST /cgi-bin/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n")
        time.sleep(0.5)  # the server has the head and a chunk, and waits for more
        for _ in range(3):
            assert server.get("/cgi-bin/hello").status == 200
        sock.sendall(b"6\r\n world\r\n0\r\n\r\n")
        data, _ = read_from(sock, b"\r\n0\r\n\r\n", timeout=30)
    status, headers, body = split_response(data)
    assert " 200 " in status
    assert dechunk(body)[0] == b"11:hello world"


def test_a_body_that_stops_arriving_is_408_and_closed(start):
    """Content-Length: 100 and 10 bytes, then silence: 408 after --body-timeout (not a 504 that
    blames the script), and the connection is closed. --cgi-timeout is long: a 504 would only
    come after it."""
    server = start(["--body-timeout", "1", "--cgi-timeout", "120"])
    with socket.create_connection((server.host, server.port), timeout=60) as sock:
        sock.sendall(b"POST /cgi-bin/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        data, closed = read_from(sock, timeout=60)
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert closed
    assert status_soon(server, "/cgi-bin/hello", 200) == 200


# -- --cgi-timeout and --cgi-max-time ----------------------------------------------------------

REQUEST = "GET /cgi-bin/{} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def test_a_script_that_keeps_writing_outlives_its_cgi_timeout(start):
    """--cgi-timeout is silence: a script writing every 0.25 s for 2.5 s with a 1 s timeout is whole."""
    server = start(["--cgi-timeout", "1"])
    status, text, complete = chunked_response(server, REQUEST.format("steady").encode())
    assert " 200 " in status
    assert text.endswith(b"line 9\ndone\n")
    assert complete


def test_cgi_max_time_cuts_a_run_however_much_it_writes(start):
    server = start(["--cgi-timeout", "30", "--cgi-max-time", "1"])
    status, text, complete = chunked_response(server, REQUEST.format("steady").encode())
    assert " 200 " in status
    assert text.startswith(b"line 0\n") and b"done" not in text
    assert not complete, "a run cut by --cgi-max-time looked complete"
    assert "--cgi-max-time" in server.errors() + server.log()


def test_cgi_max_time_before_the_head_is_504(start, fault_site):
    _, out = fault_site
    server = start(["--cgi-max-time", "1"])
    (out.parent / "cgi" / "slow").write_text(SH + "sleep 30\n")
    (out.parent / "cgi" / "slow").chmod(0o755)
    assert server.get("/cgi-bin/slow").status == 504


# -- responses cut short -----------------------------------------------------------------------

def test_a_script_killed_after_its_head_gives_a_broken_body(start):
    server = start()
    status, text, complete = chunked_response(server, REQUEST.format("dies").encode())
    assert " 200 " in status
    assert text == b"before\n"
    assert not complete, "the body of a script killed mid-answer looked complete"


def test_a_limit_hit_after_the_head_gives_a_broken_body(start):
    server = start(["--cgi-limits", "cpu=1", "--cgi-timeout", "30"])
    status, text, complete = chunked_response(server, REQUEST.format("spin").encode())
    assert " 200 " in status
    assert text == b"spinning\n"
    assert not complete, "the body of a script stopped by --cgi-limits looked complete"
    deadline = time.monotonic() + 10
    while "cpu limit" not in server.errors() + server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "cpu limit" in server.errors() + server.log()


def test_a_memory_limit_hit_after_the_head_gives_a_broken_body(start):
    """The script is not killed: it fails (MemoryError, exit status 1), which the limit explains."""
    server = start(["--cgi-limits", "memory=300m"])
    status, text, complete = chunked_response(server, REQUEST.format("hog").encode())
    assert " 200 " in status
    assert text == b"allocating\n"
    assert not complete, "the body of a script stopped by its memory limit looked complete"


# -- start-up ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "mentions"), [
    ("memory=99999999999g", "larger than the kernel allows"),
    ("processes=9223372036854775807", "no script could start"),  # past the kernel's RLIMIT_NPROC
    ("memory=1k", "no script could start"),  # nothing can even be executed in 1 KiB
])
def test_limits_the_kernel_refuses_are_refused_at_start(site_dirs, value, mentions):
    """They were accepted, and then every script answered 502."""
    root, cgi_dir = site_dirs
    result = run_cgibox("--root", str(root), "--cgi-dir", str(cgi_dir), "--port", "0", "--cgi-limits", value)
    assert_one_line_error(result, "--cgi-limits")
    assert mentions in result.stderr
