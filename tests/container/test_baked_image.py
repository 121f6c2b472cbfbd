"""deploy/kubernetes/overlays/baked-image/Dockerfile, built as its comment says (from the repository,
FROM the image under test): the baked content is served and its scripts run, read-only, as uid 10001."""

from __future__ import annotations

import pytest

from tests.container.dockerctl import (
    REPO,
    UID,
    engine_problem,
    free_port,
    http_request,
    run,
    unique,
    wait_http,
)

_PROBLEM = engine_problem()
if _PROBLEM:
    pytest.skip(f"container tests need a Docker engine: {_PROBLEM}", allow_module_level=True)

pytestmark = pytest.mark.container

DOCKERFILE = REPO / "deploy" / "kubernetes" / "overlays" / "baked-image" / "Dockerfile"


def test_baked_content_is_served_read_only(image):
    tag = f"cgibox-test-baked:{unique('t')}"
    container = unique("cgiboxbaked")
    port = free_port()
    run(["docker", "build", "-q", "-t", tag, "--build-arg", f"CGIBOX_IMAGE={image}", "-f", str(DOCKERFILE),
         str(REPO)], timeout=300)
    try:
        # as the Kubernetes Deployment runs it: read-only root, no capabilities, a scratch /tmp
        run(["docker", "run", "-d", "--name", container, "--read-only", "--tmpfs", "/tmp",
             "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
             "-p", f"127.0.0.1:{port}:8000", tag])
        wait_http(port)
        page = http_request(port, "GET", "/site/index.html")
        assert page.status == 200 and page.body == (REPO / "static" / "site" / "index.html").read_bytes()
        script = http_request(port, "GET", "/cgi-bin/hello")
        assert script.status == 200 and b"Hello from cgibox" in script.body
        assert run(["docker", "exec", container, "id", "-u"]).stdout.strip() == str(UID)
        # the server cannot change what it serves
        touched = run(["docker", "exec", container, "touch", "/srv/www/new.txt"], check=False)
        assert touched.returncode != 0
    finally:
        run(["docker", "rm", "-f", container], check=False)
        run(["docker", "image", "rm", "-f", tag], check=False)
