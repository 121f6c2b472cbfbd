"""The tree the behaviour suite serves: built in a temporary folder once per run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.behaviour import site_cgi, site_static
from tests.servers import REPO


def build(base: Path) -> tuple[Path, Path]:
    root = base / "www"
    cgi_dir = base / "cgi-bin"
    outside = base / "outside"
    for folder in (root, cgi_dir, outside):
        folder.mkdir()
    (outside / "secret.txt").write_text("outside the root\n")
    site_static.build(root, outside)
    # the bundled sample scripts, then the suite's own
    for script in (REPO / "cgi-bin").iterdir():
        if script.is_file() and not script.name.startswith("."):
            shutil.copy2(script, cgi_dir / script.name)
    site_cgi.build(cgi_dir, outside)
    os.chmod(base, 0o755)
    return root, cgi_dir
