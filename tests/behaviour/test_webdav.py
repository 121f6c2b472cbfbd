"""--webdav on every front: OPTIONS, PROPFIND (depth 0 and 1, infinity refused), dead properties
kept in the file (across a restart, a MOVE and a COPY), the lock table shared by every serving
process (423 without the token, If: headers, refresh, timeouts), COPY/MOVE with Depth and
Overwrite, safe XML (no entities, DTDs, bombs; bounded size and depth), hidden names and script
folders left out, and the --write rules (read-only without one, the named users only)."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET

import pytest

from tests.behaviour.test_auth import USERS, basic, write_htpasswd
from tests.servers import start_server

D = "{DAV:}"
PROPFIND_ETAG = (b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>'
                 b'<D:resourcetype/><D:getcontentlength/><D:nope/></D:prop></D:propfind>')
LOCKINFO = (b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
            b'<D:locktype><D:write/></D:locktype><D:owner><D:href>mailto:t@example.com</D:href></D:owner>'
            b'</D:lockinfo>')


def proppatch_body(name: str, value: str, namespace: str = "urn:cgibox:test") -> bytes:
    return (f'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="{namespace}"><D:set><D:prop>'
            f'<Z:{name}>{value}</Z:{name}></D:prop></D:set></D:propertyupdate>').encode()


def propfind_names(*names: str, namespace: str = "urn:cgibox:test") -> bytes:
    inner = "".join(f"<Z:{name}/>" for name in names)
    return (f'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="{namespace}"><D:prop>{inner}'
            f'</D:prop></D:propfind>').encode()


def multistatus(reply) -> dict[str, dict[str, tuple[str, ET.Element]]]:
    """href -> {property name -> (status line, element)} of a 207 answer."""
    assert reply.status == 207, (reply.status, reply.text)
    assert reply.header("Content-Type").startswith("application/xml")
    root = ET.fromstring(reply.body)
    found: dict[str, dict[str, tuple[str, ET.Element]]] = {}
    for response in root.findall(D + "response"):
        href = response.findtext(D + "href")
        props = found.setdefault(href, {})
        for propstat in response.findall(D + "propstat"):
            status = propstat.findtext(D + "status")
            for prop in propstat.find(D + "prop"):
                props[prop.tag] = (status, prop)
    return found


@pytest.fixture(scope="module")
def dav_site(front, tmp_path_factory):
    """A root the tests may change (one per front), with a hidden file and a script folder inside."""
    base = tmp_path_factory.mktemp("dav")
    root = base / "root"
    (root / "pub").mkdir(parents=True)
    (root / "pub" / "readme.txt").write_text("hello\n")
    (root / "pub" / ".secret").write_text("hidden\n")
    (root / "scripts").mkdir()
    (root / "dav").mkdir()
    return root, root / "scripts"


@pytest.fixture(scope="module")
def dav(front, dav_site, tmp_path_factory):
    root, scripts = dav_site
    processes = ["--processes", "2"] if front == "threading" else []
    server = start_server(front, root, scripts, tmp_path_factory.mktemp("logs"),
                          ["--webdav", "--write", "/dav/*", *processes])
    yield server
    server.stop()


# -- OPTIONS and PROPFIND ----------------------------------------------------------------------

def test_options_says_dav_class_1_and_2(dav):
    reply = dav.request("OPTIONS", "/dav/")
    assert reply.status == 200
    assert reply.header("DAV") == "1, 2"
    assert {"PROPFIND", "LOCK", "COPY", "MOVE"} <= {m.strip() for m in reply.header("Allow").split(",")}


def test_propfind_depth_1_lists_members_without_hidden_names_or_script_folders(dav):
    found = multistatus(dav.request("PROPFIND", "/", {"Depth": "1"}))
    assert set(found) == {"/", "/pub/", "/dav/"}
    assert found["/pub/"][D + "resourcetype"][1].find(D + "collection") is not None
    found = multistatus(dav.request("PROPFIND", "/pub/", {"Depth": "1"}))
    assert set(found) == {"/pub/", "/pub/readme.txt"}
    assert found["/pub/readme.txt"][D + "getcontentlength"][1].text == "6"


def test_propfind_depth_0_names_props_and_the_etag_is_gets(dav):
    reply = dav.request("PROPFIND", "/pub/readme.txt", {"Depth": "0"}, PROPFIND_ETAG)
    props = multistatus(reply)["/pub/readme.txt"]
    assert props[D + "getetag"][0] == "HTTP/1.1 200 OK"
    assert props[D + "getetag"][1].text == dav.get("/pub/readme.txt").header("ETag")
    assert props[D + "nope"][0] == "HTTP/1.1 404 Not Found"


def test_propfind_depth_infinity_is_refused_with_the_rfc_condition(dav):
    for headers in ({"Depth": "infinity"}, {}):
        reply = dav.request("PROPFIND", "/", headers)
        assert reply.status == 403
        assert ET.fromstring(reply.body).find(D + "propfind-finite-depth") is not None


def test_hidden_names_and_script_folders_stay_out(dav):
    assert dav.request("PROPFIND", "/pub/.secret", {"Depth": "0"}).status == 404
    assert dav.request("PUT", "/dav/.hidden", body=b"x").status == 400
    assert dav.request("MKCOL", "/dav/.hidden/").status == 400
    dav.request("PUT", "/dav/visible.txt", body=b"x")
    reply = dav.request("MOVE", "/dav/visible.txt", {"Destination": "/dav/.sneaky"})
    assert reply.status == 400
    assert dav.request("PROPFIND", "/scripts/", {"Depth": "0"}).status == 404
    assert dav.request("DELETE", "/dav/visible.txt").status == 204


# -- writes under --write only ------------------------------------------------------------------

def test_outside_the_write_rule_changes_are_405(dav):
    for method, headers in (("PUT", {}), ("MKCOL", {}), ("DELETE", {}),
                            ("PROPPATCH", {}), ("LOCK", {}),
                            ("MOVE", {"Destination": "/dav/x"})):
        reply = dav.request(method, "/pub/readme.txt", headers,
                            proppatch_body("a", "b") if method == "PROPPATCH" else None)
        assert reply.status == 405, method
    # and into a read-only place from a writable one
    dav.request("PUT", "/dav/from.txt", body=b"data")
    assert dav.request("COPY", "/dav/from.txt", {"Destination": "/pub/to.txt"}).status == 405
    assert dav.request("MOVE", "/dav/from.txt", {"Destination": "/pub/to.txt"}).status == 405
    assert not (dav.root / "pub" / "to.txt").exists()


def test_put_mkcol_copy_move_delete(dav):
    assert dav.request("MKCOL", "/dav/tree/").status == 201
    assert dav.request("MKCOL", "/dav/tree/").status == 405
    assert dav.request("MKCOL", "/dav/none/deeper/").status == 409
    assert dav.request("PUT", "/dav/tree/a.txt", body=b"aaa").status == 201
    assert dav.request("PUT", "/dav/tree/a.txt", body=b"AAA").status == 204
    assert dav.request("COPY", "/dav/tree/", {"Destination": "/dav/copy/"}).status == 201
    assert dav.get("/dav/copy/a.txt").body == b"AAA"
    reply = dav.request("COPY", "/dav/tree/", {"Destination": "/dav/copy/", "Overwrite": "F"})
    assert reply.status == 412
    assert dav.request("COPY", "/dav/tree/", {"Destination": "/dav/shallow/", "Depth": "0"}).status == 201
    assert list((dav.root / "dav" / "shallow").iterdir()) == []
    reply = dav.request("MOVE", "/dav/copy/", {"Destination": f"http://{dav.host}:{dav.port}/dav/moved/"})
    assert reply.status == 201
    assert dav.get("/dav/moved/a.txt").body == b"AAA" and dav.get("/dav/copy/a.txt").status == 404
    assert dav.request("MOVE", "/dav/moved/", {"Destination": "http://elsewhere.example/x/"}).status == 502
    assert dav.request("COPY", "/dav/tree/", {"Destination": "/dav/tree/inside/"}).status == 403
    for path in ("/dav/tree/", "/dav/moved/", "/dav/shallow/"):
        assert dav.request("DELETE", path).status == 204
    assert dav.request("DELETE", "/dav/tree/").status == 404


# -- dead properties -----------------------------------------------------------------------------

def test_dead_properties_follow_move_and_copy(dav):
    dav.request("PUT", "/dav/p.txt", body=b"p")
    reply = dav.request("PROPPATCH", "/dav/p.txt", body=proppatch_body("colour", "r\u00e9d \U0001f600"))
    assert multistatus(reply)["/dav/p.txt"]["{urn:cgibox:test}colour"][0] == "HTTP/1.1 200 OK"
    assert dav.request("MOVE", "/dav/p.txt", {"Destination": "/dav/q.txt"}).status == 201
    assert dav.request("COPY", "/dav/q.txt", {"Destination": "/dav/r.txt"}).status == 201
    for path in ("/dav/q.txt", "/dav/r.txt"):
        props = multistatus(dav.request("PROPFIND", path, {"Depth": "0"}, propfind_names("colour")))[path]
        assert props["{urn:cgibox:test}colour"][1].text == "r\u00e9d \U0001f600"
    reply = dav.request("PROPPATCH", "/dav/q.txt", body=proppatch_body("getetag", "x", namespace="DAV:"))
    assert multistatus(reply)["/dav/q.txt"][D + "getetag"][0] == "HTTP/1.1 403 Forbidden"


WIN32 = "urn:schemas-microsoft-com:"


def test_what_windows_and_finder_ask_for(dav):
    """Explorer sets its Win32 times after an upload and reads them back by name; Finder asks a
    folder for its quota."""
    dav.request("PUT", "/dav/win.txt", body=b"w")
    body = (f'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="{WIN32}"><D:set><D:prop>'
            '<Z:Win32CreationTime>Mon, 07 Dec 2026 10:00:00 GMT</Z:Win32CreationTime>'
            '<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>')
    assert dav.request("PROPPATCH", "/dav/win.txt", body=body.encode()).status == 207
    reply = dav.request("PROPFIND", "/dav/", {"Depth": "1"},
                        propfind_names("Win32FileAttributes", "Win32LastAccessTime", namespace=WIN32))
    props = multistatus(reply)["/dav/win.txt"]
    assert props[f"{{{WIN32}}}Win32FileAttributes"][1].text == "00000020"
    assert props[f"{{{WIN32}}}Win32LastAccessTime"][0] == "HTTP/1.1 404 Not Found"
    quota = (b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/>'
             b'<D:quota-used-bytes/></D:prop></D:propfind>')
    props = multistatus(dav.request("PROPFIND", "/dav/", {"Depth": "0"}, quota))["/dav/"]
    assert int(props[D + "quota-available-bytes"][1].text) > 0
    assert dav.request("DELETE", "/dav/win.txt").status == 204


def test_dead_properties_survive_a_restart(front, tmp_path):
    root = tmp_path / "root"
    (root / "dav").mkdir(parents=True)
    (root / "dav" / "kept.txt").write_text("k")
    flags = ["--webdav", "--write", "/dav/*"]
    (tmp_path / "no-scripts").mkdir()
    server = start_server(front, root, tmp_path / "no-scripts", tmp_path / "logs", flags)
    try:
        assert server.request("PROPPATCH", "/dav/kept.txt", body=proppatch_body("k", "v")).status == 207
    finally:
        server.stop()
    server = start_server(front, root, tmp_path / "no-scripts", tmp_path / "logs", flags)
    try:
        reply = server.request("PROPFIND", "/dav/kept.txt", {"Depth": "0"}, propfind_names("k"))
        assert multistatus(reply)["/dav/kept.txt"]["{urn:cgibox:test}k"][1].text == "v"
    finally:
        server.stop()


# -- locks ---------------------------------------------------------------------------------------

def lock(server, path: str, timeout: str = "Second-600", depth: str = "infinity") -> str:
    reply = server.request("LOCK", path, {"Timeout": timeout, "Depth": depth}, LOCKINFO)
    assert reply.status in (200, 201), (reply.status, reply.text)
    token = reply.header("Lock-Token")
    assert token and token.startswith("<") and token.endswith(">")
    return token


def test_a_lock_holds_in_every_serving_process(dav):
    dav.request("PUT", "/dav/locked.txt", body=b"v1")
    token = lock(dav, "/dav/locked.txt")
    # fresh connections: each may land on another process (threading --processes 2, gunicorn's
    # workers, the forking front's children)
    for _ in range(8):
        assert dav.request("PUT", "/dav/locked.txt", body=b"v2").status == 423
        assert dav.request("DELETE", "/dav/locked.txt").status == 423
    assert dav.request("LOCK", "/dav/locked.txt", {"Depth": "0"}, LOCKINFO).status == 423
    assert dav.request("PUT", "/dav/locked.txt", {"If": f"({token})"}, b"v3").status == 204
    assert dav.request("PUT", "/dav/locked.txt", {"If": "(<opaquelocktoken:nope>)"}, b"v4").status == 412
    etag = dav.get("/dav/locked.txt").header("ETag")
    assert dav.request("PUT", "/dav/locked.txt", {"If": f'({token} ["x"])'}, b"v5").status == 412
    assert dav.request("PUT", "/dav/locked.txt", {"If": f"({token} [{etag}])"}, b"v6").status == 204
    found = multistatus(dav.request("PROPFIND", "/dav/locked.txt", {"Depth": "0"}))
    discovery = found["/dav/locked.txt"][D + "lockdiscovery"][1]
    assert discovery.findtext(f"{D}activelock/{D}locktoken/{D}href") == token[1:-1]
    assert dav.request("UNLOCK", "/dav/locked.txt", {"Lock-Token": "<opaquelocktoken:nope>"}).status == 409
    assert dav.request("UNLOCK", "/dav/locked.txt", {"Lock-Token": token}).status == 204
    assert dav.request("PUT", "/dav/locked.txt", body=b"v7").status == 204
    assert dav.get("/dav/locked.txt").body == b"v7"


def test_a_folder_lock_covers_its_members_and_refresh_renews_it(dav):
    dav.request("MKCOL", "/dav/lockdir/")
    token = lock(dav, "/dav/lockdir/")
    assert dav.request("PUT", "/dav/lockdir/new.txt", body=b"x").status == 423
    assert dav.request("PUT", "/dav/lockdir/new.txt", {"If": f"({token})"}, b"x").status == 201
    assert dav.request("MOVE", "/dav/lockdir/new.txt", {"Destination": "/dav/out.txt"}).status == 423
    reply = dav.request("LOCK", "/dav/lockdir/new.txt", {"If": f"({token})", "Timeout": "Second-900"})
    assert reply.status == 200
    assert re.search(r"Second-(8\d\d|900)", reply.text)
    assert dav.request("DELETE", "/dav/lockdir/", {"If": f"({token})"}).status == 204


def test_a_lock_on_an_unmapped_url_makes_an_empty_file_and_expires(dav):
    reply = dav.request("LOCK", "/dav/unmapped.txt", {"Timeout": "Second-1"}, LOCKINFO)
    assert reply.status == 201
    assert dav.get("/dav/unmapped.txt").body == b""
    assert dav.request("PUT", "/dav/unmapped.txt", body=b"x").status == 423
    time.sleep(1.5)  # the lock's own timeout: past it, nobody holds the file
    assert dav.request("PUT", "/dav/unmapped.txt", body=b"x").status == 204


def test_shared_locks_coexist_and_exclusive_ones_do_not(dav):
    shared = LOCKINFO.replace(b"<D:exclusive/>", b"<D:shared/>")
    dav.request("PUT", "/dav/shared.txt", body=b"s")
    first = dav.request("LOCK", "/dav/shared.txt", {"Depth": "0"}, shared)
    second = dav.request("LOCK", "/dav/shared.txt", {"Depth": "0"}, shared)
    assert (first.status, second.status) == (200, 200)
    assert dav.request("LOCK", "/dav/shared.txt", {"Depth": "0"}, LOCKINFO).status == 423
    for reply in (first, second):
        token = reply.header("Lock-Token")
        assert dav.request("UNLOCK", "/dav/shared.txt", {"Lock-Token": token}).status == 204


def test_a_depth_0_lock_on_a_folder_guards_its_names_not_its_members_bytes(dav):
    dav.request("MKCOL", "/dav/names/")
    dav.request("PUT", "/dav/names/kept.txt", body=b"k")
    token = lock(dav, "/dav/names/", depth="0")
    assert dav.request("PUT", "/dav/names/new.txt", body=b"n").status == 423
    assert dav.request("DELETE", "/dav/names/kept.txt").status == 423
    assert dav.request("PUT", "/dav/names/kept.txt", body=b"changed").status == 204
    assert dav.request("PUT", "/dav/names/new.txt", {"If": f"({token})"}, b"n").status == 201
    assert dav.request("UNLOCK", "/dav/names/", {"Lock-Token": token}).status == 204


def test_a_big_folder_is_streamed_whole(dav):
    folder = dav.root / "dav" / "big"
    folder.mkdir()
    for number in range(2100):
        (folder / f"f{number:04d}").write_bytes(b"x")
    reply = dav.request("PROPFIND", "/dav/big/", {"Depth": "1"})
    found = multistatus(reply)
    assert len(found) == 2101 and "/dav/big/f2099" in found
    assert dav.request("DELETE", "/dav/big/").status == 204


# -- safe XML -------------------------------------------------------------------------------------

BOMB = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b'<D:propfind xmlns:D="DAV:"><D:prop><D:x>&lol2;</D:x></D:prop></D:propfind>')
EXTERNAL = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b'<D:propfind xmlns:D="DAV:"><D:prop><D:x>&e;</D:x></D:prop></D:propfind>')


UNDECLARED = b"<D:propfind xmlns:D='DAV:'><bar:x xmlns:bar=''/></D:propfind>"


@pytest.mark.parametrize("body", [BOMB, EXTERNAL, b"<D:propfind xmlns:D='DAV:'><D:prop>",
                                  b"<a>" * 100 + b"</a>" * 100, UNDECLARED],
                         ids=["bomb", "external", "cut", "deep", "undeclared"])
def test_unsafe_or_broken_xml_is_400(dav, body):
    assert dav.request("PROPFIND", "/pub/", {"Depth": "0"}, body).status == 400
    assert dav.request("PROPPATCH", "/dav/", {}, body).status == 400


def test_an_oversized_xml_body_is_413(dav):
    body = b"<D:propfind xmlns:D='DAV:'><D:prop>" + b"<D:x/>" * 200000 + b"</D:prop></D:propfind>"
    assert dav.request("PROPFIND", "/pub/", {"Depth": "0"}, body).status == 413


# -- logins --------------------------------------------------------------------------------------

def test_writes_only_for_the_named_users(front, dav_site, tmp_path):
    root, scripts = dav_site
    passwd = tmp_path / "htpasswd"
    write_htpasswd(passwd, USERS)
    server = start_server(front, root, scripts, tmp_path / "logs",
                          ["--webdav", "--auth-file", str(passwd), "--auth-scope", "writes",
                           "--write", "/dav/*=alice"])
    try:
        assert server.request("PROPFIND", "/pub/", {"Depth": "1"}).status == 207
        assert server.request("LOCK", "/dav/mine.txt", {}, LOCKINFO).status == 401
        bob = {"Authorization": basic("bob", USERS["bob"])}
        assert server.request("LOCK", "/dav/mine.txt", bob, LOCKINFO).status == 403
        alice = {"Authorization": basic("alice", USERS["alice"])}
        reply = server.request("LOCK", "/dav/mine.txt", alice, LOCKINFO)
        assert reply.status == 201
        assert server.request("COPY", "/pub/readme.txt", {**bob, "Destination": "/dav/c.txt"}).status == 403
        unlock = {**alice, "Lock-Token": reply.header("Lock-Token")}
        assert server.request("UNLOCK", "/dav/mine.txt", unlock).status == 204
        assert server.request("DELETE", "/dav/mine.txt", alice).status == 204
    finally:
        server.stop()
