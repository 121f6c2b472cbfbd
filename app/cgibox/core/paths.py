"""The one place that maps a URL path to a file and confines it to a root folder.

Decode first, refuse every trick (.., hidden names, encoded slashes, backslashes, NUL, empty
segments), then resolve symlinks with realpath and check the result is still under the root.
"""

from __future__ import annotations

import os
import stat
from urllib.parse import unquote

# encoded "/" and "\" would let one URL segment become two path segments after decoding
_ENCODED_SEPARATORS = ("%2f", "%5c")


def decode_path(raw_path: str) -> str | None:
    """Percent-decode a URL path as UTF-8; None when it is not valid or holds NUL or '\\'."""
    lowered = raw_path.lower()
    if any(sep in lowered for sep in _ENCODED_SEPARATORS):
        return None
    try:
        decoded = unquote(raw_path, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return None
    if "\x00" in decoded or "\\" in decoded:
        return None
    return decoded


def safe_segments(decoded_path: str) -> list[str] | None:
    """The path's segments, or None when one is empty, hidden, '.' or '..'.

    A single trailing slash is allowed (it marks a directory); "//" anywhere else is refused.
    """
    if decoded_path == "/":
        return []
    if not decoded_path.startswith("/"):
        return None
    inner = decoded_path[1:]
    if inner.endswith("/"):
        inner = inner[:-1]
    if not inner:
        return None  # "//": an empty segment, like any other
    segments = inner.split("/")
    for segment in segments:
        if not segment or segment.startswith("."):
            return None
    return segments


def is_within(path: str, root: str) -> bool:
    """True when the (already real) `path` is `root` or lies below it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _real_below(root: str, segments: list[str]) -> tuple[str, os.stat_result | None]:
    """os.path.realpath(root/segments) for a root that is already real, and the lstat of the
    result when it was reached without a symlink (else None). Only components below the root
    are looked at, one lstat each; realpath runs only past a symlink."""
    path = root
    st = None
    for index, segment in enumerate(segments):
        path = os.path.join(path, segment)
        try:
            st = os.lstat(path)
        except OSError:
            # missing (or not a folder): nothing below it can be a link, as realpath would find
            return os.path.join(path, *segments[index + 1:]), None
        if stat.S_ISLNK(st.st_mode):
            return os.path.realpath(os.path.join(path, *segments[index + 1:])), None
    return path, st


def resolve(root: str, decoded_path: str, exclude: tuple[str, ...] = ()) -> str | None:
    """The real filesystem path `decoded_path` names under `root`, or None when it must not be reached.

    `root` must already be a realpath. Symlinks are followed, but only to places that stay
    under the root and outside every folder in `exclude` (the cgi dir, when it sits in the root).
    The result need not exist.
    """
    found = resolve_stat(root, decoded_path, exclude)
    return None if found is None else found[0]


def resolve_stat(root: str, decoded_path: str,
                 exclude: tuple[str, ...] = ()) -> tuple[str, os.stat_result | None] | None:
    """resolve(), and the path's lstat when it was looked at on the way (None when it is missing
    or was reached through a symlink): a file served straight away needs no second stat."""
    segments = safe_segments(decoded_path)
    if segments is None:
        return None
    real, st = _real_below(root, segments)
    if not is_within(real, root):
        return None
    # a symlink inside the root may point at a hidden name inside it: still hidden
    relative = real[len(root):].lstrip(os.sep)
    if relative and any(part.startswith(".") for part in relative.split(os.sep)):
        return None
    for folder in exclude:
        if is_within(real, folder):
            return None
    return real, st
