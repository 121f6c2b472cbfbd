"""--header 'NAME: VALUE': fields the operator adds to every response (HSTS, CSP and the like),
checked once at start-up and set by App.handle on each response, whatever produced it."""

from __future__ import annotations

import re

from cgibox.core.response import Response
from cgibox.core.wire import HOP_BY_HOP

_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VALUE = re.compile(r"^[\x20-\x7e]*$")
# what frames or encodes the body, or what the server must decide for each response itself
FRAMING = frozenset({"content-length", "content-range", "content-encoding", "date", "status"})


def parse_extra_header(text: str) -> tuple[str, str]:
    """'Name: value' -> (name, value); ValueError (one line) for anything that cannot be sent
    as is, or that would change how a response is framed."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _NAME.match(name):
        raise ValueError(f"expected 'NAME: VALUE', not {text!r}")
    if not _VALUE.match(value):
        raise ValueError(f"{name}: the value must be visible ASCII text")
    if name.lower() in HOP_BY_HOP or name.lower() in FRAMING:
        raise ValueError(f"{name} is a hop-by-hop or framing field the server sets itself")
    return name, value


def apply_extra_headers(response: Response, extra: tuple[tuple[str, str], ...]) -> None:
    """Set each configured field, replacing any of the same name (the operator's word is final);
    an nph- script's own raw head is the one thing sent untouched."""
    if not extra:
        return
    names = {name.lower() for name, _ in extra}
    response.headers = [(k, v) for k, v in response.headers if k.lower() not in names]
    response.headers.extend(extra)
