"""Files under the root: GET/HEAD, validators, conditionals, ranges, precompressed siblings; a
folder is redirected to its slashed URL, served by its index page or listed (core/listing.py)."""

from __future__ import annotations

import functools
import mimetypes
import os
import secrets
import stat as stat_mod
from collections.abc import Callable
from typing import BinaryIO

from cgibox.core import conditional
from cgibox.core.compress import Compressor, choose, tagged
from cgibox.core.errors import HTTPError, refuse_method
from cgibox.core.listing import Listings
from cgibox.core.paths import (
    fs_name,
    is_within,
    open_resolved,
    refused_status,
    resolve_stat,
    safe_segments,
    stat_error_status,
)
from cgibox.core.request import Request
from cgibox.core.response import FileRegion, Response
from cgibox.core.stamped_cache import StampedCache
from cgibox.core.templates import Templates

ALLOWED_METHODS = "GET, HEAD"
# precompressed siblings, best first: (coding, file suffix)
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
# files up to this size are kept in memory and sent from there while their stat is unchanged:
# one lstat per request instead of open, fstat, read and close
SMALL_FILE_LIMIT = 64 * 1024
SMALL_FILES_CACHED = 512  # at most 32 MiB

mimetypes.add_type("text/markdown", ".md")


# a file asked for by its compressed name is sent as what it is: compressed bytes, not its inner type
COMPRESSED_TYPES = {"gzip": "application/gzip", "br": "application/x-brotli", "bzip2": "application/x-bzip2",
                    "xz": "application/x-xz", "compress": "application/x-compress"}


@functools.lru_cache(maxsize=4096)
def content_type_for(path: str) -> str:
    guessed, encoding = mimetypes.guess_type(path, strict=False)
    if encoding is not None:
        # "a.tar.gz" guesses ("application/x-tar", "gzip"): without a Content-Encoding header
        # (these bytes are the file itself), the type must be the compressed one
        return COMPRESSED_TYPES.get(encoding, "application/octet-stream")
    if guessed is None:
        return "application/octet-stream"
    if guessed.startswith("text/") or guessed in ("application/javascript", "application/json",
                                                  "application/xml", "image/svg+xml"):
        return f"{guessed}; charset=utf-8"
    return guessed


class StaticFiles:
    """Maps decoded URL paths under `root` to responses; `exclude` folders are never reachable."""

    def __init__(self, root: str, templates: Templates, exclude: tuple[str, ...] = (),
                 index_pages: tuple[str, ...] = ("index.html",),
                 content_types: dict[str, str] | None = None, readme: bool = True,
                 compressor: Compressor | None = None) -> None:
        self.root = root
        self.templates = templates
        self.exclude = exclude
        # a folder serves the first of these it holds instead of its listing
        self.index_pages = index_pages
        # extension -> Content-Type before the mimetypes table (http.server's extensions_map)
        self.content_types = content_types or {}
        # --compress-files: which files go encoded, asked before preconditions are evaluated
        self.compressor = compressor
        self.listings = Listings(root, templates, exclude, self._find, readme)
        self._sibling_cache: StampedCache[tuple[str, ...]] = StampedCache(4096)
        self._small_files: StampedCache[bytes] = StampedCache(SMALL_FILES_CACHED, ttl=None)

    # -- entry point -------------------------------------------------------------------------

    def serve(self, request: Request, decoded_path: str) -> Response:
        """Answer a request for `decoded_path`: file, redirect, index.html or listing."""
        if request.method not in ("GET", "HEAD"):
            raise refuse_method(request.method, ALLOWED_METHODS)
        real, st, direct = self._find_direct(decoded_path)
        if stat_mod.S_ISDIR(st.st_mode):
            return self.serve_directory(request, decoded_path, real, st)
        if not stat_mod.S_ISREG(st.st_mode) or decoded_path.endswith("/"):
            # a trailing slash names a folder: "/file.txt/" is not the file (nor a second URL for it)
            raise HTTPError(404)
        # a file reached without a symlink may have its answer replayed (core/ready.py)
        return self.serve_file(request, real, st, decoded_path if direct else None)

    def _find(self, decoded_path: str) -> tuple[str, os.stat_result]:
        """The confined real path and its stat; 404 when unreachable or missing, 403 when unreadable."""
        real, st, _ = self._find_direct(decoded_path)
        return real, st

    def _find_direct(self, decoded_path: str) -> tuple[str, os.stat_result, bool]:
        """_find, and whether the path was reached without a symlink (its lstat is its stat)."""
        found = resolve_stat(self.root, decoded_path, self.exclude)
        if found is None:
            raise HTTPError(404)
        real, st = found
        if st is None:  # reached through a symlink, or missing
            try:
                return real, os.stat(real), False
            except OSError as error:
                raise HTTPError(refused_status(error, real)) from None
        return real, st, True

    # -- checks for core/ready.py: would the full way answer the same now? ------------------------

    def missing_check(self, decoded_path: str | None) -> Callable[[], bool]:
        """Whether `decoded_path` is still a 404 of _find (no file, no way to it), without the
        log line a 403 writes (the full way writes it when it answers). A path without a symlink
        on the way costs one lstat a component up to the first that is missing."""
        if decoded_path is None:  # no name has it (NUL, an encoded slash): never anything else
            return _always
        segments = safe_segments(decoded_path)
        if segments is None or fs_name(decoded_path) is None:
            return _always  # resolve_stat refuses it by its spelling alone
        paths = []
        path = self.root
        for segment in segments:
            path = os.path.join(path, segment)
            paths.append(path)
        if any(is_within(path, folder) for folder in self.exclude):
            return _always  # inside a script folder, reached without a symlink: never served
        resolved = self._missing_resolved(decoded_path)
        lstat = os.lstat

        def check() -> bool:
            for path in paths:
                try:
                    st = lstat(path)
                except OSError as error:  # as resolve_stat's os.stat of that path would fail
                    return stat_error_status(error) == 404
                if stat_mod.S_ISLNK(st.st_mode):
                    return resolved()  # a symlink on the way: resolve_stat's own walk
            return False  # there: the full way decides
        return check

    def _missing_resolved(self, decoded_path: str) -> Callable[[], bool]:
        root, exclude = self.root, self.exclude

        def check() -> bool:
            found = resolve_stat(root, decoded_path, exclude)
            if found is None:
                return True
            real, st = found
            if st is not None:
                return False
            try:
                os.stat(real)
            except OSError as error:
                return stat_error_status(error) == 404
            return False
        return check

    def _file_check(self, decoded_path: str, real: str, found: os.stat_result, siblings: tuple[str, ...],
                    sent_real: str | None, sent: os.stat_result) -> Callable[[], bool]:
        """Whether the answer made from `real` (reached as `decoded_path` without a symlink, with
        these siblings; `sent_real`, the encoded sibling sent, or None: the file itself, whose
        stat is `sent`) would be made the same now. What paths.resolve_stat looks at, one lstat
        a component: each folder on the way still the same folder (inode, device: no symlink or
        other folder swapped in), the file's stamp unchanged (inode, device, size, mtime, ctime:
        a rewrite, replacement or chmod), and the sibling sent likewise. A file at the top of
        the root costs one lstat."""
        file_stamp = _validator(sent if sent_real is None else found)
        sent_stamp = _validator(sent)
        folders = []
        path = self.root
        for segment in decoded_path.split("/")[1:-1]:
            path = os.path.join(path, segment)
            try:
                st = os.lstat(path)
            except OSError:
                return _never
            folders.append((path, st.st_ino, st.st_dev))
        if os.path.join(path, decoded_path.rsplit("/", 1)[1]) != real:
            return _never
        lstat, siblings_of = os.lstat, self._siblings

        def check() -> bool:
            try:
                for folder, inode, device in folders:
                    st = lstat(folder)
                    if st.st_ino != inode or st.st_dev != device:
                        return False
                now = lstat(real)
            except OSError:
                return False
            if _validator(now) != file_stamp or siblings_of(real) != siblings:
                return False
            if sent_real is None:
                return True
            try:
                sibling = lstat(sent_real)
            except OSError:
                return False
            return stat_mod.S_ISREG(sibling.st_mode) and _validator(sibling) == sent_stamp
        return check

    # -- directories ---------------------------------------------------------------------------

    def serve_directory(self, request: Request, decoded_path: str, real: str, st: os.stat_result) -> Response:
        """Redirect to the slashed URL, serve index.html, or list the folder."""
        if not decoded_path.endswith("/"):
            return self.redirect_to_slash(request)
        for page in self.index_pages:
            try:
                index, index_st = self._find(decoded_path + page)
            except HTTPError:
                continue
            if stat_mod.S_ISREG(index_st.st_mode):
                return self.serve_file(request, index, index_st)
        return self.listing(request, decoded_path, real, st)

    @staticmethod
    def redirect_to_slash(request: Request) -> Response:
        """301 to the same path with a slash, query kept; never a scheme-relative '//' Location,
        nor a raw backslash (browsers read "/\\host" as "//host"; %5C reaches the same name)."""
        location = "/" + request.raw_path.lstrip("/").replace("\\", "%5C") + "/"
        if request.query:
            location += "?" + request.query
        return Response(301, [("Location", location), ("Content-Length", "0")], b"")

    def listing(self, request: Request, decoded_path: str, real: str, st: os.stat_result) -> Response:
        """The folder's listing (core/listing.py), rendered once per folder state."""
        return self.listings.respond(request, decoded_path, real, st)


    # -- files -----------------------------------------------------------------------------------

    def serve_file(self, request: Request, real: str, st: os.stat_result,
                   decoded_path: str | None = None) -> Response:
        """A file, or its precompressed sibling, with validators, conditionals and ranges.
        `decoded_path`: the file's URL path when it was reached without a symlink (then a
        plain answer gets the check that lets core/ready.py replay it)."""
        headers = [("Content-Type", self.content_type(real))]
        siblings = self._siblings(real)
        found_real, found_st = real, st
        if siblings:
            headers.append(("Vary", "Accept-Encoding"))
            available = tuple(coding for coding, suffix in ENCODINGS if suffix in siblings)
            coding = choose(request.headers.get("accept-encoding"), available)
            if coding != "identity":
                sibling = self._sibling(real + dict(ENCODINGS)[coding])
                if sibling is not None:
                    real, st = sibling
                    headers.append(("Content-Encoding", coding))
        ready = None
        # a sibling reached through a symlink could be retargeted unseen by one lstat
        if decoded_path is not None and (real == found_real or
                                         any(real == found_real + suffix for _, suffix in ENCODINGS)):
            sent_real = None if real == found_real else real

            def ready(sent: os.stat_result) -> Callable[[], bool]:
                return self._file_check(decoded_path, found_real, found_st, siblings, sent_real, sent)
        return self._file_response(request, real, st, headers, ready)

    def content_type(self, real: str) -> str:
        """The configured type for the file's extension (as written, then lower-cased), else
        the mimetypes table's."""
        if self.content_types:
            extension = os.path.splitext(real)[1]
            for key in (extension, extension.lower()):
                if key in self.content_types:
                    return self.content_types[key]
        return content_type_for(real)

    def _siblings(self, real: str) -> tuple[str, ...]:
        """Which of NAME.br / NAME.gz exist (checked at most every stamped_cache.LISTING_TTL seconds)."""
        found = self._sibling_cache.get(real, 0)
        if found is None:
            found = tuple(suffix for _, suffix in ENCODINGS if os.path.isfile(real + suffix))
            self._sibling_cache.put(real, 0, found)
        return found

    def _sibling(self, path: str) -> tuple[str, os.stat_result] | None:
        """A precompressed sibling, confined like any other file (it could be a symlink)."""
        try:
            real, st = self._find("/" + os.path.relpath(path, self.root))
        except HTTPError:
            return None
        return (real, st) if stat_mod.S_ISREG(st.st_mode) else None

    def _body_source(self, real: str, st: os.stat_result) -> tuple[bytes | BinaryIO, os.stat_result]:
        """The file's bytes (small files, cached while their stat is unchanged) or the open file,
        and the stat that describes what will be sent."""
        if st.st_size <= SMALL_FILE_LIMIT:
            cached = self._small_files.get(real, _validator(st))
            if cached is not None:
                return cached, st
        try:
            file, st = open_resolved(real)  # no symlink or FIFO swapped in since the lstat
        except OSError as error:
            raise HTTPError(refused_status(error, real)) from None
        try:
            if st.st_size <= SMALL_FILE_LIMIT:
                content = file.read(st.st_size + 1)
                if len(content) == st.st_size:
                    self._small_files.put(real, _validator(st), content)
                    file.close()
                    return content, st
                file.seek(0)
                st = os.fstat(file.fileno())
        except BaseException:
            file.close()
            raise
        return file, st

    def _file_response(self, request: Request, real: str, st: os.stat_result,
                       headers: list[tuple[str, str]],
                       ready: Callable[[os.stat_result], Callable[[], bool]] | None = None) -> Response:
        source, st = self._body_source(real, st)
        cleanups = [source.close] if not isinstance(source, bytes) else []
        try:
            response = self._respond_with(request, source, st, headers, cleanups)
            if ready is not None and isinstance(source, bytes) and response.status == 200:
                response.ready_check = ready(st)
            return response
        except BaseException:
            for cleanup in cleanups:
                cleanup()
            raise

    def _respond_with(self, request: Request, source: bytes | BinaryIO, st: os.stat_result,
                      headers: list[tuple[str, str]], cleanups: list[Callable[[], None]]) -> Response:
        etag = conditional.make_etag(st)
        mtime = st.st_mtime
        size = st.st_size
        headers += [("Last-Modified", conditional.http_date(mtime)), ("ETag", etag),
                    ("Accept-Ranges", "bytes")]
        range_header = request.headers.get("range")
        encoded = self._encoded(request, source, size, etag, headers)
        if encoded is not None:
            coding, data = encoded
            etag = tagged(etag, coding)
            headers[:] = [(k, v) for k, v in headers if k != "ETag"]
            headers += [("ETag", etag), ("Content-Encoding", coding)]
        # one evaluation, on the validators of the representation this client would get
        answer = conditional.evaluate(request.method, request.headers, etag, mtime)
        if answer == 412:
            raise HTTPError(412)
        if answer == 304:
            return conditional.not_modified_response(Response(200, headers, b"", cleanups=cleanups))
        if encoded is not None:
            headers.append(("Content-Length", str(len(encoded[1]))))
            return Response(200, headers, encoded[1], cleanups=cleanups)
        ranges = None
        if range_header is not None and request.method == "GET" and \
                conditional.if_range_allows(request.headers, etag, mtime):
            try:
                ranges = conditional.parse_range(range_header, size)
            except conditional.MalformedRange:
                raise HTTPError(400, "malformed Range header") from None
            except conditional.RangeNotSatisfiable:
                raise HTTPError(416, headers=[("Content-Range", f"bytes */{size}")]) from None
        if not ranges:
            headers.append(("Content-Length", str(size)))
            return Response(200, headers, _region(source, 0, size), cleanups=cleanups)
        if len(ranges) == 1:
            only = ranges[0]
            headers += [("Content-Range", only.content_range(size)), ("Content-Length", str(only.length))]
            return Response(206, headers, _region(source, only.start, only.length), cleanups=cleanups)
        return self._multipart(source, size, ranges, headers, cleanups)

    def _encoded(self, request: Request, source: bytes | BinaryIO, size: int, etag: str,
                  headers: list[tuple[str, str]]) -> tuple[str, bytes] | None:
        """With --compress-files, a text-like file's (coding, body) for this client, or None; a
        file that may go encoded varies on Accept-Encoding in every answer (304 included)."""
        if self.compressor is None or any(k == "Content-Encoding" for k, _ in headers) or \
                not self.compressor.may_encode_file(headers[0][1], size):
            return None
        if not any(k == "Vary" for k, _ in headers):
            headers.append(("Vary", "Accept-Encoding"))
        if request.headers.get("range") is not None:
            return None  # never on a Range request, even one answered in full

        def content() -> bytes | None:
            data = source if isinstance(source, bytes) else \
                b"".join(FileRegion(source, 0, size).read_chunks())
            return data if len(data) == size else None
        return self.compressor.encoded_file(request, etag, content)

    @staticmethod
    def _multipart(source: bytes | BinaryIO, size: int, ranges: list[conditional.ByteRange],
                   headers: list[tuple[str, str]], cleanups: list[Callable[[], None]]) -> Response:
        """multipart/byteranges (RFC 9110 14.6) with CRLF line ends."""
        boundary = secrets.token_hex(16)
        content_type = headers[0][1]
        parts: list[bytes | FileRegion] = []
        length = 0
        for index, byte_range in enumerate(ranges):
            head = (f"{'' if index == 0 else chr(13) + chr(10)}--{boundary}\r\n"
                    f"Content-Type: {content_type}\r\n"
                    f"Content-Range: {byte_range.content_range(size)}\r\n\r\n").encode("latin-1")
            parts += [head, _region(source, byte_range.start, byte_range.length)]
            length += len(head) + byte_range.length
        tail = f"\r\n--{boundary}--\r\n".encode("latin-1")
        parts.append(tail)
        length += len(tail)
        kept = [(k, v) for k, v in headers if k.lower() != "content-type"]
        kept += [("Content-Type", f"multipart/byteranges; boundary={boundary}"),
                 ("Content-Length", str(length))]
        return Response(206, kept, parts, cleanups=cleanups)


def _validator(st: os.stat_result) -> int:
    """A stamp that changes whenever the file is replaced, rewritten, truncated or chmod-ed."""
    return hash((st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns))


def _always() -> bool:
    return True


def _never() -> bool:
    return False


def _region(source: bytes | BinaryIO, offset: int, length: int) -> bytes | FileRegion:
    if isinstance(source, bytes):
        return source[offset:offset + length]
    return FileRegion(source, offset, length)
