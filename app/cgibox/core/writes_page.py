"""The write controls of a listing (upload button and drop zone, new folder, rename and delete
per row): shown only to a reader the access rules let write there.

A listing is rendered once per folder state for every reader (core/listing.py); these controls
are the one part that depends on who reads, so they are rendered once (templates/writes.html,
with its script) and put in place of the listing's `<!--cgibox:writes-->` mark for a writer.
A --templates listing without the mark shows none (its author places them)."""

from __future__ import annotations

from collections.abc import Callable

from cgibox.core.request import Request
from cgibox.core.response import Response
from cgibox.core.templates import Templates

MARK = b"<!--cgibox:writes-->"


class WriteControls:
    """Adds the controls to a writer's listing; `may_write(request, decoded)` asks the rules."""

    def __init__(self, templates: Templates, may_write: Callable[[Request, str], bool],
                 max_upload: int) -> None:
        self.templates = templates
        self.may_write = may_write
        self.max_upload = max_upload
        self._block: bytes | None = None

    def block(self) -> bytes:
        if self._block is None:
            self._block = self.templates.render("writes.html", max_upload=self.max_upload).encode("utf-8")
        return self._block

    def apply(self, request: Request, decoded: str, response: Response) -> Response:
        """`response` (a listing) with the controls in place of the mark when the reader may
        write in this folder; else as it is (the mark is an HTML comment: it shows nothing)."""
        body = response.body
        content_type = response.header("content-type") or ""
        if not isinstance(body, bytes) or not content_type.startswith("text/html") or MARK not in body:
            return response
        if not self.may_write(request, decoded):
            return response
        new_body = body.replace(MARK, self.block(), 1)
        response.body = new_body
        response.headers = [(name, str(len(new_body)) if name.lower() == "content-length" else value)
                            for name, value in response.headers]
        if response.compress_key is not None:  # the writer's page is a state of its own
            response.compress_key = ("writes", response.compress_key)
        return response
