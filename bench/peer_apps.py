"""The Python-hosted peers' applications, as their users write them to serve a folder: Starlette's
`StaticFiles` under uvicorn, aiohttp's static route under gunicorn, and the RSGI app granian calls
for what its static mount (served from Rust) does not have.

Loaded by the peers themselves from bench/.peers-venv (never by cgibox's .venv, never importing
the bench): the folder to serve is the environment's BENCH_PEER_ROOT.
"""

from __future__ import annotations

import os
from typing import Any

ROOT_VARIABLE = "BENCH_PEER_ROOT"


def _root() -> str:
    return os.environ[ROOT_VARIABLE]


def make_starlette() -> Any:
    """`uvicorn --factory bench.peer_apps:make_starlette`: the whole folder mounted at /, with
    html=True (a folder's index.html answers for it; a folder without one is a 404: StaticFiles
    lists no folders)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    return Starlette(routes=[Mount("/", app=StaticFiles(directory=_root(), html=True))])


def make_aiohttp() -> Any:
    """`gunicorn 'peer_apps:make_aiohttp()' --worker-class aiohttp.GunicornUVLoopWebWorker`: one
    static route at / with folder listings on (show_index=True)."""
    from aiohttp import web

    app = web.Application()
    app.router.add_static("/", _root(), show_index=True)
    return app


async def granian_fallback(scope: Any, protocol: Any) -> None:
    """granian's RSGI app behind `--static-path-route / --static-path-mount ROOT`: the static mount
    answers what it has, this answers the rest with a plain 404."""
    protocol.response_bytes(404, [("content-type", "text/plain; charset=utf-8")], b"404 Not Found\n")
