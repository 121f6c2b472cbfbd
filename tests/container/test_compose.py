"""The appliance as a user runs it: the image built from the checkout, started by compose.yaml.

Talks to containers only through 127.0.0.1; every project is torn down (`compose down -v`).
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.container.dockerctl import (
    UID,
    Project,
    add_script,
    container_processes,
    engine_problem,
    free_port,
    http_request,
    run,
    unique,
    wait_healthy,
    wait_http,
)

_PROBLEM = engine_problem()
if _PROBLEM:
    pytest.skip(f"container tests need a Docker engine: {_PROBLEM}", allow_module_level=True)

pytestmark = pytest.mark.container

# leaves a grandchild behind: the subshell exits at once and its `sleep` is orphaned; without an
# init that reaps, the sleep would stay a zombie once it exits
ZOMBIE_SCRIPT = """\
printf 'Content-Type: text/plain\\n\\n'
( /bin/sleep 2 </dev/null >/dev/null 2>&1 & echo "grandchild=$!" )
"""


def grandchild_pid(body: str) -> int:
    return int(body.split("grandchild=", 1)[1].split()[0])


def assert_orphan_reaped(list_processes, pid: int) -> None:
    """Within a few seconds the orphan has exited and been reaped, and no process is a zombie."""
    deadline = time.monotonic() + 10
    while True:
        processes = list_processes()
        assert any("/opt/venv/bin/cgibox" in p["cmd"] for p in processes), processes  # the scan works
        zombies = [p for p in processes if p["state"] == "Z"]
        if not zombies and all(p["pid"] != pid for p in processes):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"zombies {zombies}; grandchild {pid} still listed: {processes}")
        time.sleep(0.5)


# ------------------------------------------------------------------ the default service


def test_healthcheck_reports_healthy(box):
    assert box.inspect("{{.State.Health.Status}}") == "healthy"
    assert "/healthz" in box.inspect("{{json .Config.Healthcheck.Test}}")


def test_serves_a_file(box):
    reply = box.get("/hello.txt")
    assert reply.status == 200
    assert reply.body == b"hello from the container test\n"
    assert reply.header("Content-Type").startswith("text/plain")
    assert reply.header("ETag")


def test_lists_a_folder(box):
    page = box.get("/sub%20dir/")
    assert page.status == 200
    assert page.header("Content-Type").startswith("text/html")
    assert "a.txt" in page.text and "b.txt" in page.text
    listing = box.get("/sub%20dir/?format=json").json()
    assert sorted(entry["name"] for entry in listing["entries"]) == ["a.txt", "b.txt"]


def test_stats_json(box):
    box.get("/hello.txt")
    stats = box.get("/stats", Accept="application/json").json()
    assert stats["front"] == "threading"
    assert stats["requests_total"] >= 1
    assert {"uptime_seconds", "started_at", "responses", "bytes_sent", "cgi_runs", "version"} <= set(stats)


def test_404_is_the_templated_page(box):
    reply = box.get("/no-such-%3Cb%3Efile")
    assert reply.status == 404
    assert reply.header("Content-Type").startswith("text/html")
    assert "<html" in reply.text.lower()
    assert "<b>" not in reply.text
    as_json = box.get("/no-such-file", Accept="application/json")
    assert as_json.status == 404
    assert as_json.json()["status"] == 404


def test_runs_as_the_non_root_user(box):
    processes = box.processes()
    assert any("/opt/venv/bin/cgibox" in p["cmd"] for p in processes), processes
    for process in processes:
        assert process["uids"] == [UID] * 4, process  # real, effective, saved, filesystem
    assert box.exec("id", "-u").stdout.strip() == str(UID)
    # the image's user is a number, so runAsNonRoot-style checks can verify it
    assert box.inspect("{{.Config.User}}").startswith(str(UID))


def test_an_init_is_pid_1(box):
    by_pid = {p["pid"]: p for p in box.processes()}
    assert by_pid[1]["comm"] in ("docker-init", "tini"), by_pid[1]
    assert not by_pid[1]["cmd"].split()[0].endswith("cgibox")


def test_a_script_dropped_in_after_start_runs(box):
    name = unique("added") + ".sh"
    add_script(box.cgi_dir, name, "printf 'Content-Type: text/plain\\n\\n'\necho \"uid=$(/usr/bin/id -u)\"\n")
    reply = box.get(f"/cgi-bin/{name}")
    assert reply.status == 200, reply.text[-300:]
    assert reply.text.strip() == f"uid={UID}"


def test_a_script_cannot_write_into_the_served_folder(box):
    before = {p.relative_to(box.serve_dir): p.read_bytes() for p in box.serve_dir.rglob("*") if p.is_file()}
    add_script(box.cgi_dir, "writer.sh", """\
printf 'Content-Type: text/plain\\n\\n'
/usr/bin/touch /srv/www/x 2>/dev/null; echo "touch=$?"
( echo changed > /srv/www/hello.txt ) 2>/dev/null; echo "overwrite=$?"
/bin/mkdir /srv/www/newdir 2>/dev/null; echo "mkdir=$?"
""")
    reply = box.get("/cgi-bin/writer.sh")
    assert reply.status == 200, reply.text[-300:]
    results = dict(line.split("=") for line in reply.text.split())
    assert results.keys() == {"touch", "overwrite", "mkdir"}
    assert all(code != "0" for code in results.values()), results
    after = {p.relative_to(box.serve_dir): p.read_bytes() for p in box.serve_dir.rglob("*") if p.is_file()}
    assert after == before
    assert not (box.serve_dir / "newdir").exists()


def test_a_scripts_orphaned_grandchild_leaves_no_zombie(box):
    add_script(box.cgi_dir, "orphan.sh", ZOMBIE_SCRIPT)
    reply = box.get("/cgi-bin/orphan.sh")
    assert reply.status == 200, reply.text[-300:]
    assert_orphan_reaped(box.processes, grandchild_pid(reply.text))


# ------------------------------------------------------------------ the gunicorn profile


def test_gunicorn_profile_is_healthy(gunicorn_box):
    assert gunicorn_box.inspect("{{.State.Health.Status}}") == "healthy"


def test_gunicorn_profile_serves_a_file(gunicorn_box):
    reply = gunicorn_box.get("/hello.txt")
    assert reply.status == 200
    assert reply.body == b"hello from the container test\n"


def test_gunicorn_profile_lists_a_folder(gunicorn_box):
    listing = gunicorn_box.get("/sub%20dir/?format=json").json()
    assert sorted(entry["name"] for entry in listing["entries"]) == ["a.txt", "b.txt"]
    assert "b.txt" in gunicorn_box.get("/sub%20dir/").text


def test_gunicorn_profile_stats_name_the_front(gunicorn_box):
    stats = gunicorn_box.get("/stats?format=json").json()
    assert stats["front"] == "gunicorn"


def test_gunicorn_profile_logs_no_errors(gunicorn_box):
    """gunicorn starts cleanly on the read-only root file system (e.g. no control socket it cannot create)."""
    gunicorn_box.get("/hello.txt")
    logs = gunicorn_box.logs()
    assert "[ERROR]" not in logs and "Traceback" not in logs, logs


def test_gunicorn_profile_runs_scripts_as_the_non_root_user(gunicorn_box):
    add_script(gunicorn_box.cgi_dir, "who.sh", "printf 'Content-Type: text/plain\\n\\n'\n/usr/bin/id -u\n")
    reply = gunicorn_box.get("/cgi-bin/who.sh")
    assert reply.status == 200, reply.text[-300:]
    assert reply.text.strip() == str(UID)
    assert all(p["uids"] == [UID] * 4 for p in gunicorn_box.processes())


# ------------------------------------------------------------------ first-minute edges (issue 24 A4)


def test_health_probes_are_kept_out_of_the_log_and_stats(box):
    """The HEALTHCHECK probes every 5 s (its User-Agent marks it); only other /healthz are logged."""
    deadline = time.monotonic() + 30
    while box.inspect("{{len .State.Health.Log}}") in ("", "0", "1") and time.monotonic() < deadline:
        time.sleep(1)  # at least two probes have run
    assert "cgibox-healthcheck" not in box.logs()
    box.get("/healthz", User_Agent="curl/container-test")
    deadline = time.monotonic() + 10
    while "curl/container-test" not in box.logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "curl/container-test" in box.logs()


def test_the_start_up_lines_say_the_port_is_the_containers(box):
    logs = box.logs()
    assert "8000 is the container's port" in logs and "0.0.0.0:8000" not in logs


def test_a_mistyped_serve_dir_is_refused_not_served_empty(image, site, tmp_path):
    serve_dir, cgi_dir = site
    typo = serve_dir.parent / "no-such-folder"
    project = Project(image, typo, cgi_dir)
    try:
        done = project.compose("up", "-d", "--no-build", "--no-deps", "cgibox", timeout=120, check=False)
        assert done.returncode != 0
        assert "does not exist" in done.stderr + done.stdout
        assert not typo.exists()  # Docker made no empty folder in its place
    finally:
        project.down()


# ------------------------------------------------------------------ stopping


@pytest.mark.parametrize("service", ["cgibox", "cgibox-gunicorn"])
def test_compose_down_is_clean_and_quick(fresh_project, service):
    """`docker compose down` from running: SIGTERM reaches the server through the inits and it exits 0
    in a few seconds, long before compose's SIGKILL (a correctness bound, not a benchmark)."""
    project = fresh_project(service)
    assert project.get("/hello.txt").status == 200
    # `docker wait` reports the exit status even though `down` removes the container right after
    waiter = subprocess.Popen(["docker", "wait", project.container()], stdout=subprocess.PIPE, text=True)
    try:
        down_seconds = project.down()
        exit_status, _ = waiter.communicate(timeout=30)
    finally:
        waiter.kill()
    assert down_seconds < 15, f"compose down took {down_seconds:.1f} s"
    assert exit_status.strip() == "0", f"exit status {exit_status!r}"
    assert project.compose("ps", "-a", "-q").stdout.strip() == ""


# ------------------------------------------------------------------ the image alone (no compose)


def test_the_zombie_check_sees_a_zombie_without_an_init(image):
    """Control for the zombie tests: with cgibox itself as PID 1 (no init at all) an orphan stays a
    zombie, and the /proc scan those tests rely on reports it."""
    name = unique("cgiboxtest")
    try:
        run(["docker", "run", "-d", "--name", name, "--entrypoint", "cgibox", image])
        run(["docker", "exec", name, "sh", "-c", "( /bin/sleep 0.2 </dev/null >/dev/null 2>&1 & )"])
        deadline = time.monotonic() + 10
        while True:
            processes = container_processes(name)
            if any(p["state"] == "Z" and p["comm"] == "sleep" for p in processes):
                break
            assert time.monotonic() < deadline, f"no zombie seen: {processes}"
            time.sleep(0.3)
    finally:
        run(["docker", "rm", "-f", "-v", name], check=False)


def test_image_alone_reaps_and_follows_cgibox_port(image, site):
    """`docker run` without --init: the image's own tini reaps orphans as PID 1, and its HEALTHCHECK
    follows CGIBOX_PORT."""
    serve_dir, cgi_dir = site
    add_script(cgi_dir, "orphan.sh", ZOMBIE_SCRIPT)
    name, port = unique("cgiboxtest"), free_port()
    try:
        run(["docker", "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
             "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
             "--health-interval", "1s", "--health-start-period", "30s",
             "-e", "CGIBOX_PORT=9000", "-p", f"127.0.0.1:{port}:9000",
             "-v", f"{serve_dir}:/srv/www:ro", "-v", f"{cgi_dir}:/srv/cgi-bin:ro", image])
        wait_http(port)
        assert wait_healthy(name, 30) == "healthy", run(["docker", "logs", name], check=False).stdout
        by_pid = {p["pid"]: p for p in container_processes(name)}
        assert by_pid[1]["comm"] == "tini", by_pid[1]
        reply = http_request(port, "GET", "/cgi-bin/orphan.sh")
        assert reply.status == 200, reply.text[-300:]
        assert_orphan_reaped(lambda: container_processes(name), grandchild_pid(reply.text))
    finally:
        run(["docker", "rm", "-f", "-v", name], check=False)
