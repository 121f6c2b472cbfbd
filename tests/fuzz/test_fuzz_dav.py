"""WebDAV's parsers under hypothesis: any If: header is parsed into lists or refused with 400,
and a list's verdict never depends on anything but its conditions; any XML body is a tree or a
400 (never another exception), and a body parsed once serializes back to the same tree."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import example, given
from hypothesis import strategies as st

from cgibox.core import dav_xml
from cgibox.core.dav_locks import list_holds, parse_if, submitted_tokens
from cgibox.core.errors import HTTPError

if_texts = st.text(st.sampled_from('()<>[]" NotDAV:no-lock/opaquelocktoken:1-2\tW'), max_size=60)


@given(value=if_texts | st.text(max_size=60))
@example(value="(<a> [\"e\"]) (Not <DAV:no-lock>)")
@example(value="<http://h/x> (<a>) <http://h/y> ([\"b\"])")
@example(value="(Not Not <a>)")
def test_any_if_header_parses_or_is_400(value):
    try:
        lists = parse_if(value)
    except HTTPError as error:
        assert error.status == 400
        return
    assert lists and all(item.conditions for item in lists)
    assert parse_if(spell(lists)) == lists  # what was understood is all there was
    tokens = submitted_tokens(lists)
    for item in lists:
        held = list_holds(item.conditions, tokens, None)
        # the submitted tokens held and no entity tag: each condition holds when its token is held
        # (an entity tag never is), or, negated, when it is not
        assert held == all((c.token in tokens) != c.negated for c in item.conditions)


def spell(lists) -> str:
    parts = []
    for item in lists:
        if item.resource is not None:
            parts.append(f"<{item.resource}>")
        words = [("Not " if c.negated else "") + (f"<{c.token}>" if c.token is not None else f"[{c.etag}]")
                 for c in item.conditions]
        parts.append("(" + " ".join(words) + ")")
    return " ".join(parts)


xml_texts = st.text(st.sampled_from('<>/="\' D:xmlns&;!-[]?abcDAV:propfind'), max_size=80)


@given(body=xml_texts | st.binary(max_size=80))
@example(body=b'<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>')
@example(body=b"<a xmlns:x=''><x:b/></a>")
def test_any_xml_body_is_a_tree_or_400(body):
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    try:
        root = dav_xml.parse(data)
    except HTTPError as error:
        assert error.status == 400
        return
    if root is None:
        assert not data.strip()
        return
    again = dav_xml.parse(dav_xml.serialize(root).encode())
    assert again is not None
    assert ET.tostring(again) == ET.tostring(root)
