"""The Python-hosted peers users would pick instead of cgibox for speed (issue 23): uvicorn with
Starlette's `StaticFiles`, aiohttp's static route under gunicorn, and granian's static mount (served
from Rust). Each is pip-installed into the bench's own venv (bench/.peers-venv, kept between runs;
never the project's .venv, so nothing of theirs reaches cgibox), one peer at a time so that one
that cannot be installed leaves the others; what failed is remembered for the run's table.

Each runs as its users would run it for speed: two worker processes (one per core), uvloop and
httptools where the peer takes them, access logs off. Their applications are bench/peer_apps.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import BENCH

VENV = BENCH / ".peers-venv"
APPS = "peer_apps"  # bench/peer_apps.py, imported by the peers from BENCH
ROOT_VARIABLE = "BENCH_PEER_ROOT"
INSTALL_TIMEOUT_S = 300
RETRY_AFTER_S = 3600  # a peer whose install failed is not tried again sooner (no network: no wait per run)

# what pip installs for each peer, and the distributions whose versions the table shows
REQUIREMENTS = {
    "uvicorn": (("uvicorn[standard]>=0.30", "starlette>=0.37"),
                ("uvicorn", "starlette", "uvloop", "httptools")),
    "aiohttp": (("aiohttp>=3.9", "gunicorn>=22", "uvloop>=0.19"), ("aiohttp", "gunicorn", "uvloop")),
    "granian": (("granian>=2.0",), ("granian",)),
}
KINDS = tuple(REQUIREMENTS)
SERVED_FROM_RUST = ("granian",)  # its static mount answers files and 404s without entering Python
LABELS = {"uvicorn": "uvicorn + Starlette", "aiohttp": "aiohttp", "granian": "granian"}
PROGRAMS = {"uvicorn": "uvicorn", "aiohttp": "gunicorn", "granian": "granian"}

CANNOT_SERVE = {
    ("uvicorn", "cgi"): "uvicorn and Starlette run no CGI",
    ("uvicorn", "listing"): "Starlette's StaticFiles lists no folders (a folder without index.html is a 404)",
    ("aiohttp", "cgi"): "aiohttp runs no CGI",
    ("granian", "cgi"): "granian runs no CGI",
    ("granian", "listing"): "granian's static mount lists no folders (a folder is a 404 unless "
                            "--static-path-dir-to-file names an index file)",
}


def _stamp(kind: str) -> Path:
    return VENV / f".installed-{kind}.json"


def _failure(kind: str) -> Path:
    return VENV / f".failed-{kind}.txt"


def _python() -> Path:
    return VENV / "bin" / "python"


def _program(kind: str) -> Path:
    return VENV / "bin" / PROGRAMS[kind]


def installed(kind: str) -> dict | None:
    """The versions recorded when this peer was installed with today's requirements, or None."""
    try:
        stamp = json.loads(_stamp(kind).read_text())
    except (OSError, ValueError):
        return None
    if stamp.get("requirements") != list(REQUIREMENTS[kind][0]) or not _program(kind).exists():
        return None
    return stamp.get("versions", {})


def missing(kind: str) -> str | None:
    """Why this peer cannot run here, or None."""
    if installed(kind) is not None:
        return None
    try:
        why = _failure(kind).read_text().strip()
    except OSError:
        why = ""
    return why or f"not installed in {VENV} (a run without --no-peer-install installs it)"


def install(kinds: list[str], progress) -> None:
    """Install each peer of `kinds` not installed yet (with today's requirements) into VENV; a peer
    that fails is recorded with its reason, and the others go on. One that failed within the last
    RETRY_AFTER_S is not tried again (removing VENV tries at once)."""
    wanted = [kind for kind in kinds if installed(kind) is None]
    recent = [kind for kind in wanted if _failed_recently(kind)]
    if recent:
        progress(f"== Python-hosted peers: {', '.join(LABELS[kind] for kind in recent)} failed to install "
                 f"less than {RETRY_AFTER_S // 60} minutes ago: not tried again (rm -r {VENV} to try now)")
        wanted = [kind for kind in wanted if kind not in recent]
    ready = [LABELS[kind] for kind in kinds if installed(kind) is not None]
    if ready:
        progress(f"== Python-hosted peers: {', '.join(ready)} already in {VENV}")
    if not wanted:
        return
    started = time.monotonic()
    if not _python().exists():
        progress(f"== Python-hosted peers: making {VENV} ...")
        done = _run([sys.executable, "-m", "venv", str(VENV)])
        if done is not None:
            for kind in wanted:
                _record_failure(kind, f"could not make the peers' venv: {done}")
            progress(f"== Python-hosted peers: not available: could not make the venv: {done}")
            return
    for kind in wanted:
        requirements, distributions = REQUIREMENTS[kind]
        progress(f"== {LABELS[kind]}: pip install {' '.join(requirements)} into {VENV.name} ...")
        why = _run([str(_python()), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--retries", "1", "--timeout", "15", *requirements])
        if why is None:
            versions = _versions(distributions)
            _stamp(kind).write_text(json.dumps({"requirements": list(requirements), "versions": versions}))
            _failure(kind).unlink(missing_ok=True)
            progress(f"== {LABELS[kind]}: installed " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        else:
            _record_failure(kind, f"pip could not install {' '.join(requirements)}: {why}")
            progress(f"== {LABELS[kind]}: not available: {why}")
    progress(f"== Python-hosted peers: installing took {time.monotonic() - started:.0f} s (kept in {VENV} "
             "for the next runs)")


def _failed_recently(kind: str) -> bool:
    try:
        return time.time() - _failure(kind).stat().st_mtime < RETRY_AFTER_S
    except OSError:
        return False


def _record_failure(kind: str, why: str) -> None:
    try:
        VENV.mkdir(parents=True, exist_ok=True)
        _failure(kind).write_text(why[:400] + "\n")
    except OSError:
        pass


def _run(command: list[str]) -> str | None:
    """Run an install step; None when it worked, else the last lines of what it said."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"took more than {INSTALL_TIMEOUT_S} s"
    except OSError as error:
        return str(error)
    if done.returncode == 0:
        return None
    lines = [line for line in (done.stderr or done.stdout).strip().splitlines()
             if line.strip() and not line.startswith("WARNING: Location")]
    return " | ".join(lines[-3:]) or f"exit status {done.returncode}"


def _versions(distributions: tuple[str, ...]) -> dict[str, str]:
    script = ("import importlib.metadata as m, json, sys\n"
              "out = {}\n"
              "for name in sys.argv[1:]:\n"
              "    try: out[name] = m.version(name)\n"
              "    except m.PackageNotFoundError: pass\n"
              "print(json.dumps(out))\n")
    try:
        done = subprocess.run([str(_python()), "-c", script, *distributions], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        return json.loads(done.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


def command(kind: str, root: Path, port: int, workers: int) -> list[str]:
    """The peer's command line; `env` hands it the folder to serve (bench/peer_apps.py reads it)."""
    env = ["env", f"{ROOT_VARIABLE}={root}"]
    if kind == "uvicorn":
        # uvicorn's defaults pick uvloop and httptools when installed (uvicorn[standard] installs them)
        return [*env, str(_program(kind)), "--factory", f"{APPS}:make_starlette", "--app-dir", str(BENCH),
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log",
                "--log-level", "warning"]
    if kind == "aiohttp":
        # gunicorn logs no access by default (no --access-logfile)
        return [*env, str(_program(kind)), "--pythonpath", str(BENCH),
                "--worker-class", "aiohttp.GunicornUVLoopWebWorker", "--workers", str(workers),
                "--bind", f"127.0.0.1:{port}", "--log-level", "warning", f"{APPS}:make_aiohttp()"]
    if kind == "granian":
        # the route "" (not "/": granian joins the mount and what follows the route without a
        # slash) maps every path to the mount; what is not there is granian's own 404, from Rust
        return [*env, str(_program(kind)), "--interface", "rsgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--static-path-route", "", "--static-path-mount", str(root),
                "--working-dir", str(BENCH), "--log-level", "warning", f"{APPS}:granian_fallback"]
    raise ValueError(f"unknown Python-hosted peer {kind!r}")


def describe(kind: str, workers: int) -> str:
    versions = installed(kind) or {}
    shown = ", ".join(f"{name} {version}" for name, version in versions.items())
    if kind == "uvicorn":
        text = (f"uvicorn --factory peer_apps:make_starlette --workers {workers} --no-access-log "
                "(Starlette StaticFiles(directory=ROOT, html=True) mounted at /; uvloop and httptools)")
    elif kind == "aiohttp":
        text = (f"gunicorn 'peer_apps:make_aiohttp()' --worker-class aiohttp.GunicornUVLoopWebWorker "
                f"--workers {workers} (app.router.add_static('/', ROOT, show_index=True); no access log)")
    elif kind == "granian":
        text = (f"granian --interface rsgi --workers {workers} --static-path-route '' "
                "--static-path-mount ROOT peer_apps:granian_fallback (files served from Rust; access log off "
                "by default)")
    else:
        raise ValueError(kind)
    return text + (f"; {shown}" if shown else "")
