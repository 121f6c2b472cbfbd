"""A folder's README shown under its listing: README.md rendered by markdown-it-py (raw HTML off,
so nothing in the file becomes markup of the page), README.txt as preformatted escaped text."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

from cgibox.core.paths import open_resolved

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

# files larger than this are shown in part, with a link to the whole file
README_LIMIT = 256 * 1024


@dataclass(frozen=True, slots=True)
class Readme:
    name: str
    html: Markup
    truncated: bool


@functools.cache
def markdown() -> MarkdownIt:
    """CommonMark with GitHub's tables and strikethrough; "html": False escapes any raw HTML, and
    markdown-it's link validation drops javascript:, vbscript: and data: links (links are kept).
    Built on the first README.md, not at start-up: markdown-it-py adds about 1.7 MB to a process."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


class Readmes:
    """Finds nothing itself (the listing knows the folder's names); renders a README, cached by
    the file's validator so a listing re-rendered after its TTL does not parse it again."""

    NAMES = ("readme.md", "readme.txt")  # looked up case-insensitively, in this order

    def render(self, real: str, name: str, st: os.stat_result) -> Readme | None:
        return _render(real, name, (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns))


@functools.lru_cache(maxsize=64)
def _render(real: str, name: str, validator: tuple[int, ...]) -> Readme | None:
    """`validator` is part of the cache key only: a changed file is a new key."""
    try:
        file, _ = open_resolved(real)  # like any file: a FIFO or symlink swapped in is not read
        with file:
            data = file.read(README_LIMIT + 1)
    except OSError:
        return None
    truncated = len(data) > README_LIMIT
    text = data[:README_LIMIT].decode("utf-8", "replace")
    if name.lower().endswith(".md"):
        html = Markup(markdown().render(text))  # noqa: S704 - markdown-it escapes: raw HTML is off
    else:
        html = Markup("<pre>%s</pre>") % escape(text)
    return Readme(name, html, truncated)
