"""Scripts the CGI tests rely on (see test_cgi*.py), and the small helpers those tests share.

`build` writes them into the suite's cgi dir next to the bundled samples (cgi-bin/*). Scripts that
need to tell the test something (their pid, that they are waiting) write files into `outside`,
named after a tag the test passes as the query, which the script receives as $1 (RFC 3875 4.4).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

from tests.servers import read_from

SH = "#!/bin/sh\n"
PY = "#!/usr/bin/env python3\n"

# name: body; "{out}" becomes the outside folder
SCRIPTS = {
    # the whole environment (as bytes, shown as latin-1), the arguments, stdin and cwd, as JSON
    "dump": PY + """import json, os, sys
body = sys.stdin.buffer.read()
env = {k.decode("latin-1"): v.decode("latin-1") for k, v in os.environb.items()}
doc = {"env": env, "argv": sys.argv[1:], "stdin": body.decode("latin-1"), "cwd": os.getcwd()}
sys.stdout.write("Content-Type: application/json\\n\\n" + json.dumps(doc))
""",
    "status": SH + r"""printf 'Status: 418 I am a teapot\nContent-Type: text/plain\n'
printf 'X-Script: status\n\nteapot\n'
""",
    "created": SH + r"""printf 'Status: 201 Created\nLocation: http://example.com/new\n'
printf 'Content-Type: text/plain\n\nmade\n'
""",
    "nocontent": SH + r"""printf 'Status: 204 No Content\nX-Script: nocontent\n\n'
""",
    "redirect": SH + r"""case "$1" in
    abs) printf 'Location: http://example.com/elsewhere\n\n' ;;
    local) printf 'Location: /hello.txt\n\n' ;;
    localcgi) printf 'Location: /cgi-bin/dump?from+redirect\n\n' ;;
    missing) printf 'Location: /no-such-file.txt\n\n' ;;
    loop) printf 'Location: /cgi-bin/redirect?loop\n\n' ;;
esac
""",
    "crlf": SH + r"""printf 'Content-Type: text/plain\r\nX-Line-Ends: crlf\r\n\r\ncrlf body\n'
""",
    "length": SH + r"""printf 'Content-Type: text/plain\nContent-Length: 5\n\n'
printf 'hello, and more than five bytes\n'
""",
    "short": SH + r"""printf 'Content-Type: text/plain\nContent-Length: 100\n\nonly this\n'
""",
    "malformed": SH + r"""printf 'this is not a header line\n\nbody\n'
""",
    "nohead": SH + "exit 0\n",
    "partialhead": SH + r"""printf 'Content-Type: text/plain\n'
""",
    "badstatus": SH + r"""printf 'Status: abc\nContent-Type: text/plain\n\nbody\n'
""",
    "nofields": SH + r"""printf '\nbody without a head\n'
""",
    "warn": SH + r"""echo "first warning line" >&2
echo "second warning line" >&2
printf 'Content-Type: text/plain\n\nwarned\n'
""",
    # never writes a head: its group (itself and a background child) must be ended at the timeout
    "sleepy": SH + r"""echo $$ > "{out}/$1.pid"
sleep 30 &
echo $! > "{out}/$1.child"
wait
""",
    # a head and a line, then nothing: the timeout must cut the connection
    "late": SH + r"""echo $$ > "{out}/$1.pid"
printf 'Content-Type: text/plain\n\npartial line\n'
sleep 30
""",
    # writes "first", then waits (at most 10 s) for the test to create $1.go before "second"
    "gate": SH + r"""echo $$ > "{out}/$1.pid"
printf 'Content-Type: text/plain\n\nfirst\n'
i=0
while [ $i -lt 100 ]; do
    if [ -e "{out}/$1.go" ]; then echo second; exit 0; fi
    sleep 0.1
    i=$((i + 1))
done
echo "gate timed out"
""",
    # a line every 0.1 s for 30 s: ended early only if the server ends it
    "ticker": SH + r"""echo $$ > "{out}/$1.pid"
printf 'Content-Type: text/plain\n\n'
i=0
while [ $i -lt 300 ]; do echo "tick $i"; sleep 0.1; i=$((i + 1)); done
""",
    # the descriptors it was started with, and what they point at
    "fds": PY + """import os
fds = {}
for name in os.listdir("/proc/self/fd"):
    try:
        fds[name] = os.readlink(f"/proc/self/fd/{name}")
    except OSError:
        pass  # the descriptor listdir itself used, closed by now
print("Content-Type: text/plain\\n")
for fd in sorted(fds, key=int):
    print(fd, fds[fd])
""",
    # ignores its request body entirely
    "ignore": SH + r"""printf 'Content-Type: text/plain\n\nignored\n'
""",
    "nph-raw": SH + r"""printf 'HTTP/1.1 299 Custom Reason\r\nX-Nph: yes\r\n'
printf 'Content-Type: text/plain\r\n\r\nraw body\n'
""",
    "nph-bad": SH + r"""printf 'Content-Type: text/plain\n\nno status line\n'
""",
    "sub/inner": SH + r"""printf 'Content-Type: text/plain\n\n%s|%s\n' "$SCRIPT_NAME" "$PATH_INFO"
""",
}

NOT_EXECUTABLE = "plain.txt"
NO_SHEBANG = "noshebang"


def build(cgi_dir: Path, outside: Path) -> None:
    for name, body in SCRIPTS.items():
        path = cgi_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body.replace("{out}", str(outside)))
        path.chmod(0o755)
    (cgi_dir / "sub" / "deeper").mkdir()
    (cgi_dir / NOT_EXECUTABLE).write_text("#!/bin/sh\necho source\n")
    (cgi_dir / NOT_EXECUTABLE).chmod(0o644)
    (cgi_dir / NO_SHEBANG).write_text("echo 'Content-Type: text/plain'\necho\necho hi\n")
    (cgi_dir / NO_SHEBANG).chmod(0o755)
    hidden = cgi_dir / ".hidden"
    hidden.write_text(SH + "printf 'Content-Type: text/plain\\n\\nHIDDEN-SCRIPT-RAN\\n'\n")
    hidden.chmod(0o755)
    # an executable outside the cgi dir, reachable only through a symlink in it
    evil = outside / "evil"
    evil.write_text(SH + "printf 'Content-Type: text/plain\\n\\nOUTSIDE-SCRIPT-RAN\\n'\n")
    evil.chmod(0o755)
    (cgi_dir / "escape").symlink_to(evil)
    # a symlink that stays inside is fine
    (cgi_dir / "hello-link").symlink_to(cgi_dir / "status")


# -- helpers for the tests ---------------------------------------------------------------------------

def outside_of(cgi_dir: Path) -> Path:
    return cgi_dir.parent / "outside"


def tag(name: str) -> str:
    """A fresh file-name-safe tag for one test run (it reaches scripts as $1)."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


def wait_for_file(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            text = path.read_text().strip()
            if text:
                return text
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def process_gone(pid: int) -> bool:
    """The process does not exist, or is a zombie that is not ours to reap (its state is Z)."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            state = stat_file.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state == "Z"


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.05)
    return process_gone(pid)


def descendants(pid: int) -> dict[int, tuple[str, str]]:
    """{pid: (command name, state)} of every process below `pid`."""
    parents: dict[int, int] = {}
    info: dict[int, tuple[str, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat_file:
                text = stat_file.read()
        except OSError:
            continue
        name = text[text.find("(") + 1:text.rfind(")")]
        fields = text[text.rfind(")") + 2:].split()
        parents[int(entry)] = int(fields[1])
        info[int(entry)] = (name, fields[0])
    found: dict[int, tuple[str, str]] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found[child] = info[child]
                frontier.append(child)
    return found


def split_response(data: bytes) -> tuple[str, dict[str, str], bytes]:
    """(status line, headers with lower-case names, body as sent) of one raw HTTP response."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, body


def dechunk(body: bytes) -> tuple[bytes, bool]:
    """(data, complete): a chunked body's data, and whether its last chunk arrived."""
    data = b""
    while body:
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep:
            return data, False
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return data, True
        data += rest[:size]
        if len(rest) < size + 2:
            return data, False
        body = rest[size + 2:]
    return data, False


def connect(server, request: bytes, timeout: float = 10.0) -> socket.socket:
    """A raw connection that has sent `request` (the caller reads and closes it)."""
    sock = socket.create_connection((server.host, server.port), timeout=timeout)
    sock.sendall(request)
    return sock


def recv_until(sock: socket.socket, marker: bytes | None, data: bytes = b"", timeout: float = 10.0) -> bytes:
    """Read until `marker` has arrived (None: until the server closes), or the timeout passes."""
    return read_from(sock, marker, data, timeout)[0]
