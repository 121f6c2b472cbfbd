"""Files the static-file tests rely on (see test_files.py, test_dirs.py, test_traversal.py).

The unit tests (tests/unit/test_paths.py, test_static.py) build the same tree, so the traversal
corpus means the same thing with and without sockets.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

# bytes 0..255 repeated: any range of it is easy to check
RANGE_BYTES = bytes(range(256)) * 4
# a file larger than what fronts send inline (so sendfile serves it), with no repeating period
PATTERN_BYTES = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(10_000))  # 320,000 bytes
# large enough that a slow reader keeps the response in flight past the socket buffers
BIG_SIZE = 16 * 1024 * 1024
# fixed modification times for the sorting folder (oldest to newest)
SORT_TIMES = {"b-big.txt": 1_600_000_000, "a-small.txt": 1_600_100_000, "c-mid.txt": 1_600_200_000}
SORT_SIZES = {"b-big.txt": 300, "a-small.txt": 10, "c-mid.txt": 100}
FIXED_MTIME = 1_700_000_000  # 14 Nov 2023 22:13:20 GMT

TYPED_FILES = {
    # name: (content, expected Content-Type)
    "page.html": (b"<!doctype html><p>page</p>\n", "text/html; charset=utf-8"),
    "style.css": (b"p { color: teal }\n", "text/css; charset=utf-8"),
    "script.js": (b"console.log('hi');\n", "text/javascript; charset=utf-8"),
    "data.json": (b'{"a": 1}\n', "application/json; charset=utf-8"),
    "notes.md": (b"# notes\n", "text/markdown; charset=utf-8"),
    "image.png": (b"\x89PNG\r\n\x1a\n" + bytes(32), "image/png"),
    "drawing.svg": (b"<svg xmlns='http://www.w3.org/2000/svg'/>\n", "image/svg+xml; charset=utf-8"),
    "blob.weirdext": (b"\x00\x01\x02", "application/octet-stream"),
    "archive.tar.gz": (gzip.compress(b"tar"), "application/gzip"),
}


def build(root: Path, outside: Path) -> None:
    (root / "hello.txt").write_text("hello, world\n")
    (root / "index-dir").mkdir()
    (root / "index-dir" / "index.html").write_text("<h1>index page</h1>\n")
    (root / "plain-dir").mkdir()
    (root / "plain-dir" / "a.txt").write_text("a\n")
    (root / "plain-dir" / "sub").mkdir()
    (root / "plain-dir" / "sub" / "deep.txt").write_text("deep\n")
    (root / "plain-dir" / ".secret").write_text("HIDDEN-CONTENT in a folder\n")
    (root / "empty-dir").mkdir()
    (root / "readme-dir").mkdir()
    (root / "readme-dir" / "README.md").write_text("# About this folder\n\n<i>raw</i> and [a link](x.txt)\n")
    (root / ".hidden.txt").write_text("HIDDEN-CONTENT\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "range.bin").write_bytes(RANGE_BYTES)
    (root / "pattern.bin").write_bytes(PATTERN_BYTES)
    (root / "space name.txt").write_text("spaced\n")
    (root / "café.txt").write_text("café\n")
    (root / "tag<b>.txt").write_text("tag\n")
    (root / "dated.txt").write_text("dated\n")
    os.utime(root / "dated.txt", (FIXED_MTIME, FIXED_MTIME))
    for name, (content, _) in TYPED_FILES.items():
        (root / name).write_bytes(content)
    # precompressed siblings: each holds different bytes so the test sees which one was sent
    (root / "comp.txt").write_text("plain text, not compressed\n")
    (root / "comp.txt.gz").write_bytes(gzip.compress(b"from the gz sibling\n"))
    (root / "comp.txt.br").write_bytes(b"pretend-brotli")
    (root / "only-gz.txt").write_text("only a gz sibling\n")
    (root / "only-gz.txt.gz").write_bytes(gzip.compress(b"from only-gz.txt.gz\n"))
    # a sibling that is a symlink out of the root must never be sent
    (root / "leaky.txt").write_text("leaky original\n")
    (root / "leaky.txt.gz").symlink_to(outside / "secret.txt")
    # sorting: folders first, then by name / size / mtime
    sorting = root / "sorting"
    sorting.mkdir()
    for name, size in SORT_SIZES.items():
        (sorting / name).write_bytes(b"x" * size)
        os.utime(sorting / name, (SORT_TIMES[name], SORT_TIMES[name]))
    (sorting / "z-folder").mkdir()
    (sorting / "A-folder").mkdir()
    # symlinks: out of the root (file and folder), to a hidden name, and a harmless one inside
    (root / "link-out").symlink_to(outside / "secret.txt")
    (root / "link-dir-out").symlink_to(outside)
    (root / "link-hidden").symlink_to(root / ".hidden.txt")
    (root / "link-git").symlink_to(root / ".git")
    (root / "link-in").symlink_to(root / "hello.txt")
    (root / "link-rel-out").symlink_to(Path("..") / "outside" / "secret.txt")
    # for the graceful-stop test: a response that stays in flight while the client reads slowly
    with open(root / "big.bin", "wb") as big:
        big.truncate(BIG_SIZE)
