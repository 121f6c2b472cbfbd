"""The served tree for unit tests: the behaviour suite's site_static tree, plus a cgi dir inside
the root (so its exclusion can be tested without sockets)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.behaviour import site_static


def build_tree(base: Path) -> tuple[str, str]:
    """(real root, real cgi dir) of a fresh tree under `base`."""
    root, outside = base / "www", base / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("outside the root\n")
    site_static.build(root, outside)
    cgi_dir = root / "cgi-bin"
    cgi_dir.mkdir()
    (cgi_dir / "script.sh").write_text("#!/bin/sh\necho source\n")
    (root / "link-cgi").symlink_to(cgi_dir / "script.sh")
    return os.path.realpath(root), os.path.realpath(cgi_dir)
