"""HTTP errors: the exception the core raises, and the templated HTML or JSON page it becomes."""

from __future__ import annotations

import json
from http import HTTPStatus

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


# methods this server knows (RFC 9110 9.3, and PATCH, RFC 5789): a known one that a resource does
# not allow is 405 with Allow; any other is 501, the answer RFC 9110 9.1 gives for a method the
# server does not recognise
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


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
            body = templates.render(name, status=status, reason=reason(status), detail=detail,
                                    path=path).encode("utf-8", "replace")
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
    return Response(status, all_headers, body, close_connection=close_connection)
