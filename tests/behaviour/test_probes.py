"""Health-check probes (issue 24 A4), on every front: `/healthz` asked by the image's HEALTHCHECK
(User-Agent `cgibox-healthcheck`) or a Kubernetes probe (`kube-probe/...`) writes no access-log
line and counts nowhere in /stats, unless --log-probes; any other /healthz still does."""

from __future__ import annotations

import uuid

from tests.behaviour.test_stats import wait_for

PROBES = ("cgibox-healthcheck", "kube-probe/1.31")


def probe_then_mark(server, agent: str) -> str:
    """Send probes, then a marked request: once the mark is logged, the probes were handled before."""
    for _ in range(3):
        reply = server.get("/healthz", User_Agent=agent)
        assert reply.status == 200 and reply.body.strip() == b"ok"
    mark = uuid.uuid4().hex
    server.get(f"/hello.txt?{mark}")
    assert wait_for(lambda: mark in server.log()), "the marked request was never logged"
    return mark


def test_probes_are_neither_logged_nor_counted(server):
    for agent in PROBES:
        before = server.stats()["requests_total"]
        probe_then_mark(server, agent)
        assert agent not in server.log()
        # the marked request and the /stats read before it: nothing for the three probes
        target = before + 2
        after = wait_for(lambda: (s := server.stats())["requests_total"] >= target and s)  # noqa: B023
        assert after["requests_total"] - before <= 3, (before, after["requests_total"])


def test_other_healthz_requests_are_logged(server):
    agent = f"curl/{uuid.uuid4().hex}"
    server.get("/healthz", User_Agent=agent)
    assert wait_for(lambda: agent in server.log())


def test_log_probes_logs_and_counts_them(make_server):
    logged = make_server(["--log-probes"])
    before = logged.stats()["requests_total"]
    probe_then_mark(logged, "cgibox-healthcheck")
    assert "cgibox-healthcheck" in logged.log()
    after = wait_for(lambda: (s := logged.stats())["requests_total"] >= before + 5 and s)
    assert after, "the three probes were not counted"
