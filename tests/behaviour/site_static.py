"""Files the static-file tests rely on (see test_static*.py)."""

from __future__ import annotations

from pathlib import Path


def build(root: Path, outside: Path) -> None:
    (root / "hello.txt").write_text("hello, world\n")
    (root / "index-dir").mkdir()
    (root / "index-dir" / "index.html").write_text("<h1>index page</h1>\n")
    (root / "plain-dir").mkdir()
    (root / "plain-dir" / "a.txt").write_text("a\n")
    (root / ".hidden.txt").write_text("hidden\n")
    (root / "link-out").symlink_to(outside / "secret.txt")
