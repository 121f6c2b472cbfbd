"""Odd input on every front (issue 9): file names that are not UTF-8 are listed and served by
their percent-encoded bytes, what no client may send is a 400, and no request leaves a --cgi-max
slot taken."""

from __future__ import annotations

import os
import re
import socket

import pytest

from tests.servers import read_from, serving

# raw bytes names, as os.fsencode would spell them (not UTF-8: latin-1 and stray bytes)
ODD_FILES = {b"caf\xe9.txt": b"latin-1 name\n", b"bad\xff\xfe.bin": b"stray bytes\n",
             b"ok-\xc3\xa9.txt": b"utf-8 name\n"}
ODD_FOLDER = b"dossier-\xe9"


@pytest.fixture(scope="module")
def odd_server(front, site_dirs, tmp_path_factory):
    base = tmp_path_factory.mktemp("odd")
    root = base / "odd-root"
    root.mkdir()
    raw_root = os.fsencode(root)
    for name, content in ODD_FILES.items():
        with open(os.path.join(raw_root, name), "wb") as f:
            f.write(content)
    os.mkdir(os.path.join(raw_root, ODD_FOLDER))
    with open(os.path.join(raw_root, ODD_FOLDER, b"inner\xff.txt"), "wb") as f:
        f.write(b"inside\n")
    yield from serving(front, (root, site_dirs[1]), base / "logs")


@pytest.fixture(scope="module")
def two_slots(front, site_dirs, tmp_path_factory):
    """--cgi-max 2, as in the issue."""
    yield from serving(front, site_dirs, tmp_path_factory.mktemp("two-slots"), ["--cgi-max", "2"])


def test_names_that_are_not_utf8_are_listed_by_their_bytes(odd_server):
    reply = odd_server.get("/")
    assert reply.status == 200
    html = reply.body.decode("utf-8")  # still valid UTF-8
    for href in ("caf%E9.txt", "bad%FF%FE.bin", "ok-%C3%A9.txt", "dossier-%E9/"):
        assert f'href="{href}"' in html, href
    assert "caf\\xe9.txt" in html and "bad\\xff\\xfe.bin" in html and "ok-é.txt" in html
    entries = odd_server.get("/?format=json").json()["entries"]
    names = {entry["name"] for entry in entries}
    assert {"caf\\xe9.txt", "bad\\xff\\xfe.bin", "ok-é.txt", "dossier-\\xe9"} <= names
    # the JSON's name is for display; its href fetches the file, as the page's links do
    hrefs = {entry["name"]: entry["href"] for entry in entries}
    assert hrefs["bad\\xff\\xfe.bin"] == "bad%FF%FE.bin" and hrefs["dossier-\\xe9"] == "dossier-%E9/"
    assert odd_server.get("/" + hrefs["bad\\xff\\xfe.bin"]).body == b"stray bytes\n"


@pytest.mark.parametrize(("path", "body"), [
    ("/caf%E9.txt", b"latin-1 name\n"), ("/caf%e9.txt", b"latin-1 name\n"),
    ("/bad%FF%FE.bin", b"stray bytes\n"), ("/ok-%C3%A9.txt", b"utf-8 name\n"),
    ("/dossier-%E9/inner%FF.txt", b"inside\n"),
])
def test_names_that_are_not_utf8_are_served(odd_server, path, body):
    reply = odd_server.get(path)
    assert (reply.status, reply.body) == (200, body)


def test_a_folder_that_is_not_utf8_lists_and_links_back(odd_server):
    assert odd_server.get("/dossier-%E9").status == 301
    reply = odd_server.get("/dossier-%E9/")
    assert reply.status == 200
    assert 'href="inner%FF.txt"' in reply.text and "dossier-\\xe9" in reply.text


@pytest.mark.parametrize("path", ["/%ED%A0%80", "/%FF", "/caf%E9.txt%FF", "/%C0%AE%C0%AE/etc/passwd"])
def test_bytes_that_name_nothing_are_404(odd_server, path):
    assert odd_server.get(path).status == 404


def test_raw_bytes_no_request_line_may_hold_are_400(odd_server):
    """A byte above 0x7F, raw in the target, is not a request-target: 400, on every front."""
    for target in (b"/caf\xe9.txt", b"/\xed\xa0\x80", b"/\xff"):
        data = odd_server.raw(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert re.match(rb"HTTP/1\.[01] 400 ", data), data[:80]
    assert odd_server.get("/healthz").status == 200


def _send(server, head: bytes) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head)
        return read_from(sock, timeout=10)[0]


def test_nul_in_a_header_leaves_no_cgi_slot_taken(two_slots):
    """With --cgi-max 2, requests carrying `X-A: a\\x00b` made every later script a 503 (the
    socket fronts refuse a NUL in a field value themselves; the core's door does for the rest)."""
    server = two_slots
    for _ in range(3):
        data = _send(server, b"GET /cgi-bin/hello HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n"
                             b"Connection: close\r\n\r\n")
        assert re.match(rb"HTTP/1\.[01] 400 ", data), data[:80]
    for _ in range(3):
        assert server.get("/cgi-bin/hello").status == 200
    assert "Traceback" not in server.errors()


@pytest.mark.parametrize("encoded", ["%0A", "%0D%0A", "%00"])
def test_a_path_info_no_script_may_be_given_takes_no_slot(two_slots, encoded):
    server = two_slots
    for _ in range(3):
        assert server.get(f"/cgi-bin/hello/a{encoded}b").status in (400, 404)
    assert server.get("/cgi-bin/hello").status == 200
    assert "Traceback" not in server.errors()
