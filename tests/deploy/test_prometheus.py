"""deploy/prometheus/: promtool accepts the scrape configuration and the recording rules, and a real
Prometheus (Debian's package) scraping three cgibox processes, one per front, through the Kubernetes
job's own relabelling, counts exactly the requests this test sent, and records the fleet's rules."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.behaviour import site
from tests.container.dockerctl import free_port
from tests.servers import REPO, start_server

PROMETHEUS = REPO / "deploy" / "prometheus"
CONFIG, RULES = PROMETHEUS / "prometheus.yml", PROMETHEUS / "rules.yml"
PROMTOOL, PROMETHEUS_BIN = shutil.which("promtool"), shutil.which("prometheus")
NO_PROMETHEUS = "needs Debian's prometheus package (promtool, prometheus): apt-get install prometheus"
# Debian builds Prometheus without Kubernetes discovery; the job is then checked with its
# relabelling unchanged and file discovery standing in (the live test does the same)
NO_KUBERNETES_SD = "field kubernetes_sd_configs not found"

FLEET = ("threading", "forking", "gunicorn-gthread")  # one process group per front


def promtool(*args: str) -> subprocess.CompletedProcess:
    assert PROMTOOL
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


def pods_job(targets_file: Path) -> dict:
    """The repository's Kubernetes pod job, discovering from a file instead of the API server."""
    config = yaml.safe_load(CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if "kubernetes_sd_configs" in j]
    del job["kubernetes_sd_configs"]
    job["file_sd_configs"] = [{"files": [str(targets_file)], "refresh_interval": "1s"}]
    return job


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMETHEUS)
def test_promtool_accepts_the_rules():
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMETHEUS)
def test_promtool_accepts_the_scrape_configuration(tmp_path):
    done = promtool("check", "config", "--syntax-only", str(CONFIG))
    if done.returncode != 0 and NO_KUBERNETES_SD in done.stdout + done.stderr:
        config = yaml.safe_load(CONFIG.read_text())
        config["rule_files"] = [str(RULES)]
        config["scrape_configs"] = [pods_job(tmp_path / "pods.json") if "kubernetes_sd_configs" in job
                                    else job for job in config["scrape_configs"]]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        done = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = {job["job_name"]: job for job in yaml.safe_load(CONFIG.read_text())["scrape_configs"]}
    assert jobs["cgibox-swarm"]["dns_sd_configs"][0]["names"] == ["tasks.cgibox_cgibox"]
    assert "kubernetes_sd_configs" in jobs["cgibox-pods"]


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMETHEUS)
def test_promtool_rejects_a_broken_rule(tmp_path):
    broken = tmp_path / "rules.yml"
    broken.write_text(RULES.read_text().replace("sum by (job) (rate(cgibox_requests_total[1m]))",
                                                "sum by (job) (rate(cgibox_requests_total[1m])"))
    assert promtool("check", "rules", str(broken)).returncode != 0


# ------------------------------------------------------------------ a real Prometheus


def query(port: int, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as reply:
        document = json.load(reply)
    assert document["status"] == "success", document
    return document["data"]["result"]


def scalar(port: int, promql: str) -> float | None:
    result = query(port, promql)
    return float(result[0]["value"][1]) if result else None


def wait_until(check, what: str, timeout: float = 60.0):
    """Poll `check` (bounded) until it returns something true; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"{what}: still {value!r} after {timeout} s"
            return value
        time.sleep(0.5)


@pytest.fixture
def fleet(tmp_path):
    (tmp_path / "site").mkdir()
    root, cgi_dir = site.build(tmp_path / "site")
    servers = []
    try:
        for front in FLEET:
            servers.append(start_server(front, root, cgi_dir, tmp_path / "logs"))
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def prometheus(tmp_path, fleet):
    """Prometheus on 127.0.0.1, scraping every second the fleet as Kubernetes pods would be found."""
    targets = tmp_path / "pods.json"
    pods = [{"targets": ["127.0.0.1:1"],  # the pod's IP; the annotation names the port
             "labels": {"__meta_kubernetes_pod_label_app_kubernetes_io_name": "cgibox",
                        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
                        "__meta_kubernetes_pod_annotation_prometheus_io_port": str(server.port),
                        "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
                        "__meta_kubernetes_namespace": "test",
                        "__meta_kubernetes_pod_name": f"cgibox-{server.front}"}} for server in fleet]
    # a pod that does not ask to be scraped, and one of another app: both must be left alone
    pods.append({"targets": [f"127.0.0.1:{fleet[0].port}"],
                 "labels": {"__meta_kubernetes_pod_label_app_kubernetes_io_name": "cgibox",
                            "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "false"}})
    pods.append({"targets": [f"127.0.0.1:{fleet[0].port}"],
                 "labels": {"__meta_kubernetes_pod_label_app_kubernetes_io_name": "other",
                            "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true"}})
    targets.write_text(json.dumps(pods))
    job = pods_job(targets)
    job.update(scrape_interval="1s", scrape_timeout="1s")
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "rule_files": [str(RULES)], "scrape_configs": [job]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")
    process = subprocess.Popen(
        [PROMETHEUS_BIN, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path)
    try:
        def ready():
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited: {(tmp_path / 'prometheus.log').read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as reply:
                    return reply.status == 200
            except OSError:
                return False
        wait_until(ready, "Prometheus ready")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.skipif(PROMETHEUS_BIN is None, reason=NO_PROMETHEUS)
def test_prometheus_counts_what_the_fleet_answered(fleet, prometheus):
    port = prometheus
    wait_until(lambda: scalar(port, 'count(up{job="cgibox-pods"} == 1)') == len(FLEET), "3 targets up")
    # relabelled as the pod job says: the annotation's port, the pod's name; the others dropped
    assert scalar(port, "count(up)") == len(FLEET)
    pods = {r["metric"]["pod"]: r["metric"] for r in query(port, "up")}
    assert set(pods) == {f"cgibox-{s.front}" for s in fleet}
    assert {m["instance"] for m in pods.values()} == {f"127.0.0.1:{s.port}" for s in fleet}
    builds = {r["metric"]["front"] for r in query(port, "cgibox_build_info")}
    assert builds == {"threading", "forking", "gunicorn"}

    paths = {"file": ["/hello.txt", "/index-dir/"], "listing": ["/plain-dir/"], "cgi": ["/cgi-bin/hello"],
             "error": ["/missing"]}
    sent = {kind: 0 for kind in paths}
    for round_ in range(5):  # 5 rounds x 5 paths, spread over the three instances: 25 requests
        for kind, kind_paths in paths.items():
            for path in kind_paths:
                server = fleet[(round_ + sent[kind]) % len(fleet)]
                assert server.get(path).status in (200, 404)
                sent[kind] += 1
    total = sum(sent.values())

    # Prometheus' own scrapes are requests too (route "internal"): everything else is ours
    ours = 'sum(cgibox_request_duration_seconds_count{route!="internal"})'
    wait_until(lambda: scalar(port, ours) == total, f"the fleet's timed requests reach {total}")
    assert scalar(port, 'sum(cgibox_requests_total) - sum(cgibox_request_duration_seconds_count'
                        '{route="internal"})') == total
    by_route = {r["metric"]["route"]: float(r["value"][1])
                for r in query(port, "sum by (route) (cgibox_request_duration_seconds_count)")}
    assert {kind: by_route[kind] for kind in sent} == sent
    assert scalar(port, 'sum(cgibox_responses_total{code="404"})') == sent["error"]
    assert scalar(port, "sum(cgibox_cgi_runs_total)") == sent["cgi"]

    # the recording rules turn it into the fleet's view
    wait_until(lambda: (scalar(port, 'job:cgibox_requests:rate1m{job="cgibox-pods"}') or 0) > 0,
               "requests/s recorded")
    wait_until(lambda: scalar(port, 'job_route:cgibox_request_duration_seconds:p99_5m{route="cgi"}'),
               "p99 of the CGI route recorded")
    assert scalar(port, 'job:cgibox_responses_5xx:ratio_rate5m{job="cgibox-pods"}') == 0
    assert scalar(port, 'job:cgibox_instances_up:sum{job="cgibox-pods"}') == len(FLEET)
