"""Response: status, headers and a body that is bytes, a file region, or an iterator of them."""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO


@dataclass(slots=True)
class FileRegion:
    """`length` bytes of an open file from `offset`: fronts send these with sendfile."""

    file: BinaryIO
    offset: int
    length: int

    def read_chunks(self, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
        """The region as bytes, for fronts or clients that cannot use sendfile."""
        fd = self.file.fileno()
        position, remaining = self.offset, self.length
        while remaining > 0:
            chunk = os.pread(fd, min(chunk_size, remaining), position)
            if not chunk:
                break
            position += len(chunk)
            remaining -= len(chunk)
            yield chunk


BodyPart = bytes | FileRegion
Body = bytes | FileRegion | Iterable[BodyPart]


class ConnectionCut(Exception):
    """Raised by a streaming body to say the response cannot be completed: drop the connection."""


@dataclass(slots=True)
class Response:
    """What the core answers. `body` is sent as it is; without a Content-Length header its
    length is unknown and the front frames it (chunked, or closing the connection).

    `close_connection` asks the front to close after this response. `cleanups` run once the
    front has finished with the body, sent or not (they close files, reap processes).
    """

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: Body = b""
    close_connection: bool = False
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    # HEAD: the headers describe a body that is not sent
    omit_body: bool = False
    # a CGI script ran to produce this response (counted in /stats)
    cgi_run: bool = False
    # what answered (core/durations.py's ROUTE_KINDS), set by the router; fronts pass it to App.finish
    route_kind: str = ""
    # an nph- script's own status line and header block, to be sent as they are: the body then
    # follows unframed and the connection closes after it (fronts that cannot write raw bytes
    # use `status` and `headers`, which hold the same head parsed)
    raw_head: bytes | None = None
    # a reason phrase of the response's own (a script's `Status: 404 Nope`); None: the standard one
    reason: str | None = None
    # may be content-coded for clients that accept it (core.compress): "page" for what the server
    # generates, "file" for a file's full 200 (with --compress-files); `compress_key` names the
    # page's state so its encoded forms are made once and cached
    compress: str | None = None
    compress_key: Hashable | None = None
    # set by what made the response when it may be replayed from memory (core/ready.py): whether
    # the answer still holds (a file's answer: its stat unchanged)
    ready_check: Callable[[], bool] | None = None
    # the answer is held by core/ready.py (recorded now, or replayed): the same request is
    # answered from memory next time, by any thread that asks App.ready_response
    from_memory: bool = False
    # such an answer's head as core.wire framed it, per (protocol, keep-alive): the bytes before
    # the Date line, whether one goes there, the bytes after it, chunked, close after it
    framed: dict[tuple[str, bool], tuple[bytes, bool, bytes, bool, bool]] | None = None

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def parts(self) -> Iterator[BodyPart]:
        """The body as a sequence of bytes and file regions."""
        body = self.body
        if isinstance(body, (bytes, bytearray)):
            if body:
                yield bytes(body)
        elif isinstance(body, FileRegion):
            yield body
        else:
            yield from body

    def close(self) -> None:
        """Run the cleanups once, whatever happened to the body."""
        cleanups, self.cleanups = self.cleanups, []
        for cleanup in cleanups:
            try:
                cleanup()
            except Exception:  # noqa: BLE001 - a failing cleanup must not hide the others
                pass
        body = self.body
        close = getattr(body, "close", None)
        if close is not None and not isinstance(body, (bytes, FileRegion)):
            close()
