"""deploy/stack.yaml on a single-node swarm of the CI engine: N healthy tasks, a forced rolling
update that a client requesting all the while never notices, and `docker stack rm` that leaves
nothing behind.

These machines' kernels have no IPVS, so Swarm's routing mesh (the ingress network behind a published
port) and its virtual-IP load balancing cannot work here: the test deploys the stack without its
published port and with `endpoint_mode: dnsrr`, and its client, a container on the stack's network,
follows the task addresses that Docker's DNS gives for `tasks.<service>` before every request. The
timings are shortened (health every second, no wait between tasks); order, parallelism, healthcheck
command, mounts and limits are the file's. A swarm this test created is left again at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.container.dockerctl import REPO, engine_problem, free_port, make_site, run, unique

_PROBLEM = engine_problem()
if _PROBLEM:
    pytest.skip(f"container tests need a Docker engine: {_PROBLEM}", allow_module_level=True)

pytestmark = pytest.mark.container

STACK_FILE = REPO / "deploy" / "stack.yaml"
REPLICAS = 3

# runs in a container on the stack's network: one fresh connection per request, to whichever task
# address DNS gives now (round robin), until /tmp/stop appears; bounded in time and count
CLIENT_PY = r"""
import http.client, json, os, socket, sys, time
name, deadline, limit = sys.argv[1], time.monotonic() + float(sys.argv[2]), int(sys.argv[3])
sent, failures, seen = 0, [], {}
while sent < limit and time.monotonic() < deadline and not os.path.exists('/tmp/stop'):
    address = None
    try:
        addresses = sorted({info[4][0] for info in socket.getaddrinfo(name, 8000, type=socket.SOCK_STREAM)})
        address = addresses[sent % len(addresses)]
        conn = http.client.HTTPConnection(address, 8000, timeout=10)
        conn.request('GET', '/hello.txt')
        reply = conn.getresponse()
        body = reply.read()
        conn.close()
        if reply.status != 200 or body != b'hello from the container test\n':
            failures.append([address, 'status %d' % reply.status])
    except Exception as error:
        failures.append([address, repr(error)])
    seen[address] = seen.get(address, 0) + 1
    sent += 1
    time.sleep(0.01)
print(json.dumps({'sent': sent, 'failures': failures[:20], 'failed': len(failures), 'seen': seen}))
"""


def docker(*args: str, timeout: float = 120, check: bool = True):
    return run(["docker", *args], timeout=timeout, check=check)


def wait_until(check, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"{what}: not after {timeout} s"
            return value
        time.sleep(0.5)


@pytest.fixture(scope="module")
def swarm() -> Iterator[None]:
    """This engine as a single-node swarm manager: the one it is, or one made here and left after."""
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}").stdout.split()
    if state == ["active", "true"]:
        yield
        return
    if state[0] != "inactive":
        pytest.skip(f"the engine is in a swarm this test cannot use (state {' '.join(state)})")
    had_gwbridge = docker("network", "inspect", "docker_gwbridge", check=False).returncode == 0
    docker("swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", f"127.0.0.1:{free_port()}")
    try:
        yield
    finally:
        docker("swarm", "leave", "--force", check=False)
        if not had_gwbridge:  # `swarm init` made it; `swarm leave` keeps it
            wait_until(lambda: docker("network", "rm", "docker_gwbridge", check=False).returncode == 0
                       or docker("network", "inspect", "docker_gwbridge", check=False).returncode != 0,
                       "docker_gwbridge removed", timeout=30)


@pytest.fixture
def stack(image, swarm) -> Iterator[dict]:
    """deploy/stack.yaml deployed as a stack of its own name; removed whatever the test did."""
    base = Path(tempfile.mkdtemp(prefix="cgibox-swarm-"))
    serve_dir, cgi_dir = make_site(base)
    name = unique("cgiboxswarm").replace("-", "")
    document = yaml.safe_load(STACK_FILE.read_text())
    service = document["services"]["cgibox"]
    service.pop("ports")  # ingress needs IPVS (see the module's docstring)
    service["deploy"]["endpoint_mode"] = "dnsrr"
    service["healthcheck"].update(interval="1s", start_period="5s")
    service["deploy"]["update_config"].update(monitor="2s", delay="0s")
    stack_file = base / "stack.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    env = {"CGIBOX_IMAGE": image, "SERVE_DIR": str(serve_dir), "CGI_DIR": str(cgi_dir),
           "CGIBOX_REPLICAS": str(REPLICAS)}
    deployed = run(["docker", "stack", "deploy", "--resolve-image", "never", "-c", str(stack_file), name],
                   timeout=120, env={**os.environ, **env})
    assert deployed.returncode == 0
    info = {"name": name, "service": f"{name}_cgibox", "network": f"{name}_cgibox"}
    try:
        yield info
    finally:
        docker("stack", "rm", name, check=False)
        shutil.rmtree(base, ignore_errors=True)


def running_tasks(service: str) -> list[str]:
    lines = docker("service", "ps", service, "--filter", "desired-state=running",
                   "--format", "{{.ID}} {{.CurrentState}}").stdout.split("\n")
    return [line.split()[0] for line in lines if line.strip() and line.split()[1] == "Running"]


def healthy_containers(service: str) -> list[str]:
    return docker("ps", "--filter", f"label=com.docker.swarm.service.name={service}",
                  "--filter", "health=healthy", "--format", "{{.ID}}").stdout.split()


def all_up(service: str) -> list[str] | None:
    tasks = running_tasks(service)
    return tasks if len(tasks) == REPLICAS and len(healthy_containers(service)) == REPLICAS else None


def left_behind(name: str) -> list[str]:
    label = f"label=com.docker.stack.namespace={name}"
    return [*docker("service", "ls", "--filter", label, "-q").stdout.split(),
            *docker("ps", "-a", "--filter", label, "-q").stdout.split(),
            *docker("network", "ls", "--filter", label, "-q").stdout.split(),
            *docker("config", "ls", "--filter", label, "-q").stdout.split(),
            *docker("secret", "ls", "--filter", label, "-q").stdout.split()]


def test_stack_rolls_every_task_without_a_failed_request_and_leaves_nothing(image, stack):
    service = stack["service"]
    before = wait_until(lambda: all_up(service), f"{REPLICAS} running, healthy tasks")
    config = json.loads(docker("service", "inspect", service).stdout)[0]["Spec"]
    assert config["UpdateConfig"]["Order"] == "start-first"
    container_spec = config["TaskTemplate"]["ContainerSpec"]
    assert container_spec["ReadOnly"] is True and all(
        m["ReadOnly"] for m in container_spec["Mounts"] if m["Target"] in ("/srv/www", "/srv/cgi-bin"))

    client = unique("cgiboxswarmclient")
    docker("run", "-d", "--name", client, "--network", stack["network"], "--entrypoint", "python3", image,
           "-c", CLIENT_PY, f"tasks.{service}", "240", "20000")
    try:
        # the client is answered before the roll starts
        wait_until(lambda: "hello" in docker("exec", client, "python3", "-c",
                                             "import urllib.request as u, sys; print(u.urlopen("
                                             f"'http://tasks.{service}:8000/hello.txt', timeout=5).read())",
                                             check=False).stdout, "the client's network reaches the tasks")
        docker("service", "update", "--force", "--detach=false", "--quiet", service, timeout=300)
        after = wait_until(lambda: all_up(service), f"{REPLICAS} running, healthy tasks after the update")
        assert not set(after) & set(before), "every task is replaced"
        state = json.loads(docker("service", "inspect", service).stdout)[0].get("UpdateStatus", {})
        assert state.get("State") == "completed", state
        time.sleep(1)  # a few requests to the new tasks only
        docker("exec", client, "touch", "/tmp/stop")
        assert docker("wait", client, timeout=60).stdout.strip() == "0", docker("logs", client).stderr
        report = json.loads(docker("logs", client).stdout.strip().splitlines()[-1])
    finally:
        docker("rm", "-f", client, check=False)
    print(f"client during the roll: {report}")
    assert report["failed"] == 0, report
    assert report["sent"] >= 50, report
    # it followed the tasks: old and new addresses both answered
    assert len(report["seen"]) >= REPLICAS + 1, report

    docker("stack", "rm", stack["name"])
    assert wait_until(lambda: not left_behind(stack["name"]), "nothing of the stack left", timeout=90)
