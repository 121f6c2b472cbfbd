"""core/ready.py through App.handle, without sockets: what is recorded, what is replayed, how
one stat (per folder and file) tells a stale answer, and the bound in bytes."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import bcrypt
import pytest

from cgibox.config import Config
from cgibox.core import ready, wire
from cgibox.core.ready import ReadyResponses, ready_key
from cgibox.core.request import Headers, Request
from cgibox.core.response import Response
from cgibox.core.router import App
from cgibox.core.stats import Stats


def make_app(root: Path, state: Path, **settings) -> App:
    config = Config(root=root, cgi_dir=None, **settings)
    return App(config, Stats.create(str(state / "stats")), "threading")


def request(target: str, method: str = "GET", **fields: str) -> Request:
    return Request(method, target, headers=Headers([("Host", "localhost")] + [
        (name.replace("_", "-"), value) for name, value in fields.items()]))


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "small.txt").write_bytes(b"small\n")
    (root / "sub" / "inner.txt").write_bytes(b"inner\n")
    (root / "big.bin").write_bytes(b"x" * (ready.READY_BODY_LIMIT + 1))
    (root / "page.html").write_bytes(b"<p>page</p>\n" * 20)
    (root / "page.html.gz").write_bytes(gzip.compress((root / "page.html").read_bytes()))
    return root


@pytest.fixture
def app(root, tmp_path) -> App:
    return make_app(root, tmp_path)


def replayed(app: App, target: str, method: str = "GET", **fields: str) -> tuple[Response, Response]:
    """Two answers to the same request: the second is the first object when it was replayed."""
    return app.handle(request(target, method, **fields)), app.handle(request(target, method, **fields))


def full_way(root: Path, tmp_path: Path, target: str, method: str = "GET", **fields: str) -> Response:
    """The answer of a fresh App (nothing recorded yet)."""
    state = tmp_path / f"state-{len(os.listdir(tmp_path))}"
    state.mkdir()
    return make_app(root, state).handle(request(target, method, **fields))


def undated(head: bytes) -> bytes:
    """The head without its Date line if wire added one (the second may turn between two)."""
    return re.sub(rb"\r\nDate: [^\r]*GMT\r\n(?=(Server|Connection|\r\n))", b"\r\n", head)


def same(one: Response, other: Response) -> bool:
    return (one.status, one.headers, one.body, one.route_kind) == (other.status, other.headers, other.body,
                                                                   other.route_kind)


# -- what is recorded and replayed ----------------------------------------------------------------

@pytest.mark.parametrize("target, method, fields", [
    ("/small.txt", "GET", {}),
    ("/small.txt", "HEAD", {}),
    ("/sub/inner.txt", "GET", {}),
    ("/page.html", "GET", {}),
    ("/page.html", "GET", {"Accept_Encoding": "gzip"}),
    ("/missing", "GET", {}),
    ("/missing", "GET", {"Accept": "application/json"}),
    ("/missing", "HEAD", {"Accept_Encoding": "gzip"}),
    ("/a%00b", "GET", {}),
])
def test_plain_answers_are_replayed_as_the_full_way_made_them(app, root, tmp_path, target, method, fields):
    first, second = replayed(app, target, method, **fields)
    assert second is first and first.from_memory
    assert app.ready_response(request(target, method, **fields)) is first
    assert same(first, full_way(root, tmp_path, target, method, **fields))


@pytest.mark.parametrize("target, fields", [
    ("/small.txt", {"Range": "bytes=0-1"}),
    ("/small.txt", {"If_None_Match": "*"}),
    ("/small.txt", {"If_Modified_Since": "Mon, 07 Dec 2099 00:00:00 GMT"}),
    ("/small.txt", {"If_Match": '"x"'}),
    ("/small.txt", {"If_Unmodified_Since": "Mon, 07 Dec 2000 00:00:00 GMT"}),
    ("/small.txt", {"If_Range": '"x"', "Range": "bytes=0-1"}),
    ("/small.txt", {"Authorization": "Basic eDp5"}),
    ("/small.txt?x=1", {}),
    ("/missing?download=zip", {}),
])
def test_conditional_range_login_and_query_take_the_full_way(app, root, tmp_path, target, fields):
    app.handle(request(target.split("?")[0]))  # the plain answer is recorded
    assert ready_key(request(target, **fields)) is None
    first, second = replayed(app, target, **fields)
    assert not first.from_memory and second is not first
    assert same(first, full_way(root, tmp_path, target, **fields))
    assert first.status in (200, 206, 304, 404, 412)


def test_what_is_not_recorded(app, root):
    for target in ("/big.bin", "/sub", "/sub/", "/healthz", "/stats", "/favicon.ico", "/small.txt/"):
        first, second = replayed(app, target)
        assert second is not first, target
    assert app.handle(request("/small.txt", "POST")).status == 405
    assert len(app.ready) == 0


def test_a_symlinked_file_is_not_recorded(app, root):
    (root / "link.txt").symlink_to(root / "small.txt")
    first, second = replayed(app, "/link.txt")
    assert first.status == 200 and second is not first


def test_a_private_path_is_not_recorded(root, tmp_path):
    auth = tmp_path / "htpasswd"
    auth.write_text("ann:" + bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode() + "\n")
    app = make_app(root, tmp_path, auth_file=auth, auth_scope="none", private=("/sub/*",))
    for target in ("/sub/inner.txt", "/sub/missing"):
        first, second = replayed(app, target)
        assert first.status == 401 and second is not first
    first, second = replayed(app, "/sub/inner.txt", Authorization="Basic YW5uOnB3")
    assert first.status == 200 and second is not first
    assert replayed(app, "/small.txt")[1].from_memory  # the rest of the tree is public


# -- one stat says when it is stale ------------------------------------------------------------------

def test_changes_are_seen_at_once(app, root):
    path = root / "small.txt"
    recorded = replayed(app, "/small.txt")[1]
    stamp = path.stat()
    path.write_bytes(b"SMALL\n")  # same size, mtime put back: the ctime still moves
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    changed = app.handle(request("/small.txt"))
    assert changed is not recorded and changed.body == b"SMALL\n"
    path.write_bytes(b"longer now\n")
    assert app.handle(request("/small.txt")).body == b"longer now\n"
    path.unlink()
    assert app.handle(request("/small.txt")).status == 404
    path.mkdir()
    assert app.handle(request("/small.txt")).status == 301
    path.rmdir()
    path.write_bytes(b"again\n")
    assert replayed(app, "/small.txt")[1].body == b"again\n"


def test_a_permission_change_is_not_replayed_over(app, root):
    recorded = replayed(app, "/small.txt")[1]
    (root / "small.txt").chmod(0o000)
    answer = app.handle(request("/small.txt"))
    assert answer is not recorded
    assert answer.status == (200 if os.geteuid() == 0 else 403)


def test_a_folder_on_the_way_replaced_is_seen(app, root):
    recorded = replayed(app, "/sub/inner.txt")[1]
    (root / "sub").rename(root / "old")
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_bytes(b"inner\n")
    answer = app.handle(request("/sub/inner.txt"))
    assert answer is not recorded and answer.body == b"inner\n"
    (root / "sub" / "inner.txt").unlink()
    (root / "sub").rmdir()
    (root / "sub").symlink_to(root / "old")
    answer = app.handle(request("/sub/inner.txt"))
    assert answer.status == 200 and not answer.from_memory  # through a symlink: never replayed


def test_a_sibling_change_is_seen(app, root):
    recorded = replayed(app, "/page.html", Accept_Encoding="gzip")[1]
    (root / "page.html.gz").write_bytes(gzip.compress(b"<p>new</p>\n"))
    answer = app.handle(request("/page.html", Accept_Encoding="gzip"))
    assert answer is not recorded and gzip.decompress(answer.body) == b"<p>new</p>\n"


def test_a_missing_file_that_appears_is_served(app, root):
    recorded = replayed(app, "/later.txt")[1]
    assert recorded.status == 404 and recorded.from_memory
    (root / "later.txt").write_bytes(b"here\n")
    assert app.handle(request("/later.txt")).body == b"here\n"


def test_a_404_names_its_own_path(app):
    first = replayed(app, "/gone-one")[1]
    second = replayed(app, "/gone-two")[1]
    assert b"gone-one" in first.body and b"gone-one" not in second.body and b"gone-two" in second.body


# -- the bound ---------------------------------------------------------------------------------------

def test_bounded_in_bytes_oldest_first():
    responses = ReadyResponses(max_bytes=10 * (1000 + ready.ENTRY_OVERHEAD + 100))
    for index in range(50):
        responses.put(index, Response(200, [("Content-Length", "1000")], b"x" * 1000), lambda: True)
        assert responses.bytes <= responses.max_bytes
    assert 5 <= len(responses) <= 10
    assert responses.get(0) is None and responses.get(49) is not None
    responses.put("huge", Response(200, [], b"x" * responses.max_bytes), lambda: True)
    assert responses.get("huge") is None  # larger than the whole bound: not kept


def test_a_stale_entry_is_dropped():
    responses = ReadyResponses()
    valid = [True]
    responses.put("key", Response(200, [], b"body"), lambda: valid[0])
    assert responses.get("key") is not None
    valid[0] = False
    assert responses.get("key") is None and len(responses) == 0 and responses.bytes == 0


def test_a_404_through_a_symlink_follows_where_it_points(app, root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.txt").write_bytes(b"outside\n")
    (root / "link").symlink_to(outside)
    recorded = replayed(app, "/link/x.txt")[1]
    assert recorded.status == 404 and recorded.from_memory  # out of the root: 404 however often
    (root / "link").unlink()
    (root / "link").symlink_to(root / "sub")
    (root / "sub" / "x.txt").write_bytes(b"inside\n")
    assert app.handle(request("/link/x.txt")).body == b"inside\n"


def test_a_404_below_a_file_stays_a_404_until_the_file_becomes_a_folder(app, root):
    recorded = replayed(app, "/small.txt/below")[1]
    assert recorded.status == 404 and recorded.from_memory
    (root / "small.txt").unlink()
    (root / "small.txt").mkdir()
    (root / "small.txt" / "below").write_bytes(b"below\n")
    assert app.handle(request("/small.txt/below")).body == b"below\n"


@pytest.mark.parametrize("headers", [
    [("Content-Type", "text/plain"), ("Content-Length", "4")],
    [("Content-Length", "4"), ("Date", "Mon, 07 Dec 2026 00:00:00 GMT"), ("Server", "own")],
    [("Content-Type", "text/plain")],  # no length: chunked on HTTP/1.1, closed on HTTP/1.0
])
def test_a_kept_answer_is_framed_as_any_other(headers):
    kept = Response(200, list(headers), b"body")
    ReadyResponses().put("key", kept, lambda: True)
    assert kept.framed == {}
    for protocol in ("HTTP/1.1", "HTTP/1.0"):
        for keep_alive in (True, False):
            for _ in range(2):  # framed once, then from what was kept
                plain = Response(200, list(headers), b"body")
                fresh = wire.frame_response("GET", protocol, keep_alive, plain)
                head, chunked, close = wire.frame_response("GET", protocol, keep_alive, kept)
                assert (undated(head), chunked, close) == (undated(fresh[0]), *fresh[1:])


def test_extra_header_fields_are_in_the_replayed_answer(root, tmp_path):
    app = make_app(root, tmp_path, header=(("X-Frame-Options", "DENY"), ("Cache-Control", "no-cache")))
    for target in ("/small.txt", "/missing"):
        first, second = replayed(app, target)
        assert second is first and ("X-Frame-Options", "DENY") in first.headers
        assert first.header("Cache-Control") == "no-cache"
