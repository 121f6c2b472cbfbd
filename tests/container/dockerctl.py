"""Drive the real image and compose.yaml: build once, bring projects up on free 127.0.0.1 ports.

Every container is reached only through 127.0.0.1; every project is torn down with `down -v`.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import REPO, Reply

COMPOSE_FILE = REPO / "compose.yaml"
UID = 10001  # the image's user (Dockerfile: USER 10001:10001)

# compose.yaml's variables and anything else of the caller's that could change what a test starts
_SCRUBBED_PREFIXES = ("CGIBOX_", "COMPOSE_", "SERVE_DIR", "CGI_DIR", "DOCKER_DEFAULT_PLATFORM")

# one line of JSON about every process in the container, read from /proc (slim has no `ps`)
PROCESSES_PY = r"""
import json, os
out = []
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        stat = open('/proc/%s/stat' % pid).read()
        status = open('/proc/%s/status' % pid).read()
        cmd = open('/proc/%s/cmdline' % pid, 'rb').read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        continue
    comm = stat[stat.index('(') + 1:stat.rindex(')')]
    fields = stat[stat.rindex(')') + 2:].split()
    uids = [line.split()[1:] for line in status.splitlines() if line.startswith('Uid:')][0]
    out.append({'pid': int(pid), 'comm': comm, 'state': fields[0], 'ppid': int(fields[1]),
                'uids': [int(u) for u in uids], 'cmd': cmd.strip()})
print(json.dumps(out))
"""


def engine_problem() -> str | None:
    """None if `docker info` answers, else why the container tests cannot run."""
    if shutil.which("docker") is None:
        return "no `docker` command on this machine (bash ../shared/container/engine.sh installs one)"
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 30 s"
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine running (`docker info`: {reason})"
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        return "`docker compose` (v2) is not installed"
    return None


def run(args: list[str], timeout: float = 120, check: bool = True, env: dict[str, str] | None = None,
        **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO, **kwargs)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}\n--- stdout\n{done.stdout}"
                             f"\n--- stderr\n{done.stderr}")
    return done


def free_port() -> int:
    """A port nobody listens on at 127.0.0.1 right now (the engine binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def build_image() -> str:
    """`docker build` the checkout under a tag of its own (so the user's cgibox:latest is untouched)."""
    tag = f"cgibox-test:{unique('t')}"
    run(["docker", "build", "-q", "-t", tag, str(REPO)], timeout=900)
    return tag


def remove_image(tag: str) -> None:
    run(["docker", "image", "rm", "-f", tag], check=False)


def http_request(port: int, method: str, path: str, headers: dict[str, str] | None = None,
                 timeout: float = 10.0) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, resp.reason, resp.headers, resp.read())
    finally:
        conn.close()


def wait_http(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if http_request(port, "GET", "/healthz", timeout=2).status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing answers /healthz on 127.0.0.1:{port} after {timeout} s")
        time.sleep(0.2)


def wait_healthy(container: str, timeout: float = 60.0) -> str:
    """Poll the container's HEALTHCHECK status until it is "healthy" (or `timeout`); return the last one."""
    deadline = time.monotonic() + timeout
    while True:
        status = run(["docker", "inspect", "--format", "{{.State.Health.Status}}", container]).stdout.strip()
        if status == "healthy" or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def container_processes(container: str) -> list[dict]:
    """Every process of a running container (pid, ppid, state, uids, comm, cmd), read from /proc."""
    return json.loads(run(["docker", "exec", container, "python3", "-c", PROCESSES_PY]).stdout)


def make_site(base: Path) -> tuple[Path, Path]:
    """(serve_dir, cgi_dir): world-readable, since the container reads them as uid 10001."""
    serve, cgi = base / "www", base / "cgi-bin"
    (serve / "sub dir").mkdir(parents=True)
    cgi.mkdir()
    (serve / "hello.txt").write_text("hello from the container test\n")
    (serve / "sub dir" / "a.txt").write_text("a\n")
    (serve / "sub dir" / "b.txt").write_text("bb\n")
    for path in (base, serve, cgi, serve / "sub dir"):
        path.chmod(0o755)
    for path in serve.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
    return serve, cgi


def add_script(cgi_dir: Path, name: str, body: str) -> Path:
    """Drop an executable /bin/sh CGI script into the (mounted) cgi dir."""
    path = cgi_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@dataclass
class Project:
    """One `docker compose -p NAME` project of compose.yaml, on temporary folders and a free port."""

    image: str
    serve_dir: Path
    cgi_dir: Path
    service: str = "cgibox"
    name: str = field(default_factory=lambda: unique("cgiboxtest"))
    port: int = field(default_factory=free_port)

    @property
    def profiles(self) -> list[str]:
        return ["--profile", "gunicorn"] if self.service == "cgibox-gunicorn" else []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        port_variable = ("CGIBOX_GUNICORN_PUBLISH_PORT" if self.service == "cgibox-gunicorn"
                         else "CGIBOX_PUBLISH_PORT")
        env.update({
            "CGIBOX_IMAGE": self.image,
            "CGIBOX_BIND": "127.0.0.1",  # explicit, whatever a local .env says
            port_variable: str(self.port),
            "SERVE_DIR": str(self.serve_dir),
            "CGI_DIR": str(self.cgi_dir),
        })
        return env

    def compose(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return run(["docker", "compose", "-f", str(COMPOSE_FILE), "-p", self.name, *self.profiles, *args],
                   timeout=timeout, check=check, env=self.env())

    def up(self) -> None:
        done = self.compose("up", "-d", "--wait", "--no-build", "--no-deps", self.service,
                            timeout=180, check=False)
        if done.returncode != 0:
            logs = self.compose("logs", "--no-color", check=False)
            raise AssertionError(f"compose up exited {done.returncode}\n{done.stdout}\n{done.stderr}\n"
                                 f"--- logs\n{logs.stdout}{logs.stderr}")
        wait_http(self.port)

    def down(self) -> float:
        """`docker compose down -v`; returns the seconds it took."""
        started = time.monotonic()
        self.compose("down", "-v", "--remove-orphans", timeout=120, check=False)
        return time.monotonic() - started

    def container(self) -> str:
        return self.compose("ps", "-q", self.service).stdout.strip()

    def inspect(self, template: str) -> str:
        return run(["docker", "inspect", "--format", template, self.container()]).stdout.strip()

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        return self.compose("exec", "-T", self.service, *command, check=False)

    def processes(self) -> list[dict]:
        return container_processes(self.container())

    def logs(self) -> str:
        return self.compose("logs", "--no-color", self.service, check=False).stdout

    def get(self, path: str, **headers: str) -> Reply:
        return http_request(self.port, "GET", path, {k.replace("_", "-"): v for k, v in headers.items()})
