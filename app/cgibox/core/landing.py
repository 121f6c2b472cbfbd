"""How a file lands in a folder whole or not at all: the folder opened once and confined, the
file written to an unnamed (O_TMPFILE) or hidden temporary file in it, fsync'd and renamed into
place; on every other way out nothing is left behind. Also the one check of a written name.

Everything after the folder is opened works relative to its descriptor (dir_fd, no following of
a last symlink), so a symlink swapped in later cannot carry the write out of the root.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from cgibox.core.errors import HTTPError
from cgibox.core.paths import fs_name, is_within, resolve, url_segment

# hidden temporary names the listing never shows (they start with a dot)
TEMP_PREFIX = ".cgibox-upload-"
# C0 controls and DEL (C1 controls too: a name shown in a page must be text)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# disk full, quota reached: 507 Insufficient Storage (RFC 4918 11.5), what nginx's dav module
# and Apache's mod_dav answer
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# how much an upload writes before its pages are handed to writeback (posix_fadvise DONTNEED
# starts it on Linux), so the final fsync does not wait for the whole file
FLUSH_EVERY = 8 * 1024 * 1024
# unnamed temporary files need O_TMPFILE, and /proc to give them a name at the end
_UNNAMED = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")


def name_problem(name: str) -> str | None:
    """Why `name` cannot be written (400), or None: empty, hidden (a leading dot), holding a
    slash, a backslash, NUL or a control character, or no file-system name at all."""
    if not name or name in (".", ".."):
        return "an empty file name"
    if name.startswith("."):
        return "a name starting with a dot (hidden names cannot be written)"
    if "/" in name or "\\" in name:
        return "a name holding a slash"
    if _CONTROL.search(name):
        return "a name holding NUL or a control character"
    if fs_name(name) is None:
        return "a name no file system can hold"
    if len(os.fsencode(name)) > 255:
        return "a name longer than 255 bytes"
    return None


def check_name(name: str) -> None:
    problem = name_problem(name)
    if problem is not None:
        raise HTTPError(400, problem)


def href_of(folder: str, name: str, is_dir: bool = False) -> str:
    """The URL path of `name` in the decoded `folder` ("/a/"), percent-encoded."""
    segments = [url_segment(s) for s in (folder + name).split("/") if s]
    return "/" + "/".join(segments) + ("/" if is_dir and segments else "")


def split_path(decoded_path: str) -> tuple[str, str]:
    """("/folder/", "name") of a decoded path (a trailing slash dropped first); every segment
    checked (400), so no hidden folder or empty segment is ever written through."""
    path = decoded_path[:-1] if decoded_path.endswith("/") and decoded_path != "/" else decoded_path
    if not path.startswith("/") or path == "/":
        raise HTTPError(403, "the root itself cannot be written")
    for segment in path[1:].split("/"):
        check_name(segment)
    folder, _, name = path.rpartition("/")
    return folder + "/", name


def storage_error(error: OSError) -> HTTPError:
    """The answer to a failed write: 507 for a full disk or quota, 413 for a file too large for
    the file system, 403 for permission, else 500 (with what failed)."""
    if error.errno in _NO_SPACE:
        return HTTPError(507, "the disk is full", close_connection=True)
    if error.errno == errno.EFBIG:
        return HTTPError(413, close_connection=True)
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return HTTPError(403, "the server may not write here")
    return HTTPError(500, f"the write failed: {os.strerror(error.errno or 0)}")


@contextmanager
def open_folder(root: str, folder: str, exclude: tuple[str, ...], missing: int = 409) -> Iterator[int]:
    """The folder `folder` (a decoded path ending in "/") as a directory descriptor, confined to
    `root` and outside `exclude`: 403 when it is not reachable, `missing` (409 for a new name,
    404 for an old one) when it does not exist or is not a folder."""
    real = resolve(root, folder, exclude)
    if real is None:
        raise HTTPError(403, "outside the folders that can be written")
    try:
        fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EPERM):
            raise HTTPError(403, "the server may not write here") from None
        raise HTTPError(missing, "the folder does not exist") from None
    try:
        # a folder swapped for a link between resolve() and open(): where did the open land?
        try:
            landed = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            landed = real  # no /proc: O_NOFOLLOW on the last component is what we have
        if not is_within(landed, root) or any(is_within(landed, other) for other in exclude):
            raise HTTPError(403, "outside the folders that can be written")
        yield fd
    finally:
        os.close(fd)


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def sync_folder(dir_fd: int) -> None:
    """Make a rename in the folder durable (a crash after the answer keeps the new name)."""
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename itself is done


def fresh_temp_name(dir_fd: int) -> str:
    """A hidden name unused in the folder right now (the caller creates it with O_EXCL or link)."""
    while True:
        name = TEMP_PREFIX + secrets.token_hex(8)
        if lstat_at(dir_fd, name) is None:
            return name


class Landing:
    """One file on its way into a folder. Unnamed (O_TMPFILE) where the file system allows, so
    even a crash of the whole process leaves nothing behind; else a hidden name made with O_EXCL.
    write() appends, commit() puts it in place whole, discard() (on every other way out) removes it."""

    def __init__(self, dir_fd: int, name: str, limit: int) -> None:
        self.dir_fd = dir_fd
        self.name = name
        self.limit = limit
        self.size = 0
        self.flushed = 0  # bytes already handed to the disk's writeback
        self.temp: str | None = None  # the hidden name, when the file has one
        flags = os.O_WRONLY | os.O_CLOEXEC
        self.fd = -1
        if _UNNAMED:
            try:
                self.fd = os.open(".", flags | os.O_TMPFILE, 0o644, dir_fd=dir_fd)
            except OSError as error:
                if error.errno in _NO_SPACE or error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise storage_error(error) from None
                # EOPNOTSUPP (NFS, some FUSE), EISDIR (an old kernel): a named temporary file
        if self.fd < 0:
            self.temp = fresh_temp_name(dir_fd)
            try:
                self.fd = os.open(self.temp, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                                  dir_fd=dir_fd)
            except OSError as error:
                self.temp = None
                raise storage_error(error) from None

    def write(self, data: bytes) -> None:
        """Append `data`: 413 past the limit, 507 when the disk is full."""
        self.size += len(data)
        if self.size > self.limit:
            raise HTTPError(413, f"the file is larger than {self.limit} bytes (--max-upload)",
                            close_connection=True)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
            if self.size - self.flushed >= FLUSH_EVERY:
                # start writing the last window to disk now, while more arrives: the fsync at the
                # end then waits for little (and the page cache keeps no upload's worth of pages)
                os.posix_fadvise(self.fd, self.flushed, self.size - self.flushed, os.POSIX_FADV_DONTNEED)
                self.flushed = self.size
        except OSError as error:
            raise storage_error(error) from None

    def commit(self, only_if_absent: bool = False) -> bool:
        """Put the file in place under its name; True when it replaced a file. With
        `only_if_absent` an existing name is 412 (If-None-Match: *), decided atomically by link()."""
        try:
            os.fsync(self.fd)
            if self.temp is None:
                self._name_temp()
            assert self.temp is not None
            existing = lstat_at(self.dir_fd, self.name)
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                raise HTTPError(409, "a folder has that name")
            if only_if_absent:
                try:
                    os.link(self.temp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd,
                            follow_symlinks=False)
                except FileExistsError:
                    raise HTTPError(412, "the name exists (If-None-Match: *)") from None
                os.unlink(self.temp, dir_fd=self.dir_fd)
            else:
                os.replace(self.temp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            self.temp = None
            sync_folder(self.dir_fd)
        except OSError as error:
            raise storage_error(error) from None
        finally:
            self.discard()
        return existing is not None

    def _name_temp(self) -> None:
        """Give the unnamed file a hidden name in its folder (through /proc: linkat with
        AT_EMPTY_PATH needs a capability the server does not have)."""
        while True:
            name = fresh_temp_name(self.dir_fd)
            try:
                os.link(f"/proc/self/fd/{self.fd}", name, dst_dir_fd=self.dir_fd, follow_symlinks=True)
            except FileExistsError:
                continue
            self.temp = name
            return

    def discard(self) -> None:
        """Close the file and remove its hidden name if it has one (idempotent)."""
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
        if self.temp is not None:
            try:
                os.unlink(self.temp, dir_fd=self.dir_fd)
            except OSError:
                pass
            self.temp = None
