"""What an operator configures for scripts and responses, on every front: --cgi-env and
--cgi-pass-env (and the names refused), a script's own reason phrase, and --header."""

from __future__ import annotations

import shutil

import pytest

from tests.behaviour.test_cli import assert_one_line_error, run_cgibox
from tests.servers import start_server

REASONS = {
    "nope": "Nope",
    "spaced": "Not Here  At All",
    "latin": "caf\xe9",  # not ASCII: the standard phrase
    "long": "x" * 200,  # not of reasonable length
    "empty": "",
}


@pytest.fixture(scope="module")
def configured(front, site_dirs, tmp_path_factory):
    root, cgi_dir = site_dirs
    running = start_server(
        front, root, cgi_dir, tmp_path_factory.mktemp("logs"),
        ["--cgi-env", "APP_MODE=test", "--cgi-env", "DATABASE_URL=postgres://db/app?x=1,y=2",
         "--cgi-pass-env", "CGIBOX_TEST_SECRET_SOURCE",
         "--header", "Strict-Transport-Security: max-age=63072000",
         "--header", "X-Frame-Options: DENY", "--header", "X-Script: from the operator"],
        env={"CGIBOX_TEST_SECRET_SOURCE": "from the server", "NOT_PASSED": "stays home"})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def from_environment(front, site_dirs, tmp_path_factory):
    """Settings from CGIBOX_* variables only, and scripts writing their own reason phrases."""
    _, site_cgi = site_dirs
    base = tmp_path_factory.mktemp("reasons")
    cgi_dir = base / "cgi"
    cgi_dir.mkdir()
    shutil.copy2(site_cgi / "dump", cgi_dir / "dump")
    for name, reason in REASONS.items():
        script = cgi_dir / name
        script.write_bytes(b"#!/bin/sh\nprintf 'Status: 404 " + reason.encode("latin-1")
                           + b"\\nContent-Type: text/plain\\n\\nbody\\n'\n")
        script.chmod(0o755)
    running = start_server(front, site_dirs[0], cgi_dir, base / "logs",
                           env={"CGIBOX_CGI_ENV": "ONE=1\nTWO=a,b", "CGIBOX_CGI_PASS_ENV": "HOME_A,HOME_B",
                                "HOME_A": "a", "HOME_B": "b"})
    yield running
    running.stop()


def test_configured_variables_reach_scripts(configured):
    env = configured.get("/cgi-bin/dump").json()["env"]
    assert env["APP_MODE"] == "test"
    assert env["DATABASE_URL"] == "postgres://db/app?x=1,y=2"
    assert env["CGIBOX_TEST_SECRET_SOURCE"] == "from the server"
    assert "NOT_PASSED" not in env
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"


def test_variables_from_the_environment(from_environment):
    env = from_environment.get("/cgi-bin/dump").json()["env"]
    assert (env["ONE"], env["TWO"], env["HOME_A"], env["HOME_B"]) == ("1", "a,b", "a", "b")


def test_extra_headers_on_every_kind_of_response(configured):
    for path, status in [("/hello.txt", 200), ("/no-such-file", 404), ("/cgi-bin/dump", 200),
                         ("/plain-dir/", 200), ("/stats", 200), ("/healthz", 200)]:
        reply = configured.get(path)
        assert reply.status == status, path
        assert reply.headers.get_all("Strict-Transport-Security") == ["max-age=63072000"], path
        assert reply.header("X-Frame-Options") == "DENY", path


def test_a_configured_header_replaces_the_scripts_own(configured):
    reply = configured.get("/cgi-bin/status")
    assert reply.headers.get_all("X-Script") == ["from the operator"]


def test_script_reason_phrase_goes_out(server):
    reply = server.get("/cgi-bin/status")
    assert (reply.status, reply.reason) == (418, "I am a teapot")


@pytest.mark.parametrize(("name", "sent"), [
    ("nope", "Nope"), ("spaced", "Not Here  At All"), ("latin", "Not Found"), ("long", "Not Found"),
    ("empty", "Not Found"),
])
def test_reason_phrase_rules(from_environment, name, sent):
    reply = from_environment.get(f"/cgi-bin/{name}")
    assert (reply.status, reply.reason, reply.body) == (404, sent, b"body\n")


# -- refused at start-up ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--cgi-env", "REMOTE_USER=admin"],
    ["--cgi-env", "HTTP_HOST=example.com"],
    ["--cgi-env", "QUERY_STRING=a"],
    ["--cgi-env", "PATH=/tmp"],
    ["--cgi-env", "SCRIPT_FILENAME=/bin/sh"],
    ["--cgi-env", "no_equals_sign"],
    ["--cgi-env", "1BAD=x"],
    ["--cgi-env", "APP_X=one\ntwo"],  # no script could be given it: every request would be a 400
    ["--cgi-env", "APP_X=one\rtwo"],
    ["--cgi-pass-env", "REQUEST_METHOD"],
    ["--cgi-pass-env", "CGIBOX_TEST_SURELY_UNSET"],
    ["--header", "Connection: close"],
    ["--header", "Transfer-Encoding: chunked"],
    ["--header", "Content-Length: 5"],
    ["--header", "no colon"],
    ["--header", "X-Bad: caf\xe9"],
])
def test_refused_settings(site_dirs, args):
    root, cgi_dir = site_dirs
    result = run_cgibox("--root", str(root), "--cgi-dir", str(cgi_dir), *args)
    assert_one_line_error(result, args[0].lstrip("-"))


def test_refused_in_the_environment_too(site_dirs):
    root, cgi_dir = site_dirs
    result = run_cgibox("--root", str(root), "--cgi-dir", str(cgi_dir),
                        env={"CGIBOX_CGI_ENV": "GOOD=1\nHTTP_PROXY=http://evil"})
    assert_one_line_error(result, "HTTP_PROXY")


def test_passed_value_no_script_can_get_is_refused(site_dirs):
    root, cgi_dir = site_dirs
    result = run_cgibox("--root", str(root), "--cgi-dir", str(cgi_dir), "--cgi-pass-env", "APP_TOKEN",
                        env={"APP_TOKEN": "secret\r\nX-Injected: 1"})
    assert_one_line_error(result, "--cgi-pass-env: 'APP_TOKEN'")
    assert "secret" not in result.stderr  # the name is enough; the value may be a secret


# -- --config FILE and folder mounts --------------------------------------------------------------------

def test_a_config_file_with_a_folder_mount(front, site_dirs, tmp_path):
    """Settings by flag name and a [[cgi_mount]] of a folder: its scripts run under the prefix,
    with the mount's variables; /cgi-bin/ goes on; a flag beats the file."""
    root, cgi_dir = site_dirs
    tools = tmp_path / "tools"
    tools.mkdir()
    script = tools / "where"
    script.write_text('#!/bin/sh\nprintf "Content-Type: text/plain\\n\\n%s %s %s\\n" '
                      '"$SCRIPT_NAME" "$PATH_INFO" "$TOOL_MODE"\n')
    script.chmod(0o755)
    config = tmp_path / "cgibox.toml"
    config.write_text('header = ["X-From: file"]\ncgi-env = ["TOOL_MODE=global"]\n'
                      '[[cgi_mount]]\npath = "/tools"\ndir = "tools"\n')
    running = start_server(front, root, cgi_dir, tmp_path / "logs",
                           ["--config", str(config), "--header", "X-From: flag"])
    try:
        reply = running.get("/tools/where/a/b")
        assert reply.status == 200 and reply.body == b"/tools/where /a/b global\n"
        assert reply.header("X-From") == "flag"
        assert running.get("/cgi-bin/dump").status == 200
        assert running.get("/tools/").status == 403  # never listed
    finally:
        running.stop()


def test_a_bad_config_file_is_one_line(site_dirs, tmp_path):
    root, cgi_dir = site_dirs
    config = tmp_path / "cgibox.toml"
    config.write_text("cgi_timeout = 0\n")
    result = run_cgibox("--root", str(root), "--cgi-dir", str(cgi_dir), "--config", str(config))
    assert_one_line_error(result, f"{config}: cgi_timeout = '0': must be more than 0")
