"""http.server's URL space, without I/O: a request path is percent-decoded, `.` and `..` are
collapsed (never above the served folder), and the result is what both the CGI check and file
serving use, so no spelling of a path can be a script to one and a file to the other
(CVE-2014-4650). The core then confines the collapsed path as it confines every other.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit


def split_target(target: str) -> tuple[str, str]:
    """(path, query) of a request target as http.server saw it: the query starts at the first "?"."""
    path, _, query = target.partition("?")
    return path, query


def collapse(path: str) -> str:
    """The decoded path with empty, "." and ".." segments resolved, always starting with "/" and
    keeping a trailing slash; bytes that are not UTF-8 stay as surrogate escapes, so they
    round-trip through quote_path().

    collapse("/a/./b/../c/") == "/a/c/"; collapse("cgi-bin%2ffile.py") == "/cgi-bin/file.py";
    collapse("/../../x") == "/x".
    """
    decoded = unquote(path.split("#", 1)[0], errors="surrogateescape")
    segments: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    last = decoded.rsplit("/", 1)[-1]
    trailing = segments and (decoded.endswith("/") or last in (".", ".."))
    return "/" + "/".join(segments) + ("/" if trailing else "")


def quote_path(decoded: str) -> str:
    """A collapsed path percent-encoded again, for the core's Request target."""
    return quote(decoded, safe="/", errors="surrogateescape")


def core_target(target: str) -> str:
    """The origin-form target the core is given for an http.server request target."""
    path, query = split_target(target)
    if "://" in path:  # absolute-form: http.server kept it in self.path; the core wants the path
        path = urlsplit(path).path or "/"
    encoded = quote_path(collapse(path))
    return encoded + ("?" + query if query else "")


def slash_redirect(target: str) -> str | None:
    """Where http.server redirected a folder asked for without its slash: the same target as the
    client spelled it (after http.server's own `//` fix), with "/" after the path; None when that
    spelling is not safe to send back (see safe_location)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        # an absolute-form target names its own http(s) host; "http:evil.com/.." (no "//") is
        # read by browsers as http://evil.com/ when the page itself came over https
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return None
    location = urlunsplit((parts.scheme, parts.netloc, parts.path + "/", parts.query, parts.fragment))
    return location if safe_location(location) else None


def safe_location(location: str) -> bool:
    """Whether a Location can go out as it is: visible ASCII only (no control or raw 8-bit
    bytes in a header), no backslash, and no start that browsers read as another host
    (`//host`, and `/\\host`, which they treat as `//`: CVE-2021-28861's class)."""
    return (all("\x21" <= char <= "\x7e" and char != "\\" for char in location)
            and not location.startswith("//"))


def encode_location(location: str) -> str:
    """`location` with every byte outside visible ASCII, and `\\`, percent-encoded."""
    return "".join(
        char if "\x21" <= char <= "\x7e" and char != "\\" else
        "".join(f"%{byte:02X}" for byte in char.encode("latin-1" if char <= "\xff" else "utf-8"))
        for char in location)


def is_cgi_path(collapsed: str, cgi_directories: list[str]) -> tuple[str, str] | None:
    """http.server's is_cgi(): (directory, rest) for the shortest of `cgi_directories` that the
    collapsed path starts with, segment-wise, or None."""
    directories = set(cgi_directories)
    separator = collapsed.find("/", 1)
    while separator > 0:
        head = collapsed[:separator]
        if head in directories:
            return head, collapsed[separator + 1:]
        separator = collapsed.find("/", separator + 1)
    return None


def mount_segments(url_path: str) -> list[str] | None:
    """The folder segments a cgi_directories entry names under the served folder, or None when
    it cannot name one (empty, ".", "..", a hidden name)."""
    segments = [segment for segment in url_path.split("/") if segment]
    if not segments or any(segment in (".", "..") or segment.startswith(".") for segment in segments):
        return None
    return segments
