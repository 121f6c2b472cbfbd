"""The one place that maps a URL path to a file and confines it to a root folder, and the one
mapping from a failed stat to an HTTP status.

Decode first, refuse every trick (.., hidden names, encoded slashes, NUL, empty segments), then
resolve symlinks with realpath and check the result is still under the root. A backslash is a
name byte on Linux like any other: nothing splits on it (a Location is never built with one raw).
A URL path's bytes are a file name's bytes: they are decoded like the OS decodes file names
(UTF-8 with surrogateescape), so a name that is not UTF-8 is reached by its percent-encoded bytes,
and listing hrefs and shown names go the other way (url_segment, display_name).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import unicodedata
from typing import BinaryIO
from urllib.parse import quote, unquote_to_bytes

from cgibox.core.accesslog import server_log

# an encoded "/" would let one URL segment become two path segments after decoding
_ENCODED_SEPARATOR = "%2f"
# what a page shows escaped: control characters (C0, DEL, C1) and surrogates (those from
# surrogateescape stand for bytes that are not UTF-8; no other can be encoded at all), and the
# backslash itself (doubled, so a name spelling "\x01" never looks like one holding byte 1) ...
_UNDISPLAYABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\\\\]")
# ... and, in names that are not ASCII, every character that shows as nothing or as another:
# format characters (bidi overrides and isolates, zero-width joiners, BOM, soft hyphen), line and
# paragraph separators, spaces other than U+0020, unassigned code points, the Hangul fillers
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp", "Zs"})
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
_ZWJ = "\u200d"


def decode_path(raw_path: str) -> str | None:
    """Percent-decode a URL path into the file-name string its bytes spell; None when it holds NUL
    or an encoded '/', or characters no request line can carry (above U+00FF). A backslash,
    raw or as %5C, is a byte of a name like any other.

    `raw_path` is the request's text as the fronts give it, one character per byte (latin-1).
    Bytes that are not UTF-8 become surrogate escapes (U+DC80..U+DCFF), exactly as os.listdir
    spells such a name, so `%FF` reaches the file system as the byte 0xFF.
    """
    if _ENCODED_SEPARATOR in raw_path.lower():
        return None
    try:
        raw = raw_path.encode("latin-1")
    except UnicodeEncodeError:
        return None  # e.g. a lone surrogate handed in by a front: no byte on the wire is that
    decoded = os.fsdecode(unquote_to_bytes(raw))
    if "\x00" in decoded:
        return None
    return decoded


def fs_name(decoded_path: str) -> bytes | None:
    """The bytes the OS gets for `decoded_path`, None when it has none (a lone surrogate that is
    not a surrogate escape, or NUL): such a path names no file."""
    if "\x00" in decoded_path:
        return None
    try:
        return os.fsencode(decoded_path)
    except UnicodeEncodeError:
        return None


def url_segment(name: str) -> str:
    """A file name as one percent-encoded URL segment: its raw bytes, so decode_path gives it back."""
    return quote(os.fsencode(name), safe="")


def display_name(name: str) -> str:
    """A file name (or decoded path) as text a page can show, that cannot pose as another: bytes
    that are not UTF-8 are written as \\xHH, control, format (bidi, zero-width) and other invisible
    characters as \\xHH / \\uHHHH / \\UHHHHHHHH, everything else as it is."""
    if name.isascii():
        return _UNDISPLAYABLE.sub(_escape, name) if _UNDISPLAYABLE.search(name) else name
    shown = []
    for index, char in enumerate(name):
        if _invisible(char) and not (char == _ZWJ and _joins_emoji(name, index)):
            shown.append(_escape_char(char))
        else:
            shown.append(char)
    return "".join(shown)


def _joins_emoji(name: str, index: int) -> bool:
    """A zero-width joiner inside an emoji sequence (👨\u200d👩): shown as the one glyph it makes."""
    before = name[index - 1] if index > 0 else ""
    after = name[index + 1] if index + 1 < len(name) else ""
    before = name[index - 2] if before == "\ufe0f" and index > 1 else before  # after a variation selector
    return bool(before and after) and unicodedata.category(before) == unicodedata.category(after) == "So"


def _invisible(char: str) -> bool:
    return char == "\\" or unicodedata.category(char) in _INVISIBLE_CATEGORIES and char != " " or \
        char in _INVISIBLE_LETTERS


def _escape(match: re.Match[str]) -> str:
    return _escape_char(match.group())


def _escape_char(char: str) -> str:
    if char == "\\":
        return "\\\\"
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # the byte it escapes
    if code > 0xFFFF:
        return f"\\U{code:08x}"
    return f"\\u{code:04x}" if code > 0xFF else f"\\x{code:02x}"


def stat_error_status(error: OSError) -> int:
    """The one answer, for files and scripts alike, to a stat or open that failed with `error`:
    403 when permission is refused; 404 for everything else (missing, ENOTDIR, ENAMETOOLONG,
    ELOOP, EIO...), which tells a client nothing about what exists."""
    if isinstance(error, PermissionError) or error.errno in (errno.EACCES, errno.EPERM):
        return 403
    return 404


def refused_status(error: OSError, path: str) -> int:
    """stat_error_status for a file or folder to serve, with a log line saying why when it is 403
    (the client is told nothing more; the operator needs the path, the reason and the user)."""
    status = stat_error_status(error)
    if status == 403:
        server_log(f"cgibox: 403: {display_name(path)}: {error.strerror or error} for uid {os.getuid()}; "
                   "make it readable by that user (e.g. chmod o+rX, or o+r for a file) or run as its owner")
    return status


def open_resolved(real: str) -> tuple[BinaryIO, os.stat_result]:
    """`real` (already resolved and confined) open for reading, and its fstat; OSError when it
    cannot be opened or is not a regular file (stat_error_status says the answer).

    O_NOFOLLOW: a symlink here was swapped in since `real` was resolved. O_NONBLOCK: a FIFO
    swapped in must not hang the request waiting for a writer (reads of a regular file ignore it).
    """
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    file = os.fdopen(fd, "rb")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.ENOENT, "not a regular file", real)
    except BaseException:
        file.close()
        raise
    return file, st


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
    if segments is None or fs_name(decoded_path) is None:
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
