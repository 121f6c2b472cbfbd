"""WebDAV's tree operations on the served folder: where a change lands (a name in a confined
parent folder, never followed through a last symlink), COPY of a file or a tree (each file
landing whole through core.landing, as an upload does), and DELETE of a tree being overwritten.
Hidden names, links out of the root and the script folders are never copied or deleted."""

from __future__ import annotations

import os
import shutil
import stat as stat_mod
from dataclasses import dataclass

from cgibox.core.dav_props import copy_dead
from cgibox.core.errors import HTTPError
from cgibox.core.landing import Landing, split_path
from cgibox.core.paths import is_within, resolve

MAX_TREE_DEPTH = 64  # a COPY goes no deeper (links can make a folder its own member)
COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Place:
    """Where a change lands: a name in a real folder under the root. `path` is that folder joined
    with the name, not followed if it is a link (DELETE removes the link, not what it points at)."""

    decoded: str
    parent: str
    name: str

    @property
    def path(self) -> str:
        return os.path.join(self.parent, self.name)

    def lstat(self) -> os.stat_result | None:
        try:
            return os.lstat(self.path)
        except OSError:
            return None

    def stat(self) -> os.stat_result | None:
        """The stat of what the name leads to (None when missing or a dangling link)."""
        try:
            return os.stat(self.path)
        except OSError:
            return None


class Tree:
    """The served folder as WebDAV changes it: `root` real, `exclude` the script folders."""

    def __init__(self, root: str, exclude: tuple[str, ...]) -> None:
        self.root = root
        self.exclude = exclude

    def place(self, decoded: str) -> Place:
        """Where `decoded` lands: core.landing's name rules (400; 403 for the root itself), 403
        for a script folder or a folder out of reach, 409 when its parent folder is missing."""
        folder, name = split_path(decoded)
        parent = resolve(self.root, folder, self.exclude)
        if parent is None:
            raise HTTPError(403, "that folder cannot be written")
        if not os.path.isdir(parent):
            raise HTTPError(409, "the parent folder does not exist")
        place = Place(decoded, parent, name)
        if self.excluded(place.path):
            raise HTTPError(403, "a script folder cannot be changed")
        return place

    def excluded(self, path: str) -> bool:
        return any(is_within(path, folder) or is_within(folder, path) for folder in self.exclude)

    def members(self, folder: str) -> list[tuple[str, str, os.stat_result]]:
        """(name, real path, stat) of a folder's members that WebDAV shows: no hidden names,
        no links out of the root or into a script folder."""
        found = []
        try:
            with os.scandir(folder) as scan:
                for item in scan:
                    name = item.name
                    if name.startswith(".") or "\\" in name:
                        continue
                    try:
                        if item.is_symlink():
                            real = os.path.realpath(item.path)
                            relative = os.path.relpath(real, self.root)
                            if not is_within(real, self.root) or any(
                                    part.startswith(".") for part in relative.split(os.sep) if part != "."):
                                continue
                            st = os.stat(real)
                        else:
                            real = item.path
                            st = item.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if any(is_within(real, ex) for ex in self.exclude):
                        continue
                    found.append((name, real, st))
        except OSError:
            pass
        return found

    # -- changes ------------------------------------------------------------------------------

    def delete(self, path: str) -> None:
        """Remove a file, a link or a whole folder (links inside are removed, never followed)."""
        st = os.lstat(path)
        if stat_mod.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)

    def copy(self, source: str, target: str, depth: str) -> None:
        """Copy a file or folder (depth "0": the folder alone, "infinity": its members too) to
        `target`, which does not exist; dead properties come along."""
        self._copy(source, target, depth, 0)

    def _copy(self, source: str, target: str, depth: str, level: int) -> None:
        st = os.stat(source)
        if stat_mod.S_ISDIR(st.st_mode):
            os.mkdir(target)
            copy_dead(source, target)
            if depth != "infinity" or level >= MAX_TREE_DEPTH:
                return
            for name, real, _ in self.members(source):
                if is_within(target, real) and real != source:
                    continue  # a link to the copy's own ancestor
                self._copy(real, os.path.join(target, name), depth, level + 1)
        elif stat_mod.S_ISREG(st.st_mode):
            copy_file(source, target)
            copy_dead(source, target)


def copy_file(source: str, target: str) -> None:
    """`source`'s bytes land at `target` whole or not at all, as an upload does (core.landing:
    an unnamed or hidden temporary file in the target's folder, fsync, rename)."""
    folder, name = os.path.split(target)
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        landing = Landing(dir_fd, name, limit=1 << 62)
        try:
            with open(source, "rb") as reader:
                while chunk := reader.read(COPY_CHUNK):
                    landing.write(chunk)
            landing.commit()
        finally:
            landing.discard()
    finally:
        os.close(dir_fd)
