"""WebDAV's pieces without sockets: the If: header grammar and its evaluation, the lock table
(conflicts, depth, expiry, two tables on one file as two processes see it), Timeout parsing,
and the safe XML parser's refusals."""

from __future__ import annotations

import time

import pytest

from cgibox.core import dav_xml
from cgibox.core.dav_locks import (
    Condition,
    IfList,
    LockTable,
    covering,
    list_holds,
    parse_if,
    parse_timeout,
    submitted_tokens,
    within,
)
from cgibox.core.errors import HTTPError

T1 = "opaquelocktoken:11111111-1111-1111-1111-111111111111"


def test_if_header_lists_tagged_and_untagged():
    lists = parse_if(f'(<{T1}> ["abc"]) (Not <DAV:no-lock>)')
    assert lists == [IfList(None, (Condition(False, T1, None), Condition(False, None, '"abc"'))),
                     IfList(None, (Condition(True, "DAV:no-lock", None),))]
    tagged = parse_if(f'<http://h/a> (<{T1}>) <http://h/b> (["x"])')
    assert [item.resource for item in tagged] == ["http://h/a", "http://h/b"]
    assert submitted_tokens(lists) == {T1}


@pytest.mark.parametrize("header", ["", "()", "(<a>", "<a>", "(Not)", "(Not Not <a>)", "(x)",
                                    "<http://h/a> (<a>) (<b>)x", '(<a>) <http://h/> (<b>)'])
def test_malformed_if_headers_are_400(header):
    with pytest.raises(HTTPError) as caught:
        parse_if(header)
    assert caught.value.status == 400


def test_a_list_holds_when_every_condition_does():
    tokens = {T1}
    assert list_holds((Condition(False, T1, None),), tokens, '"e"')
    assert not list_holds((Condition(False, T1, None), Condition(False, None, '"f"')), tokens, '"e"')
    assert list_holds((Condition(True, "DAV:no-lock", None),), tokens, None)
    assert list_holds((Condition(False, None, 'W/"e"'),), set(), '"e"')  # weak comparison


def test_timeouts():
    assert parse_timeout("Second-60") == 60
    assert parse_timeout("Infinite, Second-4100000000") == 7 * 24 * 3600
    assert parse_timeout("bogus, Second-5") == 5
    assert parse_timeout(None) == 3600


def test_two_tables_on_one_file_see_each_others_locks(tmp_path):
    first, second = LockTable(str(tmp_path / "locks")), LockTable(str(tmp_path / "locks"))
    held = first.acquire("/a/", "infinity", True, "", None, 60)
    assert held.path == "/a"
    with pytest.raises(HTTPError) as caught:
        second.acquire("/a/b.txt", "0", False, "", None, 60)  # covered by the depth-infinity lock
    assert caught.value.status == 423
    with pytest.raises(HTTPError):
        second.acquire("/", "infinity", False, "", None, 60)  # would cover it
    assert second.acquire("/ab", "0", True, "", None, 60)  # a sibling with a common prefix
    locks = second.snapshot()
    assert [lock.token for lock in covering(locks, "/a/b.txt")] == [held.token]
    assert len(within(locks, "/")) == 2
    assert second.release(held.token, "/a/b.txt", None) == 204
    assert first.release(held.token, "/a", None) == 409


def test_shared_locks_and_the_owner(tmp_path):
    table = LockTable(str(tmp_path / "locks"))
    mine = table.acquire("/f", "0", False, "", "alice", 60)
    table.acquire("/f", "0", False, "", "bob", 60)
    with pytest.raises(HTTPError):
        table.acquire("/f", "0", True, "", "alice", 60)
    assert table.release(mine.token, "/f", "bob") == 403
    assert table.release(mine.token, "/f", "alice") == 204


def test_expired_locks_are_gone(tmp_path):
    table = LockTable(str(tmp_path / "locks"))
    lock = table.acquire("/f", "0", True, "", None, 1)
    table.change(lambda locks: setattr(locks[0], "expires", time.time() - 1))
    assert table.snapshot() == []
    assert table.refresh(lock.token, "/f", 60) is None
    table.acquire("/f", "0", True, "", None, 60)


def test_a_cut_table_file_is_read_as_empty(tmp_path):
    (tmp_path / "locks").write_bytes(b'[{"token": "x", "pa')
    assert LockTable(str(tmp_path / "locks")).snapshot() == []


@pytest.mark.parametrize("body", [
    b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
    b'<!DOCTYPE x SYSTEM "http://example.com/x.dtd"><x/>',
    b"<x>" * 40 + b"</x>" * 40,
    b"<x><y></x>",
])
def test_the_xml_parser_refuses(body):
    with pytest.raises(HTTPError) as caught:
        dav_xml.parse(body)
    assert caught.value.status == 400


def test_xml_round_trips_a_foreign_element():
    root = dav_xml.parse(b'<p xmlns="urn:x" xmlns:q="urn:q"><a q:at="1">t<q:b/>u</a></p>')
    assert root is not None
    text = dav_xml.serialize(root[0])
    again = dav_xml.parse(text.encode())
    assert again is not None and again.tag == "{urn:x}a" and again.get("{urn:q}at") == "1"
    assert dav_xml.element("{DAV:}getetag", "x") == "<D:getetag>x</D:getetag>"
    assert dav_xml.element("{urn:y}z") == '<ns:z xmlns:ns="urn:y"/>'


def test_the_quick_allprop_answer_is_the_general_one(tmp_path):
    """PROPFIND allprop's fast path writes what the general path writes (live then dead props)."""
    import os

    from cgibox.core import dav_props
    from cgibox.core.dav_locks import LockTable
    from cgibox.core.static import StaticFiles
    from cgibox.core.templates import Templates
    from cgibox.core.webdav import WebDAV

    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "d").mkdir()
    dav_props.write_dead(str(tmp_path / "f.txt"), {"{urn:x}a": '<ns0:a xmlns:ns0="urn:x">v</ns0:a>'})
    root = str(tmp_path)
    webdav = WebDAV(root, StaticFiles(root, Templates(None)), (), LockTable(str(tmp_path / ".locks")),
                    access=None, writes=None)  # type: ignore[arg-type]
    for name in ("f.txt", "d"):
        real = os.path.join(root, name)
        st = os.stat(real)
        fast = webdav.prop_response("/" + name, "/u", real, st, "allprop", [], [])
        general = webdav.prop_response("/" + name, "/u", real, st, "allprop", ["{DAV:}getetag"], [])
        assert fast == general
