"""Files and directory listings under the root: GET/HEAD, validators, ranges, precompressed siblings."""

from __future__ import annotations

import functools
import json
import mimetypes
import os
import re
import secrets
import stat as stat_mod
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import BinaryIO, Generic, TypeVar
from urllib.parse import unquote

from cgibox.core import conditional
from cgibox.core.durations import LISTING
from cgibox.core.errors import HTTPError, refuse_method
from cgibox.core.paths import (
    display_name,
    open_resolved,
    resolve,
    resolve_stat,
    stat_error_status,
    url_segment,
)
from cgibox.core.readme import Readmes
from cgibox.core.request import Request
from cgibox.core.response import FileRegion, Response
from cgibox.core.templates import Templates

ALLOWED_METHODS = "GET, HEAD"
# headers a 304 may carry (RFC 9110 15.4.5; starlette's NotModifiedResponse)
NOT_MODIFIED_HEADERS = frozenset({"cache-control", "content-location", "date", "etag", "expires", "vary"})
# precompressed siblings, best first: (coding, file suffix)
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
# a listing is rebuilt when its folder's mtime changes, and at the latest after this many seconds
# (a file growing in place changes its size but not the folder's mtime)
LISTING_TTL = 2.0
SORT_KEYS = ("name", "size", "mtime")
# files up to this size are kept in memory and sent from there while their stat is unchanged:
# one lstat per request instead of open, fstat, read and close
SMALL_FILE_LIMIT = 64 * 1024
SMALL_FILES_CACHED = 512  # at most 32 MiB

mimetypes.add_type("text/markdown", ".md")
T = TypeVar("T")

# a listing's icons, one <symbol> per kind (templates/icons.html): kind -> symbol id
KIND_SYMBOLS = {"folder": "d", "text": "t", "image": "i", "archive": "a", "media": "m", "code": "c",
                "other": "o"}
ARCHIVE_SUFFIXES = frozenset(".zip .tar .gz .tgz .bz2 .tbz2 .xz .txz .zst .7z .rar .deb .rpm .jar .whl"
                             " .apk .iso .dmg .cab .lz .lzma .z".split())
CODE_SUFFIXES = frozenset(".py .js .mjs .ts .tsx .jsx .c .h .cc .cpp .hpp .rs .go .java .kt .rb .php .pl"
                          " .sh .bash .zsh .ps1 .lua .swift .cs .scala .sql .html .htm .css .scss .json"
                          " .xml .yaml .yml .toml .ini .cfg .conf .mk .cmake .gradle .vue .svelte".split())
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Names in the order people count: "n2" before "n10", case folded; the exact name breaks ties."""
    parts = _DIGITS.split(name.casefold())
    # split() alternates text and digit runs, so the tuples always compare str with str, int with int
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts)), name


@functools.lru_cache(maxsize=4096)
def file_kind(name: str) -> str:
    """Which icon a file gets: text, image, archive, media (audio and video), code or other."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in ARCHIVE_SUFFIXES:
        return "archive"
    if suffix in CODE_SUFFIXES or name in ("Makefile", "Dockerfile"):
        return "code"
    guessed = mimetypes.guess_type(name, strict=False)[0] or ""
    major = guessed.partition("/")[0]
    if major == "image":
        return "image"
    if major in ("audio", "video"):
        return "media"
    if major == "text" or guessed in ("application/pdf", "application/rtf") or not suffix and \
            name.isupper():  # README, LICENSE, NOTICE
        return "text"
    return "other"


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


def accepted_codings(header: str | None) -> set[str]:
    """Content codings the client accepts with q > 0 (RFC 9110 12.5.3); "*" stands for every
    coding the header does not name, so it admits the precompressed ones not refused by name."""
    if not header:
        return set()
    accepted = set()
    named = set()
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        coding = coding.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        named.add(coding)
        if coding and quality > 0:
            accepted.add(coding)
    if "*" in accepted:
        accepted |= {coding for coding, _ in ENCODINGS if coding not in named}
    return accepted


class StampedCache(Generic[T]):
    """A small cache of values that stay valid while their stamp is unchanged, and at most `ttl`
    seconds (listings: a file growing in place changes no folder's mtime); the oldest entry
    goes first when it is full."""

    def __init__(self, size: int = 256, ttl: float | None = LISTING_TTL) -> None:
        self.size = size
        self.ttl = ttl
        self._items: OrderedDict[Hashable, tuple[float, int, T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, stamp: int) -> T | None:
        # no lock: a dict lookup is atomic, and every request of every thread passes here;
        # eviction is therefore by age of insertion rather than of use
        item = self._items.get(key)
        if item is None or item[1] != stamp:
            return None
        if self.ttl is not None and time.monotonic() - item[0] >= self.ttl:
            return None
        return item[2]

    def put(self, key: Hashable, stamp: int, value: T) -> None:
        with self._lock:
            self._items.pop(key, None)  # re-inserted: now the newest
            self._items[key] = (time.monotonic(), stamp, value)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


@dataclass(slots=True)
class ListingEntry:
    name: str
    is_dir: bool
    size: int
    mtime: float


class StaticFiles:
    """Maps decoded URL paths under `root` to responses; `exclude` folders are never reachable."""

    def __init__(self, root: str, templates: Templates, exclude: tuple[str, ...] = (),
                 index_pages: tuple[str, ...] = ("index.html",),
                 content_types: dict[str, str] | None = None, readme: bool = True) -> None:
        self.root = root
        self.templates = templates
        self.exclude = exclude
        # a folder serves the first of these it holds instead of its listing
        self.index_pages = index_pages
        # extension -> Content-Type before the mimetypes table (http.server's extensions_map)
        self.content_types = content_types or {}
        self.readmes = Readmes() if readme else None
        self._scans: StampedCache[list[ListingEntry]] = StampedCache()
        self._sibling_cache: StampedCache[tuple[str, ...]] = StampedCache(4096)
        self._small_files: StampedCache[bytes] = StampedCache(SMALL_FILES_CACHED, ttl=None)
        self._rendered: StampedCache[tuple[str, bytes]] = StampedCache()

    # -- entry point -------------------------------------------------------------------------

    def serve(self, request: Request, decoded_path: str) -> Response:
        """Answer a request for `decoded_path`: file, redirect, index.html or listing."""
        if request.method not in ("GET", "HEAD"):
            raise refuse_method(request.method, ALLOWED_METHODS)
        real, st = self._find(decoded_path)
        if stat_mod.S_ISDIR(st.st_mode):
            return self.serve_directory(request, decoded_path, real, st)
        if not stat_mod.S_ISREG(st.st_mode) or decoded_path.endswith("/"):
            # a trailing slash names a folder: "/file.txt/" is not the file (nor a second URL for it)
            raise HTTPError(404)
        return self.serve_file(request, real, st)

    def _find(self, decoded_path: str) -> tuple[str, os.stat_result]:
        """The confined real path and its stat; 404 when unreachable or missing, 403 when unreadable."""
        found = resolve_stat(self.root, decoded_path, self.exclude)
        if found is None:
            raise HTTPError(404)
        real, st = found
        if st is None:  # reached through a symlink, or missing
            try:
                st = os.stat(real)
            except OSError as error:
                raise HTTPError(stat_error_status(error)) from None
        return real, st

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
        """301 to the same path with a slash, query kept; never a scheme-relative '//' Location."""
        location = "/" + request.raw_path.lstrip("/") + "/"
        if request.query:
            location += "?" + request.query
        return Response(301, [("Location", location), ("Content-Length", "0")], b"")

    def listing(self, request: Request, decoded_path: str, real: str, st: os.stat_result) -> Response:
        """The folder's entries as HTML (sortable) or JSON, rendered once per folder state."""
        sort = request.query_param("sort") or "name"
        order = request.query_param("order") or "asc"
        if sort not in SORT_KEYS:
            sort = "name"
        if order not in ("asc", "desc"):
            order = "asc"
        as_json = request.wants_json
        # keyed on what the page depends on, not the raw query: "?x=1", "?x=2"... would each
        # render the folder again and push other folders out of the cache
        target = "" if as_json or not self.templates.uses("listing.html", "target") else \
            unquote(request.target, errors="replace")
        key = (real, decoded_path, sort, order, as_json, target)
        rendered = self._rendered.get(key, st.st_mtime_ns)
        if rendered is None:
            rendered = self._render_listing(decoded_path, real, st, sort, order, as_json, target)
            self._rendered.put(key, st.st_mtime_ns, rendered)
        content_type, body = rendered
        return Response(200, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                              ("Cache-Control", "no-cache")], body, route_kind=LISTING,
                            compress="page", compress_key=key)

    def _render_listing(self, decoded_path: str, real: str, st: os.stat_result, sort: str, order: str,
                        as_json: bool, target: str = "") -> tuple[str, bytes]:
        """The page; `target` is the URL asked for, decoded for display (query included)."""
        entries = self._sorted(self._entries(real, st), sort, order == "desc")
        if as_json:
            document = {
                "path": display_name(decoded_path),
                # "name" is for display (bytes no UTF-8 spells are escaped); "href" reaches the entry
                "entries": [{"name": display_name(e.name), "type": "dir" if e.is_dir else "file",
                             "size": e.size, "mtime": int(e.mtime),
                             "href": url_segment(e.name) + ("/" if e.is_dir else "")} for e in entries],
            }
            return "application/json", json.dumps(document).encode()
        rows = [self._row(e) for e in entries]
        body = self.templates.render(
            "listing.html", path=display_name(decoded_path), breadcrumbs=self._breadcrumbs(decoded_path),
            entries=rows, sort=sort, order=order, parent=None if decoded_path == "/" else "../",
            target=target,
            kinds={row["kind"] for row in rows} | ({"u"} if decoded_path != "/" else set()),
            summary=self._summary(entries), readme=self._readme(decoded_path, entries),
        ).encode("utf-8")
        return "text/html; charset=utf-8", body

    def _row(self, entry: ListingEntry) -> dict:
        """An entry as a listing row: _view's fields, the icon's symbol and a short UTC time
        (the page's script shows it in the reader's own time zone, the exact time as a tooltip)."""
        row = self._view(entry)
        row["kind"] = KIND_SYMBOLS["folder" if entry.is_dir else file_kind(entry.name)]
        row["when"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime(entry.mtime))
        return row

    @staticmethod
    def _summary(entries: list[ListingEntry]) -> dict:
        files = [e for e in entries if not e.is_dir]
        return {"folders": len(entries) - len(files), "files": len(files),
                "bytes": sum(e.size for e in files)}

    def _readme(self, decoded_path: str, entries: list[ListingEntry]):
        """The folder's README.md or README.txt, rendered (None when there is none, or --no-readme)."""
        if self.readmes is None:
            return None
        names = {e.name.lower(): e.name for e in entries if not e.is_dir}
        for wanted in self.readmes.NAMES:
            name = names.get(wanted)
            if name is None:
                continue
            try:  # confined like any file: a README that is a symlink out of the root is not shown
                real, st = self._find(decoded_path + name)
            except HTTPError:
                continue
            if stat_mod.S_ISREG(st.st_mode):
                return self.readmes.render(real, name, st)
        return None

    def _entries(self, real: str, st: os.stat_result) -> list[ListingEntry]:
        """The folder's visible entries, cached by the folder's mtime (and at most LISTING_TTL)."""
        entries = self._scans.get(real, st.st_mtime_ns)
        if entries is not None:
            return entries
        entries = []
        try:
            with os.scandir(real) as scan:
                for item in scan:
                    entry = self._entry(real, item)
                    if entry is not None:
                        entries.append(entry)
        except OSError as error:  # unreadable, or gone since its stat: what a file would answer
            raise HTTPError(stat_error_status(error)) from None
        self._scans.put(real, st.st_mtime_ns, entries)
        return entries

    def _entry(self, folder: str, item: os.DirEntry) -> ListingEntry | None:
        if item.name.startswith(".") or "\\" in item.name:
            return None  # hidden; or a name no URL reaches ("\\" is refused in every path)
        path = os.path.join(folder, item.name)
        try:
            if item.is_symlink():
                # a link leading outside the root is not served, so it is not listed either
                target = os.path.realpath(path)
                rel = "/" + os.path.relpath(target, self.root) if target.startswith(self.root) else None
                if rel is None or resolve(self.root, rel, self.exclude) is None:
                    return None
            if any(path == ex or path.startswith(ex + os.sep) for ex in self.exclude):
                return None
            st = item.stat()
        except OSError:
            return None
        is_dir = stat_mod.S_ISDIR(st.st_mode)
        return ListingEntry(item.name, is_dir, 0 if is_dir else st.st_size, st.st_mtime)

    @staticmethod
    def _sorted(entries: list[ListingEntry], sort: str, descending: bool) -> list[ListingEntry]:
        """Folders first, then by the chosen column; names break ties."""
        by_name = sorted(entries, key=lambda e: natural_key(e.name), reverse=descending)
        if sort == "size":
            by_name.sort(key=lambda e: e.size, reverse=descending)
        elif sort == "mtime":
            by_name.sort(key=lambda e: e.mtime, reverse=descending)
        by_name.sort(key=lambda e: not e.is_dir)
        return by_name

    @staticmethod
    def _view(entry: ListingEntry) -> dict:
        """An entry as the template shows it: the href spells the name's raw bytes (a name that
        is not UTF-8 included), the shown name escapes what cannot be displayed."""
        href = url_segment(entry.name) + ("/" if entry.is_dir else "")
        return {
            "name": display_name(entry.name), "href": href, "is_dir": entry.is_dir, "size": entry.size,
            "mtime": time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.mtime)),
            "mtime_iso": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(entry.mtime)),
        }

    @staticmethod
    def _breadcrumbs(decoded_path: str) -> list[tuple[str, str]]:
        crumbs = [("/", "/")]
        href = "/"
        for segment in [s for s in decoded_path.split("/") if s]:
            href += url_segment(segment) + "/"
            crumbs.append((display_name(segment), href))
        return crumbs

    # -- files -----------------------------------------------------------------------------------

    def serve_file(self, request: Request, real: str, st: os.stat_result) -> Response:
        """A file, or its precompressed sibling, with validators, conditionals and ranges."""
        headers = [("Content-Type", self.content_type(real))]
        siblings = self._siblings(real)
        if siblings:
            headers.append(("Vary", "Accept-Encoding"))
            accepted = accepted_codings(request.headers.get("accept-encoding"))
            for coding, suffix in ENCODINGS:
                if suffix in siblings and coding in accepted:
                    sibling = self._sibling(real + suffix)
                    if sibling is not None:
                        real, st = sibling
                        headers.append(("Content-Encoding", coding))
                        break
        return self._file_response(request, real, st, headers)

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
        """Which of NAME.br / NAME.gz exist (checked at most every LISTING_TTL seconds)."""
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
            raise HTTPError(stat_error_status(error)) from None
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
                       headers: list[tuple[str, str]]) -> Response:
        source, st = self._body_source(real, st)
        cleanups = [source.close] if not isinstance(source, bytes) else []
        try:
            return self._respond_with(request, source, st, headers, cleanups)
        except BaseException:
            for cleanup in cleanups:
                cleanup()
            raise

    def _respond_with(self, request: Request, source: bytes | BinaryIO, st: os.stat_result,
                      headers: list[tuple[str, str]], cleanups: list) -> Response:
        etag = conditional.make_etag(st)
        mtime = st.st_mtime
        size = st.st_size
        headers += [("Last-Modified", conditional.http_date(mtime)), ("ETag", etag),
                    ("Accept-Ranges", "bytes")]
        if not conditional.precondition_holds(request.headers, etag, mtime):
            raise HTTPError(412)
        if conditional.not_modified(request.headers, etag, mtime):
            for cleanup in cleanups:
                cleanup()
            kept = [(k, v) for k, v in headers if k.lower() in NOT_MODIFIED_HEADERS]
            return Response(304, kept, b"")
        ranges = None
        range_header = request.headers.get("range")
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
            return Response(200, headers, _region(source, 0, size), cleanups=cleanups, compress="file")
        if len(ranges) == 1:
            only = ranges[0]
            headers += [("Content-Range", only.content_range(size)), ("Content-Length", str(only.length))]
            return Response(206, headers, _region(source, only.start, only.length), cleanups=cleanups)
        return self._multipart(source, size, ranges, headers, cleanups)

    @staticmethod
    def _multipart(source: bytes | BinaryIO, size: int, ranges: list[conditional.ByteRange],
                   headers: list[tuple[str, str]], cleanups: list) -> Response:
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


def _region(source: bytes | BinaryIO, offset: int, length: int) -> bytes | FileRegion:
    if isinstance(source, bytes):
        return source[offset:offset + length]
    return FileRegion(source, offset, length)
