"""core/cgi.py through App.handle, with Request objects only: routing, the slots, bodies, heads,
timeouts and cleanup, without a socket."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cgibox.config import Config
from cgibox.core import cgi_slots
from cgibox.core.cgi_slots import ScriptSlots
from cgibox.core.request import Headers, Request
from cgibox.core.response import ConnectionCut, FileRegion, Response
from cgibox.core.router import App
from cgibox.core.stats import Stats
from tests.behaviour import site_cgi
from tests.servers import REPO


def make_app(base: Path, **settings) -> App:
    root, cgi_dir, outside = base / "www", base / "cgi-bin", base / "outside"
    for folder in (root, cgi_dir, outside):
        folder.mkdir(exist_ok=True)
    (root / "hello.txt").write_text("hello, world\n")
    if not (cgi_dir / "dump").exists():
        for script in (REPO / "cgi-bin").iterdir():  # the bundled samples, as the behaviour site has
            shutil.copy2(script, cgi_dir / script.name)
        site_cgi.build(cgi_dir, outside)
    config = Config(root=root, cgi_dir=cgi_dir, **settings)
    return App(config, Stats.create(str(base / "stats")), "threading")


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> App:
    return make_app(tmp_path_factory.mktemp("cgi"), cgi_max=4, cgi_timeout=5.0)


def call(app: App, target: str, method: str = "GET", body: bytes | None = None, chunked: bool = False,
         headers: list[tuple[str, str]] | None = None) -> tuple[Response, bytes]:
    """Handle a request and read its whole body, as a front would; then close the response."""
    fields = Headers([("Host", "localhost"), *(headers or [])])
    length: int | None = 0
    stream = io.BytesIO(body or b"")
    if body is not None:
        length = None if chunked else len(body)
        if not chunked:
            fields.add("Content-Length", str(len(body)))
    request = Request(method, target, headers=fields, body=stream, body_length=length,
                      remote_addr="127.0.0.1", server_port=8000)
    response = app.handle(request)
    try:
        data = b"".join(b"".join(part.read_chunks()) if isinstance(part, FileRegion) else part
                        for part in response.parts())
    finally:
        response.close()
    return response, data


def test_a_script_runs_and_counts_as_a_cgi_run(app):
    before = app.stats.snapshot()["cgi_runs"]
    response, data = call(app, "/cgi-bin/status")
    assert response.status == 418
    assert response.cgi_run
    assert data == b"teapot\n"
    app.finish(None, response.status, len(data), cgi_run=response.cgi_run)
    assert app.stats.snapshot()["cgi_runs"] == before + 1


@pytest.mark.parametrize(("target", "status"), [
    ("/cgi-bin", 403), ("/cgi-bin/", 403), ("/cgi-bin/sub", 403), ("/cgi-bin/sub/deeper/", 403),
    ("/cgi-bin/plain.txt", 403), ("/cgi-bin/nope", 404), ("/cgi-bin/.hidden", 404),
    ("/cgi-bin/sub/../status", 404), ("/cgi-bin/%2e%2e/x", 404),
    ("/cgi-bin/sub%2finner", 404), ("/cgi-bin//status", 404),
])
def test_routing_refusals(app, target, status):
    response, _ = call(app, target)
    assert response.status == status
    assert not response.cgi_run


def test_path_info_after_a_nested_script(app):
    _, data = call(app, "/cgi-bin/sub/inner/a/b/")
    assert data == b"/cgi-bin/sub/inner|/a/b/\n"


def test_a_length_body_reaches_stdin(app):
    response, data = call(app, "/cgi-bin/echo", "POST", b"x" * 200_000)
    assert response.status == 200
    assert data == b"x" * 200_000


def test_a_chunked_body_is_spooled_and_counted(app):

    _, data = call(app, "/cgi-bin/dump", "POST", b"abc" * 1000, chunked=True)
    doc = json.loads(data)
    assert doc["env"]["CONTENT_LENGTH"] == "3000"
    assert doc["stdin"] == "abc" * 1000


def test_a_declared_body_over_max_body_is_413_before_reading(tmp_path):
    small = make_app(tmp_path, max_body=10)
    response, _ = call(small, "/cgi-bin/echo", "POST", b"x" * 11)
    assert response.status == 413


def test_a_chunked_body_over_max_body_is_413(tmp_path):
    small = make_app(tmp_path, max_body=10)
    response, _ = call(small, "/cgi-bin/echo", "POST", b"x" * 11, chunked=True)
    assert response.status == 413


def test_a_bad_head_is_502_and_still_a_run(app):
    response, _ = call(app, "/cgi-bin/malformed")
    assert response.status == 502
    assert response.cgi_run


def test_a_local_redirect_is_routed_again(app):
    response, data = call(app, "/cgi-bin/redirect?local", "POST", b"body")
    assert response.status == 200
    assert data == b"hello, world\n"


def test_head_drops_the_body_and_ends_the_script(app):
    response, data = call(app, "/cgi-bin/status", "HEAD")
    assert response.status == 418
    assert data == b""


def test_an_nph_script_keeps_its_raw_head(app):
    response, data = call(app, "/cgi-bin/nph-raw")
    assert response.raw_head == (b"HTTP/1.1 299 Custom Reason\r\nX-Nph: yes\r\n"
                                 b"Content-Type: text/plain\r\n\r\n")
    assert response.status == 299
    assert ("X-Nph", "yes") in response.headers
    assert data == b"raw body\n"


def test_no_head_in_time_is_504_and_the_group_is_ended(tmp_path):
    quick = make_app(tmp_path, cgi_timeout=0.5)
    name = site_cgi.tag("unit")
    response, _ = call(quick, f"/cgi-bin/sleepy?{name}")
    assert response.status == 504
    outside = tmp_path / "outside"
    assert site_cgi.wait_gone(int(site_cgi.wait_for_file(outside / f"{name}.pid")))
    assert site_cgi.wait_gone(int(site_cgi.wait_for_file(outside / f"{name}.child")))
    assert quick.cgi.slots.busy() == 0


def test_a_timeout_after_the_head_cuts_the_stream(tmp_path):
    quick = make_app(tmp_path, cgi_timeout=0.5)
    name = site_cgi.tag("unit")
    response = quick.handle(Request("GET", f"/cgi-bin/late?{name}", headers=Headers([("Host", "localhost")])))
    assert response.status == 200
    parts = iter(response.parts())
    try:
        assert next(parts) == b"partial line\n"
        with pytest.raises(ConnectionCut):
            next(parts)
    finally:
        response.close()
    assert site_cgi.wait_gone(int(site_cgi.wait_for_file(tmp_path / "outside" / f"{name}.pid")))


def test_closing_a_response_early_ends_the_script_and_frees_its_slot(app):
    name = site_cgi.tag("unit")
    response = app.handle(Request("GET", f"/cgi-bin/ticker?{name}", headers=Headers([("Host", "localhost")])))
    assert next(iter(response.parts())).startswith(b"tick 0")
    assert app.cgi.slots.busy() == 1
    response.close()  # what a front does when its client has gone
    assert site_cgi.process_gone(int(site_cgi.wait_for_file(app.config.cgi_dir.parent / "outside"
                                                            / f"{name}.pid")))
    assert app.cgi.slots.busy() == 0


def test_cgi_max_gives_503_with_retry_after(tmp_path):
    one = make_app(tmp_path, cgi_max=1)
    name = site_cgi.tag("unit")
    held = one.handle(Request("GET", f"/cgi-bin/ticker?{name}", headers=Headers([("Host", "localhost")])))
    try:
        response, _ = call(one, "/cgi-bin/status")
        assert response.status == 503
        assert response.header("Retry-After")
    finally:
        held.close()
    response, _ = call(one, "/cgi-bin/status")
    assert response.status == 418


# -- the slots --------------------------------------------------------------------------------

def test_slots_are_shared_through_their_file(tmp_path):
    path = str(tmp_path / "slots")
    first, second = ScriptSlots(path, 2), ScriptSlots(path, 2)
    a = first.acquire()
    b = second.acquire()
    assert a is not None and b is not None and a != b
    assert first.acquire() is None
    first.release(a)
    assert second.acquire() is not None


# a serving process that takes a slot, starts a script in its own group (a shell and a child of
# it), records it, says so and waits to be killed
HOLDER = """
import subprocess, sys, time
from cgibox.core.cgi_slots import ScriptSlots
slots = ScriptSlots(sys.argv[1], 1)
slot = slots.acquire()
script = subprocess.Popen(["sh", "-c", "sleep 60 & echo $! > " + sys.argv[2] + "; wait"],
                          start_new_session=True)
slots.assign(slot, script.pid)
print(script.pid, flush=True)
time.sleep(60)
"""


def start_holder(tmp_path) -> tuple[subprocess.Popen, int, int]:
    """(the serving process, its script's leader, the leader's child)."""
    argv = [sys.executable, "-c", HOLDER, str(tmp_path / "slots"), str(tmp_path / "child")]
    env = {**os.environ, "PYTHONPATH": str(REPO / "app")}
    holder = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
    assert holder.stdout is not None
    leader = int(holder.stdout.readline())
    child = int(site_cgi.wait_for_file(tmp_path / "child"))
    return holder, leader, child


def test_a_dead_serving_process_leaves_no_script_and_no_slot(tmp_path):
    """SIGKILL of the process that runs a script: the next look at the table (here reclaim(), as a
    supervisor calls it) ends the script's whole group and frees the slot."""
    holder, leader, child = start_holder(tmp_path)
    slots = ScriptSlots(str(tmp_path / "slots"), 1)
    try:
        assert slots.reclaim() == 0  # a live owner's slot is left alone
        assert slots.busy() == 1 and slots.acquire() is None
        holder.kill()
        holder.wait()
        assert slots.reclaim() == 1
        assert site_cgi.wait_gone(leader) and site_cgi.wait_gone(child)
        assert slots.busy() == 0
    finally:
        holder.kill()
        holder.wait()


def test_acquire_reclaims_the_slot_of_a_dead_serving_process(tmp_path):
    holder, leader, child = start_holder(tmp_path)
    slots = ScriptSlots(str(tmp_path / "slots"), 1)
    holder.kill()
    holder.wait()
    assert slots.acquire() == 0
    assert site_cgi.wait_gone(leader) and site_cgi.wait_gone(child)


def test_a_zombie_serving_process_counts_as_dead(tmp_path):
    """Killed but not yet reaped by its parent (the supervisor reaps it a moment later)."""
    holder, leader, _ = start_holder(tmp_path)
    slots = ScriptSlots(str(tmp_path / "slots"), 1)
    try:
        os.kill(holder.pid, signal.SIGKILL)
        assert site_cgi.wait_gone(holder.pid)  # a zombie: Popen has not waited for it
        assert slots.reclaim() == 1
        assert site_cgi.wait_gone(leader)
    finally:
        holder.wait()


def test_a_recycled_owner_pid_is_not_taken_for_the_owner(tmp_path):
    """A slot names its owner by pid and start time: a live process under that pid with another
    start time is another process, so the slot is reclaimed."""
    slots = ScriptSlots(str(tmp_path / "slots"), 1)
    slot = slots.acquire()
    assert slot is not None
    slots.cells.set(slot * cgi_slots.CELLS_PER_SLOT + cgi_slots.OWNER, 1)  # alive, another start time
    assert slots.reclaim() == 1
    assert slots.acquire() == slot


def test_a_group_whose_leader_pid_names_another_process_is_not_killed(tmp_path):
    """The script's leader pid is recorded with its start time: when that pid now names another
    process, the old group is empty and nothing is signalled."""
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        slots = ScriptSlots(str(tmp_path / "slots"), 1)
        slot = slots.acquire()
        assert slot is not None
        base = slot * cgi_slots.CELLS_PER_SLOT
        slots.cells.set(base + cgi_slots.GROUP_START, 12345)  # another process's start time
        slots.cells.set(base + cgi_slots.GROUP, bystander.pid)
        slots.cells.set(base + cgi_slots.OWNER_START, 1)  # the owner "restarted": gone
        assert slots.reclaim() == 1
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_the_top_process_ends_its_serving_processes_scripts_at_exit(tmp_path):
    """end_at_exit (run at exit) ends the groups of this process's own slots and those of the
    serving processes it started, alive or not, and leaves other processes' alone."""
    holder, leader, child = start_holder(tmp_path)  # a child of this process: ended
    slots = ScriptSlots(str(tmp_path / "slots"), 1)
    try:
        assert slots.end_at_exit() == 1
        assert site_cgi.wait_gone(leader) and site_cgi.wait_gone(child)
    finally:
        holder.kill()
        holder.wait()


def test_the_top_process_ends_the_scripts_of_serving_processes_started_through_another(tmp_path):
    """A serving process forked by a fork server the top process started (a grandchild)."""
    argv = [sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])",
            sys.executable, "-c", HOLDER, str(tmp_path / "slots"), str(tmp_path / "child")]
    env = {**os.environ, "PYTHONPATH": str(REPO / "app")}
    middle = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE)
    assert middle.stdout is not None
    leader = int(middle.stdout.readline())
    slots = ScriptSlots(str(tmp_path / "slots"), 1)
    below = site_cgi.descendants(middle.pid)  # the serving process (and its script's group)
    try:
        assert slots.reclaim() == 0  # alive: not a supervisor's business
        assert slots.end_at_exit() == 1
        assert site_cgi.wait_gone(leader)
    finally:
        for pid in [*below, middle.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        middle.wait()


# -- --cgi-limits at start-up -------------------------------------------------------------------

def test_a_limit_above_the_hard_limit_is_refused_for_an_unprivileged_server(monkeypatch):
    from cgibox.core import limits

    monkeypatch.setattr(limits.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(limits.resource, "getrlimit", lambda which: (1024, 2048))
    problem = limits.refusal("/usr/bin/prlimit", (("processes", 4096),))
    assert problem is not None and "hard limit (2048)" in problem
    problem = limits.refusal("/usr/bin/prlimit", (("cpu", 2048),))  # the hard limit set is cpu + 1
    assert problem is not None and "cpu=2048" in problem


# -- the runner stands alone ----------------------------------------------------------------------

def test_the_runner_needs_no_router():
    """core/cgi.py is given what it shares (settings, root, cgi dir, slot file, error pages) and
    answers a local redirect with a value App.route loops on: it imports nothing of the router."""
    code = "import sys, cgibox.core.cgi; assert 'cgibox.core.router' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(REPO / "app")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_a_local_redirect_is_a_value_the_router_follows(app):
    from cgibox.core.cgi import LocalRedirect

    answer = app.cgi.run(Request("GET", "/cgi-bin/redirect?local"), "/cgi-bin/redirect")
    assert isinstance(answer, LocalRedirect)
    assert answer.request.method == "GET" and answer.request.target == "/hello.txt"
    assert app.cgi.slots.busy() == 0  # the script is over before the redirect is followed


# -- request bodies wait before the slot ----------------------------------------------------------

class StalledBody:
    """A body stream that gives some bytes, then times out as a front's socket does."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    def read(self, size: int = -1) -> bytes:
        if self.first:
            data, self.first = self.first, b""
            return data
        raise TimeoutError


def test_a_body_that_stops_arriving_is_408_and_takes_no_slot(tmp_path):
    one = make_app(tmp_path, cgi_max=1, body_timeout=7.0)
    request = Request("POST", "/cgi-bin/echo", headers=Headers([("Host", "t"), ("Content-Length", "100")]),
                      body=StalledBody(b"0123456789"), body_length=100)  # type: ignore[arg-type]
    response = one.handle(request)
    assert response.status == 408 and response.close_connection
    assert one.cgi.slots.busy() == 0 and not response.cgi_run
    response.close()


def test_a_body_is_read_whole_before_its_slot_is_taken(tmp_path):
    """While the body is read, the slot is free: another script can run meanwhile."""
    one = make_app(tmp_path, cgi_max=1)
    seen: list[int] = []

    class Watching:
        def __init__(self) -> None:
            self.data = io.BytesIO(b"x" * 300_000)

        def read(self, size: int = -1) -> bytes:
            seen.append(one.cgi.slots.busy())
            return self.data.read(size)

    request = Request("POST", "/cgi-bin/echo", headers=Headers([("Host", "t"), ("Content-Length", "300000")]),
                      body=Watching(), body_length=300_000)  # type: ignore[arg-type]
    response = one.handle(request)
    try:
        assert b"".join(response.parts()) == b"x" * 300_000  # type: ignore[arg-type]
    finally:
        response.close()
    assert seen and set(seen) == {0}
