"""Form uploads: a multipart/form-data POST to a folder, parsed as it streams in by
python-multipart (never a file in memory); each file part lands through core/landing.py, and all
of them are put in place together once the whole form has arrived (303 back to the listing, or
JSON when asked)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from cgibox.core.cgi import read_request_body
from cgibox.core.errors import HTTPError
from cgibox.core.landing import Landing, check_name, href_of, open_folder, split_path
from cgibox.core.paths import display_name
from cgibox.core.request import Request
from cgibox.core.response import Response

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

    from cgibox.core.writes import Writes

READ_SIZE = 256 * 1024
# files in one form: each is an open temporary file until the form ends
MAX_FILES = 256
# bytes of the form's other fields, all together (they are read and dropped)
MAX_FIELD_BYTES = 64 * 1024


class FormReader:
    """python-multipart's callbacks: part headers gathered, file parts written to Landings."""

    def __init__(self, dir_fd: int, limit: int) -> None:
        self.dir_fd = dir_fd
        self.limit = limit
        self.landings: list[Landing] = []
        self.current: Landing | None = None
        self.headers: dict[bytes, bytes] = {}
        self.field = b""
        self.value = b""
        self.field_bytes = 0
        self.ended = False

    def callbacks(self) -> MultipartCallbacks:
        return {"on_part_begin": self.part_begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
                "on_part_end": self.part_end, "on_end": self.end}

    def part_begin(self) -> None:
        self.headers = {}
        self.current = None

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def header_end(self) -> None:
        self.headers[self.field.strip().lower()] = self.value.strip()
        self.field = self.value = b""

    def headers_finished(self) -> None:
        disposition = self.headers.get(b"content-disposition", b"")
        kind, options = parse_options_header(disposition.decode("latin-1"))
        raw_name = options.get(b"filename")
        if kind != b"form-data" or raw_name is None or raw_name == b"":
            return  # another field, or a file input left empty (browsers send filename="")
        # the name's bytes as the OS spells names: UTF-8, and bytes that are not UTF-8 kept
        name = os.fsdecode(raw_name)
        check_name(name)
        if len(self.landings) >= MAX_FILES:
            raise HTTPError(413, f"more than {MAX_FILES} files in one form", close_connection=True)
        self.current = Landing(self.dir_fd, name, self.limit)
        self.landings.append(self.current)

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.current is not None:
            self.current.write(data[start:end])
            return
        self.field_bytes += end - start
        if self.field_bytes > MAX_FIELD_BYTES:
            raise HTTPError(413, "the form's fields are too large", close_connection=True)

    def part_end(self) -> None:
        self.current = None

    def end(self) -> None:
        self.ended = True

    def discard(self) -> None:
        for landing in self.landings:
            landing.discard()


def boundary_of(request: Request) -> bytes:
    _, options = parse_options_header(request.headers.get("content-type") or "")
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 70:
        raise HTTPError(400, "a multipart/form-data body needs a boundary")
    return boundary


def form_upload(writes: Writes, request: Request, decoded: str) -> Response:
    """Land every file part of the form in the folder `decoded`; all of them or none."""
    folder = decoded if decoded.endswith("/") else decoded + "/"
    if folder != "/":
        split_path(folder)  # every segment a name that may be written (400)
    boundary = boundary_of(request)
    landed: list[dict[str, Any]] = []
    with open_folder(writes.root, folder, writes.exclude, missing=404) as dir_fd:
        reader = FormReader(dir_fd, writes.max_upload)
        try:
            parser = MultipartParser(boundary, reader.callbacks())
            while data := read_request_body(request, READ_SIZE):
                try:
                    parser.write(data)
                except MultipartParseError as error:
                    raise HTTPError(400, f"a malformed form: {error}", close_connection=True) from None
            parser.finalize()
            if not reader.ended:
                raise HTTPError(400, "the form ended before its closing boundary", close_connection=True)
            if not reader.landings:
                raise HTTPError(400, "the form holds no file")
            for landing in reader.landings:
                name, size = landing.name, landing.size
                replaced = landing.commit()
                landed.append({"name": name, "size": size, "replaced": replaced})
        finally:
            reader.discard()
    if request.wants_json:
        document = {"path": display_name(folder), "files": [
            {"name": display_name(f["name"]), "href": href_of(folder, f["name"]), "size": f["size"],
             "replaced": f["replaced"]} for f in landed]}
        body = json.dumps(document).encode()
        return Response(201, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                              ("Cache-Control", "no-store")], body)
    location = href_of(folder, "", is_dir=True) if folder != "/" else "/"
    return Response(303, [("Location", location), ("Content-Length", "0")])
