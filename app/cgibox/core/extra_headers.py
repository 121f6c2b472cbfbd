"""--header 'NAME: VALUE': fields the operator adds to every response (HSTS, CSP and the like),
checked once at start-up (by `grammars.parse_extra_header`) and set by App.handle on each
response, whatever produced it."""

from __future__ import annotations

from cgibox.core.response import Response


def apply_extra_headers(response: Response, extra: tuple[tuple[str, str], ...]) -> None:
    """Set each configured field, replacing any of the same name (the operator's word is final);
    an nph- script's own raw head is the one thing sent untouched."""
    if not extra:
        return
    names = {name.lower() for name, _ in extra}
    response.headers = [(k, v) for k, v in response.headers if k.lower() not in names]
    response.headers.extend(extra)
