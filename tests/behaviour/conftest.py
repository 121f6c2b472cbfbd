"""The behaviour suite's fixtures: a site (root + cgi dir) and a `server` per front.

`server` is module-scoped and parametrised over every front, so each test module runs once per
front against one long-lived process; `make_server` starts extra ones with other settings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.behaviour import site
from tests.servers import Server, selected_fronts, serving, start_server

FRONTS = selected_fronts()


@pytest.fixture(scope="session")
def site_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """(root, cgi_dir) built once for the whole run; tests must not change them."""
    base = tmp_path_factory.mktemp("site")
    return site.build(base)


@pytest.fixture(scope="module", params=FRONTS)
def front(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def server(front, site_dirs, tmp_path_factory):
    yield from serving(front, site_dirs, tmp_path_factory.mktemp("logs"))


@pytest.fixture
def make_server(front, site_dirs, tmp_path):
    """Start another server on the same front: make_server(extra_flags, root=..., cgi_dir=..., env=...)."""
    started: list[Server] = []

    def start(extra: list[str] | None = None, root: Path | None = None, cgi_dir: Path | None = None,
              env: dict[str, str] | None = None, host: str = "127.0.0.1") -> Server:
        default_root, default_cgi = site_dirs
        running = start_server(front, root or default_root, cgi_dir or default_cgi, tmp_path / "logs",
                               extra, env, host)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
