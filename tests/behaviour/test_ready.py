"""Answers replayed from memory (core/ready.py) on every front: byte for byte the full way's
(but Date), right again at once after a file changes, exact for conditional, Range and HEAD
requests, counted and logged like any answer, and never used where a login is wanted."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from tests.behaviour.test_accesslog import lines_with, marker
from tests.behaviour.test_auth import basic, write_htpasswd
from tests.behaviour.test_stats import wait_for
from tests.behaviour.test_unreadable import other_user_prefix
from tests.servers import start_server

DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")
REPEATS = 4  # per connection: the first may take the full way, the others are replayed


@pytest.fixture(scope="module")
def site(front, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"ready-{front}")
    root, cgi_dir = base / "www", base / "cgi-bin"
    (root / "deep" / "er").mkdir(parents=True)
    cgi_dir.mkdir()
    (root / "small.txt").write_bytes(b"small file\n")
    (root / "deep" / "er" / "nested.txt").write_bytes(b"nested\n")
    (root / "page.html").write_bytes(b"<p>plain</p>\n" * 50)
    (root / "page.html.gz").write_bytes(gzip.compress((root / "page.html").read_bytes()))
    (root / "private").mkdir()
    (root / "private" / "note.txt").write_bytes(b"for logins only\n")
    for path in (base, root, root / "deep", root / "deep" / "er", root / "private", cgi_dir):
        path.chmod(0o755)
    return root, cgi_dir


@pytest.fixture(scope="module")
def server(front, site, tmp_path_factory):
    root, cgi_dir = site
    running = start_server(front, root, cgi_dir, tmp_path_factory.mktemp("ready-logs"))
    yield running
    running.stop()


def read_response(sock: socket.socket, buffered: bytes, head_only: bool) -> tuple[bytes, bytes]:
    """One whole response (by its Content-Length) and what was read past it."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole head: {data!r}"
        data += chunk
    end = data.index(b"\r\n\r\n") + 4
    match = re.search(rb"\r\nContent-Length: (\d+)\r\n", data[:end], re.IGNORECASE)
    length = 0 if head_only or match is None else int(match.group(1))
    while len(data) < end + length:
        chunk = sock.recv(65536)
        assert chunk, "closed before the whole body"
        data += chunk
    return data[:end + length], data[end + length:]


def exchange(server, path: str, headers: str = "", method: str = "GET", count: int = REPEATS) -> list[bytes]:
    """`count` requests on one keep-alive connection (so on one serving process; gunicorn's sync
    worker closes after each answer: then a new one), each answer read whole before the next."""
    request = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n".encode("latin-1")
    answers: list[bytes] = []
    while len(answers) < count:
        rest = b""
        with socket.create_connection((server.host, server.port), timeout=30) as sock:
            while len(answers) < count:
                sock.sendall(request)
                answer, rest = read_response(sock, rest, method == "HEAD" or b"If-None-Match" in request)
                answers.append(answer)
                if b"\r\nConnection: close\r\n" in answer.split(b"\r\n\r\n")[0] + b"\r\n":
                    break
    return answers


def undated(answer: bytes) -> bytes:
    return DATE.sub(b"\r\n", answer, count=1)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n\r\n", 1)[1]


def same_answers(answers: list[bytes]) -> bytes:
    """Every answer is the first one (the full way's), byte for byte but the Date line."""
    assert all(DATE.search(answer) for answer in answers)
    first = undated(answers[0])
    assert all(undated(answer) == first for answer in answers[1:]), answers
    return answers[0]


# -- the same bytes as the full way ------------------------------------------------------------

@pytest.mark.parametrize("path, headers", [
    ("/small.txt", ""),
    ("/deep/er/nested.txt", ""),
    ("/page.html", ""),
    ("/page.html", "Accept-Encoding: gzip\r\n"),
    ("/missing-one", ""),
    ("/missing-one", "Accept-Encoding: gzip\r\n"),
    ("/missing-one", "Accept: application/json\r\n"),
])
def test_replayed_answers_are_the_full_ways(server, path, headers):
    for method in ("GET", "HEAD"):
        answer = same_answers(exchange(server, path, headers, method))
        assert status_of(answer) == (404 if "missing" in path else 200)
        if method == "HEAD":
            assert body_of(answer) == b""


def test_encoded_and_identity_answers_alternate_right(server, site):
    plain = (site[0] / "page.html").read_bytes()
    for _ in range(2):
        identity = exchange(server, "/page.html", count=2)
        encoded = exchange(server, "/page.html", "Accept-Encoding: gzip\r\n", count=2)
        assert all(body_of(answer) == plain for answer in identity)
        assert all(b"Content-Encoding: gzip" in answer and gzip.decompress(body_of(answer)) == plain
                   for answer in encoded)


def test_a_404_page_names_its_own_path(server):
    first = same_answers(exchange(server, "/missing-first"))
    second = same_answers(exchange(server, "/missing-second"))
    assert b"missing-first" in body_of(first) and b"missing-first" not in body_of(second)
    assert b"missing-second" in body_of(second)


# -- conditional, Range, HEAD of a remembered file ---------------------------------------------------

def test_conditional_range_and_head_stay_exact(server, site):
    content = (site[0] / "small.txt").read_bytes()
    full = same_answers(exchange(server, "/small.txt"))
    etag = re.search(rb"\r\nETag: ([^\r]*)\r\n", full).group(1).decode()
    modified = re.search(rb"\r\nLast-Modified: ([^\r]*)\r\n", full).group(1).decode()
    for headers in (f"If-None-Match: {etag}\r\n", f"If-Modified-Since: {modified}\r\n"):
        answers = exchange(server, "/small.txt", headers)
        assert [status_of(answer) for answer in answers] == [304] * REPEATS
        assert all(b"Content-Length" not in answer for answer in answers)
    ranged = exchange(server, "/small.txt", "Range: bytes=0-4\r\n")
    assert all(status_of(answer) == 206 and body_of(answer) == content[:5] for answer in ranged)
    assert all(f"Content-Range: bytes 0-4/{len(content)}".encode() in answer for answer in ranged)
    beyond = exchange(server, "/small.txt", "Range: bytes=500-600\r\n")
    assert [status_of(answer) for answer in beyond] == [416] * REPEATS
    failed = exchange(server, "/small.txt", 'If-Match: "other"\r\n')
    assert [status_of(answer) for answer in failed] == [412] * REPEATS
    head = same_answers(exchange(server, "/small.txt", method="HEAD"))
    assert undated(head) == undated(full)[:-len(content)]  # GET's head, no body


# -- a change is seen at once ------------------------------------------------------------------------

def test_a_changed_file_is_served_new_at_once(server, site):
    path = site[0] / "changing.txt"
    path.write_bytes(b"version one\n")
    assert {body_of(answer) for answer in exchange(server, "/changing.txt")} == {b"version one\n"}
    # same size, and the old mtime put back: the inode's change time still moves
    stamp = path.stat()
    path.write_bytes(b"version two\n")
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert {body_of(answer) for answer in exchange(server, "/changing.txt")} == {b"version two\n"}
    path.write_bytes(b"three, longer now\n")
    assert {body_of(answer) for answer in exchange(server, "/changing.txt")} == {b"three, longer now\n"}
    # replaced by another file (rename over it: a new inode)
    other = site[0] / "changing.new"
    other.write_bytes(b"four\n")
    other.replace(path)
    assert {body_of(answer) for answer in exchange(server, "/changing.txt")} == {b"four\n"}
    path.unlink()
    assert {status_of(answer) for answer in exchange(server, "/changing.txt")} == {404}
    path.mkdir()
    answers = exchange(server, "/changing.txt")
    assert {status_of(answer) for answer in answers} == {301}
    path.rmdir()
    path.write_bytes(b"five\n")
    assert {body_of(answer) for answer in exchange(server, "/changing.txt")} == {b"five\n"}


def test_a_folder_on_the_way_swapped_is_seen(server, site):
    folder = site[0] / "swap"
    folder.mkdir()
    (folder / "f.txt").write_bytes(b"first folder\n")
    assert {body_of(answer) for answer in exchange(server, "/swap/f.txt")} == {b"first folder\n"}
    folder.rename(site[0] / "swap-old")
    (site[0] / "swap").symlink_to(site[0] / "swap-old")  # the same file, now through a symlink
    try:
        answers = exchange(server, "/swap/f.txt")
        # a symlink inside the root is followed
        assert {body_of(answer) for answer in answers} == {b"first folder\n"}
        (site[0] / "swap").unlink()
        (site[0] / "swap").mkdir()
        (site[0] / "swap" / "f.txt").write_bytes(b"other folder\n")
        assert {body_of(answer) for answer in exchange(server, "/swap/f.txt")} == {b"other folder\n"}
    finally:
        if (site[0] / "swap").is_symlink():
            (site[0] / "swap").unlink()


def test_a_404_turns_into_the_file_at_once(server, site):
    assert {status_of(answer) for answer in exchange(server, "/appearing.txt")} == {404}
    (site[0] / "appearing.txt").write_bytes(b"here now\n")
    assert {body_of(answer) for answer in exchange(server, "/appearing.txt")} == {b"here now\n"}


# -- counted and logged -----------------------------------------------------------------------------

def test_replayed_answers_are_counted_and_logged(server):
    path = f"/{marker()}.missing"
    before = server.stats()
    exchange(server, "/small.txt", count=6)
    exchange(server, path, count=6)
    target = before["requests_total"] + 12
    after = wait_for(lambda: (s := server.stats())["requests_total"] >= target + 1 and s)
    assert after, server.stats()
    assert after["responses"]["200"] - before["responses"].get("200", 0) >= 6
    assert after["responses"]["404"] - before["responses"].get("404", 0) >= 6
    lines = lines_with(server, path, count=6)
    assert len(lines) == 6
    size = len(body_of(exchange(server, path, count=1)[0]))
    assert all(f'"GET {path} HTTP/1.1" 404 {size} ' in line for line in lines)
    heads = len([line for line in server.log().splitlines() if "HEAD /small.txt" in line])
    exchange(server, "/small.txt", method="HEAD", count=3)
    lines = lines_with(server, "HEAD /small.txt", count=heads + 3)
    assert len(lines) == heads + 3
    assert all('"HEAD /small.txt HTTP/1.1" 200 - ' in line for line in lines)


# -- never where a login is wanted -------------------------------------------------------------------

def test_a_private_path_is_never_answered_from_memory(front, site, tmp_path):
    root, cgi_dir = site
    auth = tmp_path / "htpasswd"
    write_htpasswd(auth, {"ann": "secret"})
    running = start_server(front, root, cgi_dir, tmp_path / "logs",
                           ["--auth-file", str(auth), "--auth-scope", "none", "--private", "/private/*"])
    try:
        login = f"Authorization: {basic('ann', 'secret')}\r\n"
        logged_in = exchange(running, "/private/note.txt", login)
        assert all(status_of(answer) == 200 and body_of(answer) == b"for logins only\n"
                   for answer in logged_in)
        anonymous = exchange(running, "/private/note.txt")
        assert [status_of(answer) for answer in anonymous] == [401] * REPEATS
        assert all(b"for logins only" not in answer for answer in anonymous)
        missing = exchange(running, "/private/none.txt")
        assert [status_of(answer) for answer in missing] == [401] * REPEATS
        # a public file beside it is still answered (and logged without a user)
        assert {body_of(answer) for answer in exchange(running, "/small.txt")} == {b"small file\n"}
        users = [line.split(" ")[2] for line in lines_with(running, "/private/note.txt", 2 * REPEATS)]
        assert users.count("ann") == REPEATS and users.count("-") == REPEATS
    finally:
        running.stop()


def test_a_file_made_unreadable_is_403_at_once(front, tmp_path):
    prefix = other_user_prefix()
    # outside pytest's own 0700 tree, which the other user could not enter at all
    base = Path(tempfile.mkdtemp(prefix="cgibox-ready-"))
    root, cgi_dir = base / "www", base / "cgi-bin"
    root.mkdir(parents=True)
    cgi_dir.mkdir()
    (root / "open.txt").write_bytes(b"open\n")
    for path in (base, root, cgi_dir):
        path.chmod(0o755)
    (root / "open.txt").chmod(0o644)
    running = start_server(front, root, cgi_dir, tmp_path / "logs", prefix=prefix)
    try:
        assert {body_of(answer) for answer in exchange(running, "/open.txt")} == {b"open\n"}
        (root / "open.txt").chmod(0o600 if prefix else 0o000)
        assert {status_of(answer) for answer in exchange(running, "/open.txt")} == {403}
    finally:
        running.stop()
        shutil.rmtree(base, ignore_errors=True)


# -- pipelined and partly written answers -----------------------------------------------------------

def test_pipelined_answers_come_in_order(server, site):
    (site[0] / "big-ready.bin").write_bytes(os.urandom(60 * 1024))
    content = (site[0] / "big-ready.bin").read_bytes()
    # answers the loop writes itself, until one is more than the socket takes at once (then a
    # handler writes the rest, and goes on), then one it does not, then those again
    targets = ["/big-ready.bin"] * 120 + ["/small.txt", "/missing-piped", "/stats?format=json"] * 5 + \
        ["/big-ready.bin", "/small.txt"]
    data = b"".join(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode() for target in targets)
    with socket.socket(socket.AF_INET6 if ":" in server.host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: sends stop midway
        sock.settimeout(30)
        sock.connect((server.host, server.port))
        rest = b""
        # each answer recorded by this connection's process, and the connection waiting in its loop
        for target in ["/big-ready.bin", "/small.txt", "/missing-piped"] * 2:
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            answer, rest = read_response(sock, rest, False)
            if b"\r\nConnection: close\r\n" in answer:
                assert server.front == "gunicorn-sync"
                return
        time.sleep(0.2)
        sock.sendall(data)  # ~7 MB of answers asked for before any is read: past any send buffer
        for target in targets:
            answer, rest = read_response(sock, rest, False)
            if b"\r\nConnection: close\r\n" in answer:  # gunicorn's sync worker: one per connection
                assert server.front == "gunicorn-sync"
                return
            expected = {"/big-ready.bin": 200, "/small.txt": 200, "/missing-piped": 404}.get(target, 200)
            assert status_of(answer) == expected, target
            if target == "/big-ready.bin":
                assert body_of(answer) == content
            elif target == "/small.txt":
                assert body_of(answer) == b"small file\n"
            elif target.startswith("/stats"):
                assert b'"requests_total"' in body_of(answer)
        assert rest == b""
