"""compose.write.yaml and deploy/stack.write.yaml, read as the files they are (the Swarm one is
deployed by tests/container/test_swarm_writes.py): the served folder read-write, everything else
as locked down as without them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import yaml

from tests.servers import REPO


def test_the_stack_overlay_makes_only_the_served_folder_writable():
    overlay = yaml.safe_load((REPO / "deploy" / "stack.write.yaml").read_text())
    service = overlay["services"]["cgibox"]
    (mount,) = service["volumes"]
    assert mount["target"] == "/srv/www" and mount["read_only"] is False and mount["type"] == "bind"
    assert "CGIBOX_WRITE" in service["environment"]
    assert set(service) == {"environment", "volumes"}  # nothing else of the stack changes


@pytest.mark.skipif(shutil.which("docker") is None, reason="docker is not installed")
def test_compose_with_the_write_overlay_keeps_the_image_read_only():
    env = {**os.environ, "CGIBOX_WRITE": "/uploads/*", "SERVE_DIR": str(REPO / "static")}
    done = subprocess.run(["docker", "compose", "-f", "compose.yaml", "-f", "compose.write.yaml", "--profile",
                           "gunicorn", "config", "--format", "json"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    if done.returncode != 0 and "compose" in done.stderr and "not a docker command" in done.stderr:
        pytest.skip("docker has no compose plugin")
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    for name in ("cgibox", "cgibox-gunicorn"):
        service = services[name]
        mounts = {volume["target"]: volume for volume in service["volumes"]}
        assert not mounts["/srv/www"].get("read_only")
        assert mounts["/srv/cgi-bin"]["read_only"] is True
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert service["environment"]["CGIBOX_WRITE"] == "/uploads/*"
        assert "user" not in service  # the image's own non-root user
