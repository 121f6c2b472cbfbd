"""Fixtures of the container suite: the image (built once per run) and compose projects over it.

Nothing here runs unless a test module of this folder is collected and not skipped: the modules
skip themselves when no Docker engine answers.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container.dockerctl import Project, build_image, make_site, remove_image


@pytest.fixture(scope="session")
def image() -> Iterator[str]:
    tag = build_image()
    yield tag
    remove_image(tag)


@pytest.fixture
def site() -> Iterator[tuple[Path, Path]]:
    """A fresh (serve_dir, cgi_dir) pair outside pytest's 0700 tmp tree."""
    base = Path(tempfile.mkdtemp(prefix="cgibox-container-"))
    try:
        yield make_site(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _project(image: str, service: str) -> Iterator[Project]:
    base = Path(tempfile.mkdtemp(prefix="cgibox-container-"))
    serve_dir, cgi_dir = make_site(base)
    project = Project(image, serve_dir, cgi_dir, service=service)
    try:
        project.up()
        yield project
    finally:
        project.down()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def box(image) -> Iterator[Project]:
    """`docker compose up` of the default service (threading front), shared by a module's tests."""
    yield from _project(image, "cgibox")


@pytest.fixture(scope="module")
def gunicorn_box(image) -> Iterator[Project]:
    """`docker compose --profile gunicorn up cgibox-gunicorn`."""
    yield from _project(image, "cgibox-gunicorn")


@pytest.fixture
def fresh_project(image, site):
    """Factory for a project a test may stop or break; always torn down."""
    started: list[Project] = []

    def start(service: str = "cgibox") -> Project:
        serve_dir, cgi_dir = site
        project = Project(image, serve_dir, cgi_dir, service=service)
        started.append(project)
        project.up()
        return project

    yield start
    for project in started:
        project.down()
