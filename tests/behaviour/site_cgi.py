"""Scripts the CGI tests rely on (see test_cgi*.py)."""

from __future__ import annotations

from pathlib import Path


def build(cgi_dir: Path, outside: Path) -> None:
    pass
