"""Writes under the root: PUT, MKCOL, DELETE, MOVE and form uploads (core/upload.py), each
after the one access check; every write lands whole or not at all (core/landing.py) and is
logged. Never in a script folder, never outside the root."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable
from urllib.parse import urlsplit

from cgibox.core.accesslog import server_log
from cgibox.core.cgi import read_request_body
from cgibox.core.conditional import make_etag, precondition_holds
from cgibox.core.errors import HTTPError
from cgibox.core.landing import (
    Landing,
    href_of,
    lstat_at,
    open_folder,
    split_path,
    storage_error,
    sync_folder,
)
from cgibox.core.paths import decode_path
from cgibox.core.request import Request
from cgibox.core.response import Response

# the methods this module answers (POST only with a multipart/form-data body: core/upload.py)
WRITE_METHODS = frozenset({"PUT", "MKCOL", "DELETE", "MOVE"})
READ_SIZE = 256 * 1024

# (request, "write", decoded path) -> None, or HTTPError 401/403/405: the access rules' one check
Check = Callable[[Request, str], None]


def is_write(request: Request) -> bool:
    """The request is a write this module answers (before any rule says whether it may)."""
    if request.method in WRITE_METHODS:
        return True
    if request.method != "POST":
        return False
    content_type = (request.headers.get("content-type") or "").lower()
    return content_type.startswith("multipart/form-data")


class Writes:
    """The write methods for one root; `check` is the access rules' decision for a path."""

    def __init__(self, root: str, exclude: tuple[str, ...], max_upload: int, check: Check) -> None:
        self.root = root
        self.exclude = exclude
        self.max_upload = max_upload
        self.check = check

    def handle(self, request: Request, decoded: str | None) -> Response:
        """Answer a write (is_write(request)); `decoded` is the request's decoded path, None
        when it holds what no name may hold (NUL, an encoded slash): 400."""
        if decoded is None:
            raise HTTPError(400, "a name holding NUL, a slash or a backslash")
        self.check(request, decoded)
        if request.method == "PUT":
            response = self.put(request, decoded)
        elif request.method == "MKCOL":
            response = self.mkcol(request, decoded)
        elif request.method == "DELETE":
            response = self.delete(decoded)
        elif request.method == "MOVE":
            response = self.move(request, decoded)
        else:
            from cgibox.core.upload import form_upload  # the multipart parser, on the first upload

            response = form_upload(self, request, decoded)
        extra = f" -> {request.headers.get('destination')!r}" if request.method == "MOVE" else ""
        self.log(request, decoded, response.status, extra)
        return response

    @staticmethod
    def log(request: Request, decoded: str, status: int, extra: str = "") -> None:
        """One server log line per write that landed (the access log has every attempt)."""
        who = request.remote_user or "anonymous"
        server_log(f"cgibox: write {request.method} {decoded!r}{extra} by {who} from "
                   f"{request.remote_addr}: {status}")

    # -- PUT -----------------------------------------------------------------------------------

    def put(self, request: Request, decoded: str) -> Response:
        """201 new, 204 replaced; 412 for a failed If-Match / If-None-Match, 409 without a parent
        folder or onto a folder, 413 past --max-upload (at once when the length says so)."""
        if decoded.endswith("/"):
            raise HTTPError(409, "a folder cannot be written with PUT")
        if "content-range" in request.headers:  # a partial PUT would be taken for the whole file
            raise HTTPError(400, "PUT with Content-Range is not supported (RFC 9110 14.5)")
        folder, name = split_path(decoded)
        if request.body_length is not None and request.body_length > self.max_upload:
            raise HTTPError(413, f"the file is larger than {self.max_upload} bytes (--max-upload)",
                            close_connection=True)
        with open_folder(self.root, folder, self.exclude) as dir_fd:
            existing = lstat_at(dir_fd, name)
            only_if_absent = self.preconditions(request, existing)
            landing = Landing(dir_fd, name, self.max_upload)
            try:
                self.copy_body(request, landing)
                replaced = landing.commit(only_if_absent)
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            finally:
                landing.discard()
        headers = [("ETag", make_etag(st)), ("Content-Length", "0")]
        if replaced:
            return Response(204, headers)
        return Response(201, [("Location", href_of(folder, name)), *headers])

    @staticmethod
    def preconditions(request: Request, existing: os.stat_result | None) -> bool:
        """RFC 9110 13.1 for a PUT (412 when one fails); True when the name must still be absent
        when the file lands (If-None-Match: *, decided again atomically then)."""
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            raise HTTPError(409, "a folder has that name")
        if_none_match = request.headers.get("if-none-match")
        if_match = request.headers.get("if-match")
        if existing is None:
            if if_match is not None:
                raise HTTPError(412, "no file to match (If-Match)")
            return if_none_match is not None and if_none_match.strip() == "*"
        etag = make_etag(existing)
        if not precondition_holds(request.headers, etag, existing.st_mtime):
            raise HTTPError(412, "the file changed (If-Match / If-Unmodified-Since)")
        if if_none_match is not None:
            tags = [tag.strip() for tag in if_none_match.split(",")]
            if "*" in tags or etag in tags or any(tag.removeprefix("W/") == etag for tag in tags):
                raise HTTPError(412, "the name exists (If-None-Match)")
        return False

    def copy_body(self, request: Request, landing: Landing) -> None:
        """The request body into `landing`, READ_SIZE at a time (never the whole file in memory).
        A body shorter than its Content-Length is a client gone (some fronts' streams just end):
        400, and nothing lands."""
        while data := read_request_body(request, READ_SIZE):
            landing.write(data)
        if request.body_length is not None and landing.size != request.body_length:
            raise HTTPError(400, "the request body ended early", close_connection=True)

    # -- MKCOL, DELETE, MOVE ---------------------------------------------------------------------

    def mkcol(self, request: Request, decoded: str) -> Response:
        """201; 405 when the name exists, 409 without a parent, 415 with a body (RFC 4918 9.3)."""
        if request.body_length is None or request.body_length > 0:
            raise HTTPError(415, "MKCOL takes no body", close_connection=True)
        folder, name = split_path(decoded)
        with open_folder(self.root, folder, self.exclude) as dir_fd:
            try:
                os.mkdir(name, 0o755, dir_fd=dir_fd)
            except FileExistsError:
                raise HTTPError(405, "the name exists", headers=[("Allow", ALLOW_EXISTING)]) from None
            except OSError as error:
                raise storage_error(error) from None
            sync_folder(dir_fd)
        return Response(201, [("Location", href_of(folder, name, is_dir=True)), ("Content-Length", "0")])

    def delete(self, decoded: str) -> Response:
        """204; a folder goes with everything in it, a link goes itself (never what it names)."""
        folder, name = split_path(decoded)
        with open_folder(self.root, folder, self.exclude, missing=404) as dir_fd:
            existing = lstat_at(dir_fd, name)
            if existing is None:
                raise HTTPError(404)
            try:
                remove_at(dir_fd, name, existing)
            except OSError as error:
                raise storage_error(error) from None
            sync_folder(dir_fd)
        return Response(204, [("Content-Length", "0")])

    def move(self, request: Request, decoded: str) -> Response:
        """MOVE to `Destination` (RFC 4918 9.9): 201 new, 204 replaced; 412 with Overwrite: F on
        an existing name, 409 without the destination's folder or into itself, 403 onto itself."""
        destination = self.destination(request)
        self.check(request, destination)  # the destination is written too
        source_folder, source_name = split_path(decoded)
        target_folder, target_name = split_path(destination)
        source_path = source_folder + source_name
        target_path = target_folder + target_name
        if target_path == source_path:
            raise HTTPError(403, "the source and the destination are the same")
        if target_path.startswith(source_path + "/"):
            raise HTTPError(409, "a folder cannot move into itself")
        overwrite = (request.headers.get("overwrite") or "T").strip().upper() != "F"
        with open_folder(self.root, source_folder, self.exclude, missing=404) as source_fd, \
                open_folder(self.root, target_folder, self.exclude) as target_fd:
            source = lstat_at(source_fd, source_name)
            if source is None:
                raise HTTPError(404)
            existing = lstat_at(target_fd, target_name)
            if existing is not None and not overwrite:
                raise HTTPError(412, "the destination exists (Overwrite: F)")
            try:
                if existing is not None and (stat.S_ISDIR(existing.st_mode) or stat.S_ISDIR(source.st_mode)):
                    remove_at(target_fd, target_name, existing)  # RFC 4918 9.9.3: delete, then move
                os.replace(source_name, target_name, src_dir_fd=source_fd, dst_dir_fd=target_fd)
            except OSError as error:
                if error.errno == errno.EXDEV:
                    raise HTTPError(409, "the destination is on another file system") from None
                raise storage_error(error) from None
            sync_folder(target_fd)
            if source_fd != target_fd:
                sync_folder(source_fd)
        headers = [("Content-Length", "0")]
        if existing is not None:
            return Response(204, headers)
        href = href_of(target_folder, target_name, is_dir=stat.S_ISDIR(source.st_mode))
        return Response(201, [("Location", href), *headers])

    @staticmethod
    def destination(request: Request) -> str:
        """The decoded path of the Destination header (an absolute URL or path on this server)."""
        value = request.headers.get("destination")
        if not value:
            raise HTTPError(400, "MOVE needs a Destination")
        parts = urlsplit(value.strip())
        host = request.headers.get("host")
        if parts.netloc and host is not None and parts.netloc.lower() != host.lower():
            raise HTTPError(502, "the destination is on another server")
        decoded = decode_path(parts.path)
        if not parts.path.startswith("/") or decoded is None:
            raise HTTPError(400, "a Destination holding NUL, a slash or a backslash in a name")
        split_path(decoded)  # every segment a name that may be written (400)
        return decoded


# what a name that exists allows (MKCOL onto it is 405)
ALLOW_EXISTING = "GET, HEAD, PUT, DELETE, MOVE"


def remove_at(dir_fd: int, name: str, existing: os.stat_result) -> None:
    """Remove `name` in the folder: a folder with all it holds (shutil.rmtree with dir_fd never
    follows a link out), anything else by unlinking it."""
    if stat.S_ISDIR(existing.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)
