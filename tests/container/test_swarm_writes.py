"""deploy/stack.yaml with deploy/stack.write.yaml on a single-node swarm: uploads sent to each
task land in the one shared folder, every task serves every upload at once, two uploads to one
name through two tasks never mix, and nothing temporary is left. (The folder is a bind mount of
this node; across nodes it is the same path on a shared file system, as the overlay says.)

Deployed as tests/container/test_swarm.py does (no routing mesh here: dnsrr and a client on the
stack's network)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.container.dockerctl import REPO, make_site, run, unique
from tests.container.test_swarm import _PROBLEM, all_up, docker, swarm, wait_until  # noqa: F401

if _PROBLEM:
    pytest.skip(f"container tests need a Docker engine: {_PROBLEM}", allow_module_level=True)

pytestmark = pytest.mark.container

REPLICAS = 3
UID = 10001  # the image's user

# on the stack's network: a PUT through each task, every upload read back through every task,
# then two 4 MiB uploads to one name through two tasks at once
CLIENT_PY = r"""
import http.client, json, socket, sys, threading
name = sys.argv[1]
tasks = sorted({info[4][0] for info in socket.getaddrinfo(name, 8000, type=socket.SOCK_STREAM)})
def call(address, method, path, body=None):
    conn = http.client.HTTPConnection(address, 8000, timeout=60)
    conn.request(method, path, body=body)
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    return reply.status, data
report = {'tasks': tasks, 'put': {}, 'read': {}, 'race': []}
for index, address in enumerate(tasks):
    body = b'via %s\n' % address.encode()
    report['put'][address] = call(address, 'PUT', '/uploads/from-%d.txt' % index, body)[0]
for address in tasks:
    report['read'][address] = [call(address, 'GET', '/uploads/from-%d.txt' % index)[1].decode()
                               for index in range(len(tasks))]
def race(address, fill):
    report['race'].append(call(address, 'PUT', '/uploads/race.bin', fill * (4 << 20))[0])
threads = [threading.Thread(target=race, args=(tasks[i % len(tasks)], fill))
           for i, fill in enumerate((b'a', b'b'))]
for thread in threads: thread.start()
for thread in threads: thread.join()
report['race_read'] = sorted({call(address, 'GET', '/uploads/race.bin')[1][:1].decode() for address in tasks})
report['listing'] = call(tasks[0], 'GET', '/uploads/?format=json')[1].decode()
print(json.dumps(report))
"""


@pytest.fixture
def write_stack(image, swarm) -> Iterator[dict]:  # noqa: F811 - the swarm fixture, imported
    base = Path(tempfile.mkdtemp(prefix="cgibox-swarm-writes-"))
    serve_dir, cgi_dir = make_site(base)
    uploads = serve_dir / "uploads"
    uploads.mkdir()
    os.chown(uploads, UID, UID)  # the one folder the tasks may write (the rest stays root's)
    name = unique("cgiboxwrites").replace("-", "")
    document = yaml.safe_load((REPO / "deploy" / "stack.yaml").read_text())
    service = document["services"]["cgibox"]
    service.pop("ports")
    service["deploy"]["endpoint_mode"] = "dnsrr"
    service["healthcheck"].update(interval="1s", start_period="5s")
    stack_file = base / "stack.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    overlay = base / "stack.write.yaml"
    shutil.copyfile(REPO / "deploy" / "stack.write.yaml", overlay)
    env = {"CGIBOX_IMAGE": image, "SERVE_DIR": str(serve_dir), "CGI_DIR": str(cgi_dir),
           "CGIBOX_REPLICAS": str(REPLICAS), "CGIBOX_WRITE": "/uploads/*"}
    deployed = run(["docker", "stack", "deploy", "--resolve-image", "never", "-c", str(stack_file),
                    "-c", str(overlay), name], timeout=120, env={**os.environ, **env})
    assert deployed.returncode == 0, deployed.stderr
    try:
        yield {"name": name, "service": f"{name}_cgibox", "network": f"{name}_cgibox", "uploads": uploads,
               "cgi_dir": cgi_dir}
    finally:
        docker("stack", "rm", name, check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_uploads_through_any_task_land_in_the_shared_folder(image, write_stack):
    service = write_stack["service"]
    wait_until(lambda: all_up(service), f"{REPLICAS} running, healthy tasks")
    inspected = json.loads(docker("service", "inspect", service).stdout)[0]
    spec = inspected["Spec"]["TaskTemplate"]["ContainerSpec"]
    mounts = {m["Target"]: m for m in spec["Mounts"]}
    assert spec["ReadOnly"] is True  # the image's root stays read-only
    assert not mounts["/srv/www"].get("ReadOnly") and mounts["/srv/cgi-bin"]["ReadOnly"] is True

    client = unique("cgiboxwriteclient")
    done = docker("run", "--name", client, "--network", write_stack["network"], "--entrypoint", "python3",
                  image, "-c", CLIENT_PY, f"tasks.{service}", timeout=300, check=False)
    docker("rm", "-f", client, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"uploads through the tasks: {report}")
    tasks = report["tasks"]
    assert len(tasks) == REPLICAS
    assert set(report["put"].values()) == {201}
    wanted = [f"via {address}\n" for address in tasks]
    assert all(read == wanted for read in report["read"].values()), report["read"]
    assert sorted(report["race"]) == [204, 204] or sorted(report["race"]) == [201, 204]
    assert len(report["race_read"]) == 1  # every task serves the same winner
    uploads = write_stack["uploads"]
    race = (uploads / "race.bin").read_bytes()
    assert race in (b"a" * (4 << 20), b"b" * (4 << 20))
    names = sorted(os.listdir(uploads))
    assert names == sorted([f"from-{i}.txt" for i in range(len(tasks))] + ["race.bin"])
    assert all((uploads / n).stat().st_uid == UID for n in names)
    assert os.listdir(write_stack["cgi_dir"]) == []
