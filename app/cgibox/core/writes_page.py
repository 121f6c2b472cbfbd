"""The write controls of a listing (upload button and drop zone, new folder, rename and delete
per row): shown only to a reader the access rules let write there.

A listing is rendered once per folder state for every reader (core/listing.py); these controls
are the one part that depends on who reads, so they are rendered once (templates/writes.html,
with its script) and put in place of the listing's `<!--cgibox:writes-->` mark for a writer.
A --templates listing without the mark shows none (its author places them).

A reader who would need to log in to write gets a "log in" link instead: `?login` on a folder
asks for the login the rules want there (401, so the browser asks for the password), and the
listing comes back with the controls once the browser sends it."""

from __future__ import annotations

from collections.abc import Callable

from cgibox.core.request import Request
from cgibox.core.response import Response
from cgibox.core.templates import Templates

MARK = b"<!--cgibox:writes-->"
LOGIN_LINK = (b'<p class="downloads"><a href="?login">Log in to upload or change files here</a></p>')
# what a page offers a reader: the controls, a login link, or nothing
WRITE, LOGIN, NOTHING = "write", "login", "nothing"


class WriteControls:
    """Adds the controls to a writer's listing; `may_write(request, decoded)` asks the rules."""

    def __init__(self, templates: Templates, offer: Callable[[Request, str], str],
                 require: Callable[[Request, str], None], max_upload: int) -> None:
        self.templates = templates
        self.offer = offer  # WRITE, LOGIN or NOTHING for this reader here
        self.require = require  # the write check itself: 401/403/405
        self.max_upload = max_upload
        self._block: bytes | None = None

    def block(self) -> bytes:
        if self._block is None:
            self._block = self.templates.render("writes.html", max_upload=self.max_upload).encode("utf-8")
        return self._block

    def apply(self, request: Request, decoded: str, response: Response) -> Response:
        """`response` (a listing) with the controls (or the login link) in place of the mark,
        as the rules say for this reader; else as it is (the mark is an HTML comment)."""
        body = response.body
        content_type = response.header("content-type") or ""
        if not isinstance(body, bytes) or not content_type.startswith("text/html") or MARK not in body:
            return response
        if request.query and request.query_param("login") is not None:
            self.require(request, decoded)  # 401 until the browser sends a login that may write
        offer = self.offer(request, decoded)
        if offer == NOTHING:
            return response
        new_body = body.replace(MARK, self.block() if offer == WRITE else LOGIN_LINK, 1)
        response.body = new_body
        response.headers = [(name, str(len(new_body)) if name.lower() == "content-length" else value)
                            for name, value in response.headers]
        if response.compress_key is not None:  # the writer's page is a state of its own
            response.compress_key = (offer, response.compress_key)
        return response
