"""HTTP errors: the exception the core raises, and the templated HTML or JSON page it becomes."""

from __future__ import annotations

import functools
import json
from http import HTTPStatus

import jinja2
from markupsafe import escape

from cgibox.core.accesslog import server_log
from cgibox.core.paths import display_name
from cgibox.core.request import Request
from cgibox.core.response import Response
from cgibox.core.templates import Templates


class HTTPError(Exception):
    """Stop handling and answer `status`, with extra `headers` and an optional `detail` line."""

    def __init__(self, status: int, detail: str = "", headers: list[tuple[str, str]] | None = None,
                 close_connection: bool = False) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers = headers or []
        self.close_connection = close_connection


class BodyTimeout(HTTPError):
    """What a front's body stream raises when the client stayed silent past --body-timeout while
    sending its request body: 408 and the connection closed (RFC 9110 15.5.9), the answer nginx's
    client_body_timeout and Apache's mod_reqtimeout give. The status is decided here, once."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body stopped arriving for {seconds:g} s (--body-timeout)",
                         close_connection=True)


# methods this server knows (RFC 9110 9.3, PATCH from RFC 5789, MKCOL and MOVE from RFC 4918): a
# known one that a resource does not allow is 405 with Allow; any other is 501, the answer
# RFC 9110 9.1 gives for a method the server does not recognise
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
                           "MKCOL", "MOVE"})


def refuse_method(method: str, allowed: str) -> HTTPError:
    """The error for `method` on a resource that only takes `allowed` ("GET, HEAD")."""
    if method not in KNOWN_METHODS:
        return HTTPError(501, f"the method {method} is not implemented")
    return HTTPError(405, headers=[("Allow", allowed)])


_REASONS = {status.value: status.phrase for status in HTTPStatus}


def reason(status: int) -> str:
    """The standard reason phrase ("Unknown" for a code without one); a dict, not an Enum lookup,
    since every response needs one."""
    return _REASONS.get(status, "Unknown")


# two stand-ins for the request path, of different lengths, that HTML escaping leaves alone
_PATH_STAND_INS = ("cgiboxpathstandinq", "cgiboxpathstandinzzzzzz")


def render_error_page(templates: Templates, name: str, status: int, detail: str, path: str) -> str:
    """The error page for `path`. Rendered through Jinja once per template, status and detail:
    only the escaped path changes from one request to the next (a 404 flood costs an escape and a
    join, not a render). A template that does more with the path than print it is rendered per
    request."""
    template = templates.env.get_template(name)  # Jinja's own cache; a changed override is new
    parts = _page_around_path(template, status, reason(status), detail) if path else None
    if parts is None:
        return template.render(status=status, reason=reason(status), detail=detail, path=path)
    return str(escape(path)).join(parts)


@functools.lru_cache(maxsize=64)
def _page_around_path(template: jinja2.Template, status: int, reason_phrase: str,
                      detail: str) -> tuple[str, ...] | None:
    """The page split where the path goes, or None when the page is not only text around it: the
    same split must come out for two different stand-ins (so no filter, length or test saw them)."""
    splits = [tuple(template.render(status=status, reason=reason_phrase, detail=detail,
                                    path=stand_in).split(stand_in)) for stand_in in _PATH_STAND_INS]
    if splits[0] != splits[1] or len(splits[0]) < 2:
        return None
    return splits[0]


def warm_error_pages(templates: Templates) -> None:
    """Split the 404 page once before serving, so forked children inherit it rather than each
    rendering it twice on its first 404 (a broken override template is reported when used)."""
    try:
        render_error_page(templates, "404.html", 404, "", "/")
    except Exception:  # noqa: BLE001 - the same error comes back, templated, on the first 404
        pass


def error_response(templates: Templates, request: Request | None, status: int, detail: str = "",
                   headers: list[tuple[str, str]] | None = None, close_connection: bool = False) -> Response:
    """A 4xx/5xx page: `404.html` or `error.html`, or JSON when the client asked for JSON.

    Never raises: the path is shown with what cannot be displayed escaped (a front may hand in
    anything, even lone surrogates), and a template that fails to render gives a plain-text page.
    """
    path = display_name(request.raw_path) if request is not None else ""
    if request is not None and request.wants_json:
        body = json.dumps({"status": status, "error": reason(status), "path": path}).encode()
        content_type = "application/json"
    else:
        name = "404.html" if status == 404 else "error.html"
        try:
            body = render_error_page(templates, name, status, detail, path).encode("utf-8", "replace")
            content_type = "text/html; charset=utf-8"
        except Exception as error:  # noqa: BLE001 - e.g. a broken --templates override
            server_log(f"cgibox: the {name} template failed: {error!r}")
            body = f"{status} {reason(status)}\n".encode()
            content_type = "text/plain; charset=utf-8"
    all_headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
                   ("Cache-Control", "no-store")]
    all_headers.extend(headers or [])
    if close_connection:
        all_headers.append(("Connection", "close"))
    return Response(status, all_headers, body, close_connection=close_connection, compress="page")
