"""core/writes.py through App.handle, without sockets: a body that stops with the fronts'
BodyTimeout (408) or with a front's own exception (400) lands nothing, for PUT and forms alike."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from cgibox.config import Config
from cgibox.core.errors import BodyTimeout
from cgibox.core.request import Headers, Request
from cgibox.core.router import App
from cgibox.core.stats import Stats


class Stalling(io.RawIOBase):
    """A body that gives `good` bytes, then raises `error` (what a front's stream does)."""

    def __init__(self, good: int, error: Exception) -> None:
        self.left, self.error = good, error

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise self.error
        size = self.left if size is None or size < 0 else min(size, self.left)
        self.left -= size
        return b"x" * size


@pytest.fixture
def app(tmp_path: Path) -> App:
    (tmp_path / "root" / "up").mkdir(parents=True)
    (tmp_path / "cgi").mkdir()
    config = Config(root=tmp_path / "root", cgi_dir=tmp_path / "cgi", write=("/up/*",))
    return App(config, Stats.create(str(tmp_path / "stats")), "threading")


def everything(folder: str) -> list[str]:
    return sorted(name for _, dirs, files in os.walk(folder) for name in dirs + files)


@pytest.mark.parametrize(("error", "status"), [(BodyTimeout(30), 408), (ConnectionResetError(), 400)])
@pytest.mark.parametrize("form", [False, True])
def test_a_body_that_stops_lands_nothing(app, error, status, form):
    length = 4 * 1024 * 1024
    if form:
        head = b'--B\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n\r\n'
        body = Chain(io.BytesIO(head + b"x" * 1024 * 1024), Stalling(1024 * 1024, error))
        fields = [("Host", "x"), ("Content-Type", "multipart/form-data; boundary=B"),
                  ("Content-Length", str(length))]
        request = Request("POST", "/up/", headers=Headers(fields), body=body,  # type: ignore[arg-type]
                          body_length=length)
    else:
        fields = [("Host", "x"), ("Content-Length", str(length))]
        request = Request("PUT", "/up/f.bin", headers=Headers(fields),
                          body=Stalling(2 * 1024 * 1024, error), body_length=length)  # type: ignore[arg-type]
    response = app.handle(request)
    assert response.status == status, response.body
    assert b"request body" in response.body  # the body's own failure, not an earlier refusal
    assert response.close_connection
    assert everything(app.root) == ["up"]


class Chain(io.RawIOBase):
    """One body stream, then another."""

    def __init__(self, first: io.BytesIO, then: Stalling) -> None:
        self.first, self.then = first, then

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self.first.read(size) or self.then.read(size)
