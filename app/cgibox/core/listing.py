"""Folder listings: the entries (hidden and unreachable names left out), natural order and
sorting, icon kinds, counts, the README below, breadcrumbs; HTML through listing.html (PAGE_ROWS
rows a page, `?page=N`) or JSON (every entry), rendered once per folder state. Its caches (scans,
sort orders, rendered pages) are bounded in bytes (LISTING_CACHE_BYTES in all), so a folder of
100,000 entries costs a bounded amount of memory however many orders and pages are asked for.
core/static.py decides when a folder gets one."""

from __future__ import annotations

import functools
import itertools
import json
import mimetypes
import os
import re
import stat as stat_mod
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from cgibox.core.durations import LISTING
from cgibox.core.errors import HTTPError
from cgibox.core.paths import display_name, refused_status, resolve, url_segment
from cgibox.core.readme import Readme, Readmes
from cgibox.core.request import Request
from cgibox.core.response import Response
from cgibox.core.stamped_cache import LISTING_TTL, StampedCache
from cgibox.core.templates import Templates

SORT_KEYS = ("name", "size", "mtime")
# rows of one HTML page: a 100,000-entry folder is 100 pages of ~130 KB (~12 KB with gzip), each
# rendered in milliseconds, instead of one 11 MB page that took seconds to render and to show
PAGE_ROWS = 1000
# the memory the listings of one process may keep, by what they hold (weights are estimates of
# Python's object sizes: a scanned entry ~200 bytes plus its name, a sorted order 8 bytes a row,
# a rendered page its bytes); core/compress.py keeps a page's encoded forms within its own bound
SCANS_BYTES = 32 * 1024 * 1024
ORDERS_BYTES = 8 * 1024 * 1024
RENDERED_BYTES = 24 * 1024 * 1024
LISTING_CACHE_BYTES = SCANS_BYTES + ORDERS_BYTES + RENDERED_BYTES
ENTRY_BYTES = 200
mimetypes.add_type("text/markdown", ".md")  # a README.md is text (static.py serves it so too)

# a listing's icons, one <symbol> per kind (templates/icons.html): kind -> symbol id
KIND_SYMBOLS = {"folder": "d", "text": "t", "image": "i", "archive": "a", "media": "m", "code": "c",
                "other": "o"}
ARCHIVE_SUFFIXES = frozenset(".zip .tar .gz .tgz .bz2 .tbz2 .xz .txz .zst .7z .rar .deb .rpm .jar .whl"
                             " .apk .iso .dmg .cab .lz .lzma .z".split())
CODE_SUFFIXES = frozenset(".py .js .mjs .ts .tsx .jsx .c .h .cc .cpp .hpp .rs .go .java .kt .rb .php .pl"
                          " .sh .bash .zsh .ps1 .lua .swift .cs .scala .sql .html .htm .css .scss .json"
                          " .xml .yaml .yml .toml .ini .cfg .conf .mk .cmake .gradle .vue .svelte".split())
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[str | int, ...], str]:
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


_SCAN_SERIALS = itertools.count()
# a big folder's scan is kept for this many times what it took, when that is more than LISTING_TTL
SCAN_TTL_FACTOR = 10


@dataclass(slots=True)
class ListingEntry:
    name: str
    is_dir: bool
    size: int
    mtime: float


@dataclass(slots=True)
class Scan:
    """A folder's visible entries as one scan found them: numbered, and valid until `expires`."""

    entries: list[ListingEntry]
    serial: int
    expires: float


class Listings:
    """The listings of the folders under `root`; `find` is the static files' confinement (a
    decoded path -> real path and stat, HTTPError when unreachable), for the README."""

    def __init__(self, root: str, templates: Templates, exclude: tuple[str, ...],
                 find: Callable[[str], tuple[str, os.stat_result]], readme: bool = True) -> None:
        self.root = root
        self.templates = templates
        self.exclude = exclude
        self._find = find
        self.readmes = Readmes() if readme else None
        self._scans: StampedCache[Scan] = StampedCache(ttl=None, max_bytes=SCANS_BYTES)
        # a folder's entries in one order, stamped with the serial of the scan they were sorted from
        self._orders: StampedCache[list[ListingEntry]] = StampedCache(ttl=None, max_bytes=ORDERS_BYTES)
        self._rendered: StampedCache[tuple[str, bytes]] = StampedCache(max_bytes=RENDERED_BYTES)

    def respond(self, request: Request, decoded_path: str, real: str, st: os.stat_result) -> Response:
        """The folder's entries as HTML (sortable) or JSON, rendered once per folder state."""
        sort = request.query_param("sort") or "name"
        order = request.query_param("order") or "asc"
        if sort not in SORT_KEYS:
            sort = "name"
        if order not in ("asc", "desc"):
            order = "asc"
        page_asked = request.query_param("page") or "1"
        page = int(page_asked) if page_asked.isdecimal() and 0 < len(page_asked) < 10 else 1
        as_json = request.wants_json
        # keyed on what the page depends on, not the raw query: "?x=1", "?x=2"... would each
        # render the folder again and push other folders out of the cache
        target = "" if as_json or not self.templates.uses("listing.html", "target") else \
            unquote(request.target, errors="replace")
        scan = self._scans.peek(real)
        if scan is not None:  # pages past the last are the last: one cache entry, not one per number
            page = min(page, max(1, -(-len(scan.entries) // PAGE_ROWS)))
        key = (real, decoded_path, sort, order, as_json, target, 0 if as_json else page)
        rendered = self._rendered.get(key, st.st_mtime_ns)
        if rendered is None:
            rendered = self._render_listing(decoded_path, real, st, sort, order, as_json, target, page)
            self._rendered.put(key, st.st_mtime_ns, rendered, len(rendered[1]))
        content_type, body = rendered
        return Response(200, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                              ("Cache-Control", "no-cache")], body, route_kind=LISTING,
                            compress="page", compress_key=key)

    def _render_listing(self, decoded_path: str, real: str, st: os.stat_result, sort: str, order: str,
                        as_json: bool, target: str = "", page: int = 1) -> tuple[str, bytes]:
        """The page; `target` is the URL asked for, decoded for display (query included)."""
        scanned = self._entries(real, st)
        entries = self._ordered(real, scanned, sort, order == "desc")
        if as_json:
            document = {
                "path": display_name(decoded_path),
                # "name" is for display (bytes no UTF-8 spells are escaped); "href" reaches the entry
                "entries": [{"name": display_name(e.name), "type": "dir" if e.is_dir else "file",
                             "size": e.size, "mtime": int(e.mtime),
                             "href": url_segment(e.name) + ("/" if e.is_dir else "")} for e in entries],
            }
            return "application/json", json.dumps(document).encode()
        pages = max(1, -(-len(entries) // PAGE_ROWS))
        page = min(max(page, 1), pages)
        start = (page - 1) * PAGE_ROWS
        rows = [self._row(e) for e in entries[start:start + PAGE_ROWS]]
        body = self.templates.render(
            "listing.html", path=display_name(decoded_path), breadcrumbs=self._breadcrumbs(decoded_path),
            entries=rows, sort=sort, order=order, parent=None if decoded_path == "/" else "../",
            target=target,
            kinds={row["kind"] for row in rows} | ({"u"} if decoded_path != "/" else set()),
            summary=self._summary(scanned), readme=self._readme(decoded_path, scanned),
            pager=self._pager(page, pages, start, len(rows), len(entries), sort, order),
        ).encode("utf-8")
        return "text/html; charset=utf-8", body

    @staticmethod
    def _pager(page: int, pages: int, start: int, shown: int, total: int, sort: str,
               order: str) -> dict[str, object] | None:
        """Where this page sits among the folder's pages, and the links to its neighbours (None:
        the folder fits on one page)."""
        if pages == 1:
            return None

        def href(number: int) -> str:
            return f"?sort={sort}&order={order}&page={number}"
        return {"page": page, "pages": pages, "first": start + 1, "last": start + shown, "total": total,
                "previous": href(page - 1) if page > 1 else None,
                "next": href(page + 1) if page < pages else None,
                "first_href": href(1), "last_href": href(pages)}

    def _ordered(self, real: str, scanned: list[ListingEntry], sort: str,
                 descending: bool) -> list[ListingEntry]:
        """The scan in one order, sorted once per scan (a new scan is sorted again): names in
        natural order once, every other order from that one (stable sorts by size or time)."""
        scan = self._scans.peek(real)
        if scan is None or scan.entries is not scanned:
            return self._sorted(scanned, sort, descending)  # a scan no longer cached: sorted, not kept
        key = (real, sort, descending)
        cached = self._orders.get(key, scan.serial)
        if cached is not None:
            return cached
        if sort == "name" and not descending:
            ordered = self._sorted(scanned, sort, descending)
        else:
            by_name = self._ordered(real, scanned, "name", False)
            ordered = self._sorted_from(by_name[::-1] if descending else list(by_name), sort, descending)
        self._orders.put(key, scan.serial, ordered, 8 * len(ordered) + 64)
        return ordered

    def _row(self, entry: ListingEntry) -> dict[str, object]:
        """An entry as a listing row: _view's fields, the icon's symbol and a short UTC time
        (the page's script shows it in the reader's own time zone, the exact time as a tooltip)."""
        row = self._view(entry)
        row["kind"] = KIND_SYMBOLS["folder" if entry.is_dir else file_kind(entry.name)]
        row["when"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime(entry.mtime))
        return row

    @staticmethod
    def _summary(entries: list[ListingEntry]) -> dict[str, int]:
        files = [e for e in entries if not e.is_dir]
        return {"folders": len(entries) - len(files), "files": len(files),
                "bytes": sum(e.size for e in files)}

    def _readme(self, decoded_path: str, entries: list[ListingEntry]) -> Readme | None:
        """The folder's README.md or README.txt, rendered (None when there is none, or --no-readme)."""
        if self.readmes is None:
            return None
        names = {e.name.lower(): e.name for e in entries if not e.is_dir and e.name[:6].lower() == "readme"}
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
        """The folder's visible entries, cached by the folder's mtime and for at most LISTING_TTL,
        or SCAN_TTL_FACTOR times what the scan took when that is longer (a file growing in place
        changes no folder's mtime; a folder of 100,000 entries is not scanned again every 2 s)."""
        cached = self._scans.get(real, st.st_mtime_ns)
        if cached is not None and time.monotonic() < cached.expires:
            return cached.entries
        started = time.monotonic()
        entries = []
        try:
            with os.scandir(real) as scan:
                for item in scan:
                    entry = self._entry(real, item)
                    if entry is not None:
                        entries.append(entry)
        except OSError as error:  # unreadable, or gone since its stat: what a file would answer
            raise HTTPError(refused_status(error, real)) from None
        now = time.monotonic()
        found = Scan(entries, next(_SCAN_SERIALS), now + max(LISTING_TTL, SCAN_TTL_FACTOR * (now - started)))
        self._scans.put(real, st.st_mtime_ns, found, sum(ENTRY_BYTES + len(e.name) for e in entries))
        return entries

    def _entry(self, folder: str, item: os.DirEntry[str]) -> ListingEntry | None:
        if item.name.startswith("."):
            return None  # hidden
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

    @classmethod
    def _sorted(cls, entries: list[ListingEntry], sort: str, descending: bool) -> list[ListingEntry]:
        """Folders first, then by the chosen column; names break ties."""
        by_name = sorted(entries, key=lambda e: natural_key(e.name), reverse=descending)
        return cls._sorted_from(by_name, sort, descending)

    @staticmethod
    def _sorted_from(by_name: list[ListingEntry], sort: str, descending: bool) -> list[ListingEntry]:
        """`by_name` (already in name order, that direction) sorted in place by the chosen column,
        folders first; the sorts are stable, so names break ties."""
        if sort == "size":
            by_name.sort(key=lambda e: e.size, reverse=descending)
        elif sort == "mtime":
            by_name.sort(key=lambda e: e.mtime, reverse=descending)
        by_name.sort(key=lambda e: not e.is_dir)
        return by_name

    @staticmethod
    def _view(entry: ListingEntry) -> dict[str, object]:
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
