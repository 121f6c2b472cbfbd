"""Every name Linux allows is listed and served, and shown so it cannot pose as another (issue 18
point 9), on every front: a backslash is a name byte, bidi and invisible characters are escaped."""

from __future__ import annotations

import pytest

from tests.servers import serving

RLO_NAME = "invoice\u202egnp.exe"  # RIGHT-TO-LEFT OVERRIDE: a page would show "invoiceexe.png"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("names-site")
    root, cgi_dir = base / "www", base / "cgi-bin"
    root.mkdir()
    cgi_dir.mkdir()
    (root / "back\\slash.txt").write_bytes(b"behind a backslash\n")
    (root / "\\evil.com").mkdir()
    (root / "\\evil.com" / "in.txt").write_bytes(b"inside\n")
    (root / RLO_NAME).write_bytes(b"not an exe\n")
    (root / "zero\u200bwidth.txt").write_bytes(b"zw\n")
    base.chmod(0o755)
    return root, cgi_dir


@pytest.fixture(scope="module")
def names_server(front, site, tmp_path_factory):
    yield from serving(front, site, tmp_path_factory.mktemp("logs"))


def test_a_name_with_a_backslash_is_listed_and_served(names_server):
    listing = names_server.get("/?format=json").json()
    hrefs = {entry["name"]: entry["href"] for entry in listing["entries"]}
    assert hrefs["back\\\\slash.txt"] == "back%5Cslash.txt"
    for path in ("/back%5Cslash.txt", "/back%5cslash.txt", "/back\\slash.txt"):
        reply = names_server.get(path)
        assert (reply.status, reply.body) == (200, b"behind a backslash\n"), path
    html = names_server.get("/").body.decode()
    assert 'href="back%5Cslash.txt"' in html


def test_a_backslash_folder_redirects_without_a_raw_backslash(names_server):
    """Browsers read "/\\evil.com/" as "//evil.com/": the Location spells the byte as %5C."""
    for path in ("/\\evil.com", "/%5Cevil.com"):
        reply = names_server.request("GET", path)
        assert reply.status == 301 and reply.header("Location") == "/%5Cevil.com/", path
    assert names_server.get("/%5Cevil.com/in.txt").body == b"inside\n"


def test_bidi_and_invisible_characters_are_shown_escaped(names_server):
    html = names_server.get("/").body.decode()
    assert "\u202e" not in html and "invoice\\u202egnp.exe" in html
    assert "\u200b" not in html and "zero\\u200bwidth.txt" in html
    names = {entry["name"] for entry in names_server.get("/?format=json").json()["entries"]}
    assert {"invoice\\u202egnp.exe", "zero\\u200bwidth.txt"} <= names
    # the link still reaches the file by its real bytes
    assert names_server.get("/invoice%E2%80%AEgnp.exe").body == b"not an exe\n"
