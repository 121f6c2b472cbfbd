"""App.handle end to end under hypothesis, with crafted Requests as any front (or a buggy one)
might hand them in: any method, target and header fields. Whatever comes, App.handle returns a
valid status that is not 500, header fields with no CR/LF/NUL, a Content-Length equal to the
body, no body for HEAD, and once the response is closed no --cgi-max slot is left taken."""

from __future__ import annotations

import io
import os
import shutil

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from cgibox.config import Config
from cgibox.core.request import Headers, Request
from cgibox.core.response import ConnectionCut, FileRegion
from cgibox.core.router import App
from cgibox.core.stats import Stats
from tests.behaviour.site_cgi import SCRIPTS
from tests.servers import REPO
from tests.unit.tree import build_tree

# scripts that answer at once and well: a 500 can then only come from the core
QUICK_SCRIPTS = ("dump", "status", "created", "nocontent", "redirect", "crlf", "length", "ignore",
                 "nph-raw", "badstatus", "malformed")


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> App:
    base = tmp_path_factory.mktemp("fuzz-app")
    root, _ = build_tree(base)
    os.remove(os.path.join(root, "big.bin"))  # 16 MiB: read whole, it would only slow the run down
    with open(os.path.join(os.fsencode(root), b"raw\xff.txt"), "wb") as f:
        f.write(b"raw name\n")
    cgi_dir = base / "cgi-bin"
    cgi_dir.mkdir()
    for name in QUICK_SCRIPTS:
        (cgi_dir / name).write_text(SCRIPTS[name].replace("{out}", str(base)))
        (cgi_dir / name).chmod(0o755)
    shutil.copy2(REPO / "cgi-bin" / "hello", cgi_dir / "hello")
    config = Config(root=root, cgi_dir=cgi_dir, cgi_max=2, cgi_timeout=5.0)
    return App(config, Stats.create(str(base / "stats")), "threading")


SEGMENTS = ["hello.txt", "index-dir", "plain-dir", "sub", "deep.txt", "empty-dir", "range.bin",
            "comp.txt", "café.txt", "caf%C3%A9.txt", "raw%FF.txt", "link-out", "link-in", ".git",
            "cgi-bin", "healthz", "stats", "metrics", "..", ".", "", "%2e%2e", "%2f", "%00", "%0a",
            "%FF", "%ed%a0%80", "\ud800", "\udcff", "\x00", "\n", " ", "é", "*"]
SCRIPT_PATHS = [f"/cgi-bin/{name}" for name in (*QUICK_SCRIPTS, "hello", "nope", "")]
QUERIES = ["", "?format=json", "?sort=size&order=desc", "?a+b", "?local", "?abs", "?loop", "?x=%00",
           "?\ud800", "?%FF"]


visible = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=6)


@st.composite
def targets(draw) -> str:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.text(max_size=30))  # anything at all: almost always a 400 at the door
    if kind <= 2:
        path = draw(st.sampled_from(SCRIPT_PATHS)) + draw(st.sampled_from(["", "/", "/extra/%FF", "/a%0Ab"]))
    else:
        path = "/" + "/".join(draw(st.lists(st.sampled_from(SEGMENTS) | visible, max_size=4)))
    return path + draw(st.sampled_from(QUERIES) | visible.map(lambda q: "?" + q))


NAMES = ["Range", "If-Range", "If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since",
         "Accept", "Accept-Encoding", "Host", "Cookie", "Content-Type", "Content-Length",
         "Transfer-Encoding", "Expect", "Connection", "Proxy", "Authorization", "X-A", "Proxy\n", "X A"]
VALUES = ["bytes=0-0", "bytes=0-10,20-30", "bytes=-5", "bytes=99999-", "bytes=x", '"x"', "*",
          "Sun, 06 Nov 1994 08:49:37 GMT", "application/json", "gzip, br", "br;q=0", "100-continue",
          "a\x00b", "a\r\nb", "\ud800", "\udc80", "caf\xe9", "\u0100", "", " ", "5", "chunked"]


def mostly(common: st.SearchStrategy, rare: st.SearchStrategy) -> st.SearchStrategy:
    """`common` about nine times in ten: most requests then get past the door, into the core."""
    return st.sampled_from([False] * 9 + [True]).flatmap(lambda odd: rare if odd else common)


@given(method=mostly(st.sampled_from(["GET", "GET", "HEAD", "POST", "PUT", "OPTIONS", "BREW"]),
                     st.text(max_size=8)),
       target=targets(),
       protocol=mostly(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]), st.text(max_size=9)),
       fields=st.lists(st.tuples(mostly(st.sampled_from(NAMES), st.text(max_size=8)),
                                 mostly(st.sampled_from(VALUES), st.text(max_size=12))), max_size=3))
@example(method="GET", target="/\ud800", protocol="HTTP/1.1", fields=[])
@example(method="GET", target="/cgi-bin/dump", protocol="HTTP/1.1", fields=[("X-A", "a\x00b")])
@example(method="GET", target="/cgi-bin/dump", protocol="HTTP/1.1", fields=[("Proxy\n", "x")])
@example(method="GET", target="/cgi-bin/dump", protocol="HTTP/1.1", fields=[("X-A", "\ud800")])
@example(method="G\x00T", target="/cgi-bin/dump", protocol="HTTP/1.1", fields=[])
@example(method="GET", target="/cgi-bin/dump/a%0Ab", protocol="HTTP/1.1", fields=[])
@example(method="GET", target="/cgi-bin/" + "a" * 300, protocol="HTTP/1.1", fields=[])
@example(method="GET", target="/raw%FF.txt", protocol="HTTP/1.1", fields=[])
@example(method="HEAD", target="/cgi-bin/status", protocol="HTTP/1.0", fields=[])
@example(method="GET", target="/cgi-bin/redirect?loop", protocol="HTTP/1.1", fields=[])
@example(method="GET", target="/range.bin", protocol="HTTP/1.1", fields=[("Range", "bytes=0-0,20-30")])
def test_any_request_gets_a_sound_answer_and_leaves_no_slot_taken(app, method, target, protocol, fields):
    # a Host line first, as every HTTP/1.1 client sends (a drawn Host makes two: a 400 at the door)
    request = Request(method, target, protocol, Headers([("Host", "localhost"), *fields]),
                      body=io.BytesIO(b""), body_length=0,
                      remote_addr="127.0.0.1", server_port=8000)
    response = app.handle(request)
    body = b""
    try:
        for part in response.parts():
            body += b"".join(part.read_chunks()) if isinstance(part, FileRegion) else part
    except ConnectionCut:
        pytest.fail(f"a quick, well-behaved script's response was cut: {target!r}")
    finally:
        response.close()
    assert 100 <= response.status <= 599 and response.status != 500, (response.status, target)
    for name, value in response.headers:
        assert not any(c in name + value for c in "\x00\r\n"), (name, value)
        name.encode("latin-1"), value.encode("latin-1")
    if method == "HEAD":
        assert body == b""
    elif response.header("Content-Length") is not None and response.raw_head is None:
        assert int(response.header("Content-Length")) == len(body)
    assert app.cgi.slots.busy() == 0
    event(f"status {response.status}")
