"""Logins on every front: --auth-file (bcrypt htpasswd), --public, --auth-scope, the 401 challenge,
the failure throttle (429), what scripts see, the user in the access log, and start-up refusals."""

from __future__ import annotations

import base64
import json
import os
import time

import bcrypt
import pytest

from tests.behaviour.test_accesslog import lines_with, marker
from tests.behaviour.test_cli import assert_one_line_error, run_cgibox
from tests.servers import serving

USERS = {"alice": "wonder land", "bob": "b0b:with:colons", "zoë": "pässwörd"}


def htpasswd_line(user: str, password: str, prefix: str = "$2y$") -> str:
    """What `htpasswd -B` writes ($2y$), or another bcrypt prefix; cost 4 keeps the suite fast."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    return f"{user}:{prefix}{hashed[4:]}"


def write_htpasswd(path, users: dict[str, str]) -> None:
    lines = ["# written by the test"]
    for index, (user, password) in enumerate(users.items()):
        lines.append(htpasswd_line(user, password, "$2y$" if index % 2 == 0 else "$2b$"))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def passwd(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "htpasswd"
    write_htpasswd(path, USERS)
    return path


@pytest.fixture(scope="module")
def locked(front, site_dirs, passwd, tmp_path_factory):
    """Every path behind the login, but /plain-dir/* and /stats."""
    yield from serving(front, site_dirs, tmp_path_factory.mktemp("logs"),
                       ["--auth-file", str(passwd), "--public", "/plain-dir/*", "--public", "/stats"])


def get(server, path: str, auth: str | None = None, **headers: str):
    if auth is not None:
        headers["Authorization"] = auth
    return server.request("GET", path, headers)


# -- the challenge and a login --------------------------------------------------------------------

def test_no_login_is_401_with_a_challenge_and_the_page(locked):
    reply = get(locked, "/hello.txt")
    assert reply.status == 401
    assert reply.header("WWW-Authenticate") == 'Basic realm="cgibox", charset="UTF-8"'
    assert reply.header("Content-Type").startswith("text/html")
    assert "401" in reply.text and "</html>" in reply.text


def test_a_401_in_json_when_asked(locked):
    reply = get(locked, "/hello.txt", Accept="application/json")
    assert reply.status == 401
    assert reply.json()["status"] == 401


@pytest.mark.parametrize("user", sorted(USERS))
def test_every_user_logs_in(locked, user):
    reply = get(locked, "/hello.txt", basic(user, USERS[user]))
    assert reply.status == 200, user
    assert reply.body == b"hello, world\n"


@pytest.mark.parametrize("auth", [
    basic("alice", "wrong"), basic("nobody", "wonder land"), basic("alice", ""),
    basic("", ""), "Basic !!!not-base64", "Basic " + base64.b64encode(b"no-colon").decode(),
    "Bearer abc",
])
def test_a_bad_login_is_401(locked, auth):
    # seven failures in all: under the throttle's ten, so the other tests of this server go on
    reply = get(locked, "/hello.txt", auth)
    assert reply.status == 401
    assert "WWW-Authenticate" in reply.headers


def test_keep_alive_requests_after_one_login(locked):
    conn = locked.connection()
    try:
        for _ in range(5):
            conn.request("GET", "/hello.txt", headers={"Authorization": basic("alice", USERS["alice"])})
            reply = conn.getresponse()
            assert reply.status == 200 and reply.read() == b"hello, world\n"
    finally:
        conn.close()


# -- what is public ----------------------------------------------------------------------------------

def test_healthz_never_needs_a_login(locked):
    reply = get(locked, "/healthz")
    assert reply.status == 200 and reply.body == b"ok\n"


def test_public_glob_is_served_without_login(locked):
    assert get(locked, "/plain-dir/a.txt").status == 200
    assert get(locked, "/plain-dir/sub/deep.txt").status == 200  # `*` reaches below
    assert get(locked, "/plain-dir/../hello.txt").status in (401, 404)  # never the file


def test_stats_public_when_listed_metrics_not(locked):
    assert get(locked, "/stats?format=json").status == 200
    assert get(locked, "/metrics").status == 401
    assert get(locked, "/metrics", basic("alice", USERS["alice"])).status == 200


def test_scripts_need_the_login_too(locked):
    assert get(locked, "/cgi-bin/dump").status == 401


# -- what scripts see -------------------------------------------------------------------------------

def test_script_gets_the_user_and_never_the_password(locked):
    reply = get(locked, "/cgi-bin/dump", basic("zoë", USERS["zoë"]))
    assert reply.status == 200
    env = reply.json()["env"]
    assert env["AUTH_TYPE"] == "Basic"
    assert env["REMOTE_USER"].encode("latin-1").decode("utf-8") == "zoë"
    assert "HTTP_AUTHORIZATION" not in env
    assert not any("pässwörd".encode().decode("latin-1") in value for value in env.values())


# -- the access log ----------------------------------------------------------------------------------

def test_access_log_shows_the_user(locked):
    tag = marker()
    assert get(locked, f"/hello.txt?{tag}", basic("alice", USERS["alice"])).status == 200
    assert get(locked, f"/hello.txt?{tag}x").status == 401
    (good,) = lines_with(locked, f"?{tag} ")
    assert good.split(" ")[2] == "alice"
    (anonymous,) = lines_with(locked, f"?{tag}x ")
    assert anonymous.split(" ")[2] == "-"


def test_json_log_and_public_globs_from_the_environment(make_server, passwd):
    running = make_server(["--auth-file", str(passwd), "--log-format", "json"],
                          env={"CGIBOX_PUBLIC": "/hello.txt,/plain-dir/*"})
    tag = marker()
    assert get(running, f"/empty.txt?{tag}", basic("bob", USERS["bob"])).status == 200
    (line,) = lines_with(running, tag)
    assert json.loads(line)["user"] == "bob"
    assert get(running, "/hello.txt").status == 200
    assert get(running, "/plain-dir/a.txt").status == 200
    assert get(running, "/empty.txt").status == 401


# -- scope, throttle, changes to the file ---------------------------------------------------------------

def test_scope_scripts_then_repeated_failures_get_429(make_server, passwd):
    """--auth-scope scripts protects /cgi-bin/ only; then failed logins, each on a connection of its
    own (forked children and gunicorn workers share the count), block the address."""
    running = make_server(["--auth-file", str(passwd), "--auth-scope", "scripts"])
    assert get(running, "/hello.txt").status == 200
    assert get(running, "/stats?format=json").status == 200
    assert get(running, "/cgi-bin/dump").status == 401
    assert get(running, "/cgi-bin/dump", basic("alice", USERS["alice"])).status == 200

    statuses = [get(running, "/cgi-bin/dump", basic("alice", f"guess{n}")).status for n in range(12)]
    assert statuses[:9] == [401] * 9
    assert statuses[-1] == 429
    blocked = get(running, "/cgi-bin/dump", basic("alice", USERS["alice"]))  # even the right one
    assert blocked.status == 429
    assert 0 < int(blocked.header("Retry-After")) <= 60
    assert get(running, "/healthz").status == 200  # the probe goes on
    assert get(running, "/hello.txt").status == 200  # and what needs no login
    # the lockout is logged once, with the address and the name tried (never a password)
    lines = [line for line in running.errors().splitlines() if "failed logins" in line]
    assert len(lines) == 1 and "127.0.0.1" in lines[0] and "'alice'" in lines[0], lines
    assert "guess" not in running.errors()


def test_a_changed_file_applies_without_restart(make_server, tmp_path):
    path = tmp_path / "htpasswd"
    write_htpasswd(path, {"carol": "first"})
    running = make_server(["--auth-file", str(path)])
    assert get(running, "/hello.txt", basic("carol", "first")).status == 200
    write_htpasswd(path, {"carol": "second"})
    os.utime(path, (time.time() + 5, time.time() + 5))
    # each process looks at the file at most once a second: wait until every one has seen it. Only
    # the new password is tried meanwhile: each refusal counts toward the failed-login throttle (429
    # after 10), so trying the old one on every round could block the test's own address.
    deadline = time.monotonic() + 20
    seen: list[int] = []
    while seen[-3:] != [200, 200, 200]:
        assert time.monotonic() < deadline, f"the new password never took: {seen}"
        seen.append(get(running, "/hello.txt", basic("carol", "second")).status)
        time.sleep(0.3)
    assert 429 not in seen, seen
    time.sleep(1.1)  # past the recheck interval: any process's next request looks at the file again
    for _ in range(3):  # so none lets the old password in
        assert get(running, "/hello.txt", basic("carol", "first")).status == 401


# -- start-up -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("entry", "kind"), [
    ("dave:$apr1$abcdefgh$0123456789012345678901", "MD5"),
    ("dave:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
    ("dave:abJnggxhB/yWI", "crypt"),
    ("dave:plain-text-password", "plain"),
    ("no colon here", "user:hash"),
])
def test_weak_entries_are_refused_at_start(site_dirs, tmp_path, entry, kind):
    path = tmp_path / "htpasswd"
    path.write_text(htpasswd_line("alice", "x") + "\n" + entry + "\n")
    root, cgi_dir = site_dirs
    result = run_cgibox("--root", str(root), "--cgi-dir", str(cgi_dir), "--port", "0",
                        "--auth-file", str(path))
    assert_one_line_error(result, kind)
    assert "line 2" in result.stderr


def test_missing_auth_file_is_refused(site_dirs, tmp_path):
    root, cgi_dir = site_dirs
    result = run_cgibox("--root", str(root), "--cgi-dir", str(cgi_dir), "--auth-file",
                        str(tmp_path / "missing"))
    assert_one_line_error(result, "auth-file")


def test_public_glob_must_be_a_path(site_dirs):
    root, cgi_dir = site_dirs
    result = run_cgibox("--root", str(root), "--cgi-dir", str(cgi_dir), "--public", "pub/*")
    assert_one_line_error(result, "public")



# -- the rule table (core.access): --private, --auth-scope writes|none, --write ------------------------

def test_private_by_path_and_query_with_scope_none(make_server, passwd):
    """git's recipe: anonymous reads and runs, a login for the push paths only, by query too."""
    running = make_server(["--auth-file", str(passwd), "--auth-scope", "none",
                           "--private", "/cgi-bin/dump/*/push",
                           "--private", "/cgi-bin/dump/*/refs?service=git-receive-pack"])
    assert get(running, "/hello.txt").status == 200
    assert get(running, "/cgi-bin/dump/r/refs?service=git-upload-pack").status == 200
    for path in ("/cgi-bin/dump/r/refs?service=git-receive-pack",
                 "/cgi-bin/dump/r/refs?service=git%2Dreceive-pack",
                 "/cgi-bin/dump/r/push", "/cgi-bin/dump/r//push"):
        reply = get(running, path)
        assert reply.status == 401, path
        assert reply.header("WWW-Authenticate") == 'Basic realm="cgibox", charset="UTF-8"'
    reply = get(running, "/cgi-bin/dump/r/push", basic("bob", USERS["bob"]))
    assert reply.status == 200
    assert reply.json()["env"]["REMOTE_USER"] == "bob"


def test_scope_writes_reads_and_runs_are_open(make_server, passwd):
    running = make_server(["--auth-file", str(passwd), "--auth-scope", "writes"])
    assert get(running, "/hello.txt").status == 200
    assert get(running, "/cgi-bin/dump").status == 200
    # no --write rule: nothing is writable, before any login
    reply = running.request("PUT", "/hello.txt", body=b"x")
    assert reply.status == 405 and reply.header("Allow") == "GET, HEAD"


def test_a_write_rule_asks_for_a_login_and_names_users(make_server, passwd):
    """Until the writes land, an allowed write reaches the file handler (405 there); the rule
    table's own answers come first: 401 without a login, 403 for a user outside the list."""
    running = make_server(["--auth-file", str(passwd), "--auth-scope", "writes",
                           "--write", "/plain-dir/*=alice,zoë"])
    assert running.request("PUT", "/plain-dir/new.txt", body=b"x").status == 401
    bob = running.request("PUT", "/plain-dir/new.txt", {"Authorization": basic("bob", USERS["bob"])},
                          body=b"x")
    assert bob.status == 403
    assert running.request("DELETE", "/hello.txt",
                           {"Authorization": basic("alice", USERS["alice"])}).status == 405
    assert running.request("PUT", "/cgi-bin/dump",
                           {"Authorization": basic("bob", USERS["bob"])}, body=b"x").status == 200


def test_named_writers_need_an_auth_file(site_dirs):
    root, cgi_dir = site_dirs
    result = run_cgibox("--root", str(root), "--cgi-dir", str(cgi_dir), "--write", "/up/*",
                        "--write", "/other/*=alice")
    assert_one_line_error(result, "--auth-file")


@pytest.mark.parametrize("flags", [["--write", "up/*"], ["--write", "/up/*="],
                                   ["--private", "git/*?x"], ["--auth-scope", "some"]])
def test_bad_rules_are_refused(site_dirs, flags):
    root, cgi_dir = site_dirs
    result = run_cgibox("--root", str(root), "--cgi-dir", str(cgi_dir), *flags)
    assert_one_line_error(result, flags[0])
