"""Scripts that cannot start, on every front: the 502 (or 403) page and the server's log line say
what is wrong and what to do (issue 20 point 6), with and without the --cgi-limits wrapper."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

BROKEN = {
    # saved with Windows line ends: the kernel looks for the interpreter "/bin/sh\r"
    "crlf": (b"#!/bin/sh\r\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhi\\r\\n'\r\n", 0o755),
    "nointerpreter": (b"#!/no/such/interpreter\nprint('hi')\n", 0o755),
    "noshebang": (b"print('Content-Type: text/plain')\nprint()\nprint('hi')\n", 0o755),
    # `env` finds no such program in the script's PATH (`#!/usr/bin/env python` without python)
    "envmissing": (b"#!/usr/bin/env no-such-interpreter-here\nprint('hi')\n", 0o755),
    "noexec": (b"#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhi\\n'\n", 0o644),
}

# name: (status, what the page and the log line say)
EXPECTED = {
    "crlf": (502, "convert it to Unix line ends"),
    "nointerpreter": (502, "its interpreter /no/such/interpreter (from its #! line) does not exist"),
    "noshebang": (502, "has no #! line naming its interpreter"),
    "envmissing": (502, "its interpreter no-such-interpreter-here (from its #! line, looked up in"),
    "noexec": (403, "chmod +x"),
}


@pytest.fixture
def broken_dir(tmp_path) -> Path:
    cgi_dir = tmp_path / "cgi"
    cgi_dir.mkdir()
    for name, (body, mode) in BROKEN.items():
        (cgi_dir / name).write_bytes(body)
        (cgi_dir / name).chmod(mode)
    return cgi_dir


def logged(server, text: str) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if text in server.errors():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("name", list(EXPECTED))
def test_a_script_that_cannot_start_says_why(make_server, broken_dir, name):
    server = make_server(cgi_dir=broken_dir)
    status, says = EXPECTED[name]
    reply = server.get(f"/cgi-bin/{name}")
    assert reply.status == status
    assert says in reply.text
    assert logged(server, says), server.errors()
    if name == "noexec":
        assert logged(server, f"chmod +x {broken_dir.resolve() / name}")


@pytest.mark.parametrize("name", ["crlf", "nointerpreter", "envmissing"])
def test_the_limits_wrapper_says_why_too(make_server, broken_dir, name):
    """With --cgi-limits the script is exec'ed by prlimit, which can only exit 127."""
    server = make_server(["--cgi-limits", "cpu=5"], cgi_dir=broken_dir)
    status, says = EXPECTED[name]
    reply = server.get(f"/cgi-bin/{name}")
    assert reply.status == status
    assert says in reply.text
    assert logged(server, says), server.errors()
