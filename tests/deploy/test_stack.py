"""deploy/stack.yaml, read as the file it is (tests/container/test_swarm.py deploys it): what a
rolling update without a dropped request and a locked-down task depend on."""

from __future__ import annotations

import re

import yaml

from tests.servers import REPO

STACK = REPO / "deploy" / "stack.yaml"


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)s", text)
    assert match, text
    return float(match[1])


def service() -> dict:
    return yaml.safe_load(STACK.read_text())["services"]["cgibox"]


def test_rolls_one_task_at_a_time_new_one_healthy_first():
    deploy = service()["deploy"]
    assert deploy["update_config"]["order"] == "start-first"
    assert deploy["update_config"]["parallelism"] == 1
    assert deploy["update_config"]["failure_action"] == "rollback"
    assert deploy["rollback_config"]["order"] == "start-first"
    assert deploy["restart_policy"]["condition"] == "any"
    assert re.fullmatch(r"\$\{CGIBOX_REPLICAS:-(\d+)\}", deploy["replicas"])[1] not in ("0", "1")


def test_healthcheck_and_grace_period_cover_the_graceful_timeout():
    svc = service()
    health = svc["healthcheck"]
    assert "test" not in health  # the image's own HEALTHCHECK (GET /healthz), only re-timed
    assert seconds(health["interval"]) <= 10
    assert seconds(svc["stop_grace_period"]) > float(svc["environment"]["CGIBOX_GRACEFUL_TIMEOUT"])


def test_locked_down_with_read_only_content_and_limits():
    svc = service()
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"] and svc["init"] is True
    mounts = {v["target"]: v for v in svc["volumes"]}
    assert mounts["/srv/www"]["read_only"] is True and mounts["/srv/cgi-bin"]["read_only"] is True
    assert mounts["/tmp"]["type"] == "tmpfs"
    resources = svc["deploy"]["resources"]
    assert resources["limits"]["memory"] and resources["limits"]["cpus"]
    assert resources["reservations"]["memory"]


def test_image_is_pinned_and_the_prometheus_job_finds_the_tasks():
    svc = service()
    default = re.fullmatch(r"\$\{CGIBOX_IMAGE:-(.+)\}", svc["image"])[1]
    assert default.rpartition(":")[2] not in ("", "latest")
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (swarm,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "cgibox-swarm"]
    # `docker stack deploy -c deploy/stack.yaml cgibox` names the service cgibox_cgibox
    assert swarm["dns_sd_configs"][0]["names"] == ["tasks.cgibox_cgibox"]
    assert swarm["dns_sd_configs"][0]["port"] == svc["ports"][0]["target"]
    assert yaml.safe_load(STACK.read_text())["networks"]["cgibox"]["attachable"] is True
