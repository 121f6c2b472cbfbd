"""Folders as archives: `GET /folder/?download=zip` (or `tar`) streams the folder and everything
below it as entries are read (zipstream-ng for zip, ZIP64 past 4 GiB; tar headers from the
standard library), in constant memory whatever the size. The listing's rules apply: hidden
names, links that leave the root and script folders are left out."""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote

from cgibox.core.errors import HTTPError
from cgibox.core.paths import display_name, is_within, open_resolved, resolve
from cgibox.core.request import Request
from cgibox.core.response import Response

FORMATS = {"zip": "application/zip", "tar": "application/x-tar"}
# bytes gathered before a chunk goes out: a zip of many small files is many small pieces
CHUNK = 256 * 1024
READ_SIZE = 256 * 1024


@dataclass(slots=True)
class Entry:
    """One archive member: its name inside the archive, its real path, its stat."""

    name: str
    real: str
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


class Archives:
    """The archives of the folders under `root`; `exclude` folders are never included."""

    def __init__(self, root: str, exclude: tuple[str, ...],
                 may_read: Callable[[Request, str], bool] = lambda request, path: True) -> None:
        self.root = root
        self.exclude = exclude
        # the access rules for each member's URL path: a folder's archive holds no more than the
        # reader could fetch one by one (a --private folder inside a public one stays out)
        self.may_read = may_read

    def wanted(self, request: Request, decoded: str) -> str | None:
        """The format asked for (`?download=zip|tar` on a folder's URL), or None."""
        if not decoded.endswith("/") or not request.query or request.method not in ("GET", "HEAD"):
            return None
        kind = request.query_param("download")
        return kind if kind in FORMATS else None

    def respond(self, request: Request, decoded: str, kind: str) -> Response:
        real = resolve(self.root, decoded, self.exclude)
        if real is None or not os.path.isdir(real):
            raise HTTPError(404)
        top = os.path.basename(real) if real != self.root else (os.path.basename(self.root) or "files")
        top = display_name(top)  # archive names are text; bytes no UTF-8 spells are shown as \xHH
        entries = self.walk(real, top, decoded, lambda path: self.may_read(request, path))
        body = coalesce(zip_chunks(entries) if kind == "zip" else tar_chunks(entries))
        filename = f"{top}.{kind}"
        return Response(200, [("Content-Type", FORMATS[kind]),
                              ("Content-Disposition", content_disposition(filename)),
                              ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")], body)

    def walk(self, folder: str, top: str, url: str = "/",
             allowed: Callable[[str], bool] = lambda path: True) -> Iterator[Entry]:
        """Every member below `folder` (at the decoded URL path `url`) that `allowed` lets the
        reader have, depth first in name order, read as the archive is made. A folder reached
        twice (a link to a folder above it) is entered once."""
        seen: set[tuple[int, int]] = set()
        stack: list[tuple[str, str, str]] = [(folder, top, url)]
        while stack:
            path, name, at = stack.pop()
            try:
                st = os.stat(path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            yield Entry(name + "/", path, st)
            try:
                with os.scandir(path) as scan:
                    children = sorted((item.name, item.is_symlink()) for item in scan)
            except OSError:
                continue
            folders: list[tuple[str, str, str]] = []
            for child, is_link in children:
                if child.startswith(".") or "\\" in child:
                    continue  # hidden, or a name no URL reaches: not listed, not archived
                real = os.path.join(path, child)
                if is_link:
                    real = os.path.realpath(real)
                    if not is_within(real, self.root) or self._hidden_or_excluded(real):
                        continue
                elif any(is_within(real, other) for other in self.exclude):
                    continue
                try:
                    child_st = os.stat(real)
                except OSError:
                    continue
                member = name + "/" + display_name(child)
                if stat.S_ISDIR(child_st.st_mode):
                    if allowed(at + child + "/"):
                        folders.append((real, member, at + child + "/"))
                elif stat.S_ISREG(child_st.st_mode) and os.access(real, os.R_OK) and allowed(at + child):
                    yield Entry(member, real, child_st)
            stack.extend(reversed(folders))

    def _hidden_or_excluded(self, real: str) -> bool:
        relative = real[len(self.root):].lstrip(os.sep)
        if any(part.startswith(".") for part in relative.split(os.sep) if part):
            return True
        return any(is_within(real, other) for other in self.exclude)


def content_disposition(filename: str) -> str:
    """attachment with an ASCII fallback name and the UTF-8 one (RFC 6266, RFC 8187)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in filename)
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += "; filename*=UTF-8''" + quote(filename.encode("utf-8", "replace"), safe="")
    return value


def coalesce(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The same bytes in pieces of about CHUNK (one send each, not one per header)."""
    pending: list[bytes] = []
    size = 0
    try:
        for chunk in chunks:
            pending.append(chunk)
            size += len(chunk)
            if size >= CHUNK:
                yield b"".join(pending)
                pending, size = [], 0
        if pending:
            yield b"".join(pending)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # a client gone: the open file inside the generator is closed now


def zip_chunks(entries: Iterator[Entry]) -> Iterator[bytes]:
    """A zip (stored, not compressed: cheap and what most shared files already are), one member
    at a time; zipstream-ng switches to ZIP64 where sizes or offsets need it."""
    from zipstream import ZipStream  # on the first archive, like the other on-demand imports

    stream = ZipStream(sized=False)
    for entry in entries:
        try:
            if entry.is_dir:
                stream.add_path(entry.real, entry.name, recurse=False)
            else:
                stream.add_path(entry.real, entry.name)
        except OSError:
            continue  # gone since it was listed
        yield from stream.all_files()
    yield from stream.footer()


def tar_chunks(entries: Iterator[Entry]) -> Iterator[bytes]:
    """A POSIX (pax) tar: a header per member, then its bytes padded to 512; each file read as
    opened, its size the one it had then (a file that grows is cut there, one that shrinks is
    padded, so the archive stays well formed)."""
    for entry in entries:
        info = tarfile.TarInfo(entry.name.rstrip("/") if not entry.is_dir else entry.name)
        info.mtime = int(entry.st.st_mtime)
        if entry.is_dir:
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
            continue
        try:
            file, st = open_resolved(entry.real)
        except OSError:
            continue
        with file:
            info.size = st.st_size
            info.mode = 0o644
            yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
            remaining = st.st_size
            while remaining > 0:
                data = file.read(min(READ_SIZE, remaining))
                if not data:
                    yield bytes(remaining)  # it shrank: zeros keep the header's promise
                    break
                remaining -= len(data)
                yield data
        padding = -st.st_size % tarfile.BLOCKSIZE
        if padding:
            yield bytes(padding)
    yield bytes(tarfile.BLOCKSIZE * 2)
