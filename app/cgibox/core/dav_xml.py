"""WebDAV's XML: request bodies parsed safely (defusedxml: no DTD, no entity, no external
reference; bounded in bytes, depth and elements) and answers written well-formed (multistatus,
prop, error bodies), with property names in Clark notation ("{DAV:}getetag")."""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import BinaryIO
from xml.sax.saxutils import escape, quoteattr

from cgibox.core.errors import HTTPError, reason

DAV = "DAV:"
# the largest XML body taken (PROPFIND, PROPPATCH, LOCK): a PROPPATCH of many properties fits
MAX_XML_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_ELEMENTS = 20000
XML_TYPE = "application/xml; charset=utf-8"
PROLOGUE = '<?xml version="1.0" encoding="utf-8"?>\n'


def dav(name: str) -> str:
    """The Clark name of a DAV: element."""
    return "{DAV:}" + name


def read_body(body: BinaryIO, length: int | None, limit: int = MAX_XML_BYTES) -> bytes:
    """The whole request body, at most `limit` bytes (413 past it)."""
    if length is not None and length > limit:
        raise HTTPError(413, f"an XML body is at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = body.read(min(65536, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"an XML body is at most {limit} bytes", close_connection=True)
    return b"".join(chunks)


def parse(data: bytes) -> ET.Element | None:
    """The document's root element; None for an empty body; 400 for anything not well-formed,
    with a DTD or entities, or nested deeper than MAX_DEPTH."""
    if not data.strip():
        return None
    import defusedxml.ElementTree as safe_et  # on first use: a server without WebDAV never loads it
    from defusedxml import DefusedXmlException

    try:
        root: ET.Element = safe_et.fromstring(data, forbid_dtd=True, forbid_entities=True,
                                              forbid_external=True)
    except DefusedXmlException:
        raise HTTPError(400, "XML with a DTD or entities is refused") from None
    except ET.ParseError as error:
        raise HTTPError(400, f"the XML body is not well-formed: {error}") from None
    _check_shape(root)
    return root


def _check_shape(root: ET.Element) -> None:
    """No deeper than MAX_DEPTH, no more than MAX_ELEMENTS: walked without recursion."""
    stack = [(root, 1)]
    count = 0
    while stack:
        element, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH or count > MAX_ELEMENTS:
            raise HTTPError(400, "the XML body is nested too deep or has too many elements")
        stack.extend((child, depth + 1) for child in element)


# -- writing ------------------------------------------------------------------------------------


def split_name(clark: str) -> tuple[str, str]:
    """("DAV:", "getetag") from "{DAV:}getetag"; ("", "foo") from "foo"."""
    if clark.startswith("{"):
        namespace, _, local = clark[1:].partition("}")
        return namespace, local
    return "", clark


@functools.lru_cache(maxsize=1024)
def tags(clark: str) -> tuple[str, str, str]:
    """(start tag, end tag, empty element) for a Clark name: DAV: elements with the D: prefix
    declared on the document, others declaring their namespace on themselves."""
    namespace, local = split_name(clark)
    if namespace == DAV:
        tag, declaration = "D:" + local, ""
    elif namespace:
        tag, declaration = "ns:" + local, " xmlns:ns=" + quoteattr(namespace)
    else:
        tag, declaration = local, ""
    return f"<{tag}{declaration}>", f"</{tag}>", f"<{tag}{declaration}/>"


def element(clark: str, inner: str = "") -> str:
    """`<name>inner</name>` for a Clark name (an empty element when `inner` is empty)."""
    start, end, empty = tags(clark)
    return start + inner + end if inner else empty


def text(value: str) -> str:
    return escape(value)


def serialize(node: ET.Element) -> str:
    """An element as XML text with every namespace it uses declared on itself (a dead property's
    value is stored as this, and given back as it came)."""
    tail, node.tail = node.tail, None  # tostring writes the element's tail too
    try:
        return ET.tostring(node, encoding="unicode", short_empty_elements=True)
    finally:
        node.tail = tail


def inner_xml(node: ET.Element) -> str:
    """What an element holds (its text and children), as XML text."""
    parts = [escape(node.text or "")]
    for child in node:
        parts.append(serialize(child))
        parts.append(escape(child.tail or ""))
    return "".join(parts)


def status_line(status: int) -> str:
    return f"<D:status>HTTP/1.1 {status} {reason(status)}</D:status>"


def propstat(props: list[str], status: int) -> str:
    """One <D:propstat>: the properties' XML, and the status they share."""
    return f"<D:propstat><D:prop>{''.join(props)}</D:prop>{status_line(status)}</D:propstat>"


def response(href: str, inner: str) -> str:
    """One <D:response>; `href` is percent-encoded already (nothing in it needs escaping)."""
    return f"<D:response><D:href>{href}</D:href>{inner}</D:response>"


def multistatus(responses: list[str]) -> bytes:
    """A 207 body from <D:response> elements."""
    return (PROLOGUE + '<D:multistatus xmlns:D="DAV:">' + "".join(responses)
            + "</D:multistatus>\n").encode("utf-8", "surrogateescape")


def multistatus_stream(first: str, rest: Iterator[str], batch: int = 200) -> Iterator[bytes]:
    """A 207 body made as it is sent: the first response, then the others `batch` at a time."""
    yield (PROLOGUE + '<D:multistatus xmlns:D="DAV:">' + first).encode("utf-8", "surrogateescape")
    pending: list[str] = []
    for item in rest:
        pending.append(item)
        if len(pending) >= batch:
            yield "".join(pending).encode("utf-8", "surrogateescape")
            pending.clear()
    yield ("".join(pending) + "</D:multistatus>\n").encode("utf-8", "surrogateescape")


def document(root_inner: str) -> bytes:
    """A body whose root element is `root_inner`, with the D: prefix declared on it."""
    head, sep, rest = root_inner.partition(">")
    if head.endswith("/"):
        head, sep = head[:-1], "/>"
    return (PROLOGUE + head + ' xmlns:D="DAV:"' + sep + rest + "\n").encode("utf-8", "surrogateescape")


def error_body(condition: str) -> bytes:
    """RFC 4918 16: <D:error> naming the precondition or postcondition that failed."""
    return document(f"<D:error><D:{condition}/></D:error>")
