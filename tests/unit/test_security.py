"""The pieces of issue 12 without a server: htpasswd parsing, Basic credentials, access rules,
the failure throttle, the verification cache, limits, configured variables, reason phrases,
extra headers, the TLS context and the start-up checks."""

from __future__ import annotations

import base64
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path

import bcrypt
import pytest

from cgibox.config import Config, ConfigError, load
from cgibox.core import auth, cgi_protocol, limits
from cgibox.core.errors import HTTPError
from cgibox.core.extra_headers import apply_extra_headers
from cgibox.core.request import Request
from cgibox.core.response import Response
from cgibox.grammars import (
    LIMIT_NAMES,
    check_configured_name,
    env_value_problem,
    parse_extra_header,
    parse_limits,
)
from cgibox.startup import StartupError, check
from cgibox.tls import TLSError, server_context


def entry(user: str, password: str, prefix: str = "$2y$") -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    return f"{user}:{prefix}{hashed[4:]}"


# -- htpasswd and credentials ---------------------------------------------------------------------

def test_htpasswd_bcrypt_entries_comments_and_blank_lines():
    text = "# users\n\n" + entry("alice", "a") + "\n" + entry("bob", "b", "$2b$") + "\n"
    users = auth.parse_htpasswd(text, "file")
    assert sorted(users) == ["alice", "bob"]
    assert users["alice"].startswith(b"$2y$")


@pytest.mark.parametrize(("line", "kind"), [
    ("u:$apr1$salt$hash", "MD5"), ("u:{SHA}abc=", "SHA-1"), ("u:$6$salt$hash", "crypt"),
    ("u:abJnggxhB/yWI", "DES"), ("u:secret", "plain"), ("u:$2y$04$short", "plain"),
])
def test_htpasswd_weak_entries_refused(line, kind):
    with pytest.raises(auth.AuthFileError, match=kind) as info:
        auth.parse_htpasswd(line + "\n", "f")
    assert "line 1" in str(info.value) and "\n" not in str(info.value)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_credentials():
    assert auth.credentials(None) is None
    assert auth.credentials("Bearer xyz") is None
    assert auth.credentials("Basic " + b64("a:b:c")) == ("a", "b:c")
    assert auth.credentials("basic  " + b64("zoë:pw")) == ("zoë", "pw")
    for bad in ("Basic ###", "Basic " + b64("nocolon"), "Basic " + base64.b64encode(b"\xff:x").decode()):
        with pytest.raises(ValueError):
            auth.credentials(bad)


# the login rules (--public, --auth-scope) are core.access's table: tests/unit/test_access.py


# -- throttle -------------------------------------------------------------------------------------------

def test_throttle_blocks_after_repeated_failures_and_forgets_after_the_window(tmp_path):
    throttle = auth.Throttle(str(tmp_path / "t"))
    now = 1_000_000
    for _ in range(auth.MAX_FAILURES - 1):
        assert throttle.failed("10.0.0.1", now) == 0
    assert throttle.blocked_for("10.0.0.1", now) == 0
    assert throttle.failed("10.0.0.1", now) == auth.BLOCK
    assert throttle.blocked_for("10.0.0.1", now + 10) == auth.BLOCK - 10
    assert throttle.blocked_for("10.0.0.2", now) == 0
    assert throttle.blocked_for("10.0.0.1", now + auth.BLOCK) == 0
    # failures spread wider than the window never add up to a block
    for step in range(3 * auth.MAX_FAILURES):
        assert throttle.failed("10.0.0.3", now + step * (auth.WINDOW // 5 + 1)) == 0


def test_throttle_is_shared_by_processes_and_bounded(tmp_path):
    path = str(tmp_path / "t")
    first, second = auth.Throttle(path), auth.Throttle(path)
    now = 2_000_000
    for n in range(auth.MAX_FAILURES):
        (first if n % 2 else second).failed("192.0.2.7", now)
    assert first.blocked_for("192.0.2.7", now) and second.blocked_for("192.0.2.7", now)
    size = os.path.getsize(path)
    for n in range(20_000):  # a flood of addresses: the table does not grow, the old ones go
        first.failed(f"198.51.{n // 256}.{n % 256}", now + 1)
    assert os.path.getsize(path) == size == auth.TABLE_CELLS * 8


# -- verification cache ----------------------------------------------------------------------------------

def test_passwords_verify_cache_and_reload(tmp_path, monkeypatch):
    path = tmp_path / "htpasswd"
    path.write_text(entry("alice", "one") + "\n")
    passwords = auth.Passwords(str(path))
    calls = []
    real = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda pw, h: calls.append(1) or real(pw, h))
    assert passwords.verify("alice", "one") and passwords.verify("alice", "one")
    assert len(calls) == 1  # the second came from the cache
    assert not passwords.verify("alice", "two")
    assert not passwords.verify("mallory", "one")  # an unknown user costs a bcrypt check too
    assert len(calls) == 3
    path.write_text(entry("alice", "two") + "\n")
    os.utime(path, (time.time() + 10, time.time() + 10))
    passwords._checked_at = 0.0  # as if a second had passed
    assert not passwords.verify("alice", "one")
    assert passwords.verify("alice", "two")


def test_passwords_longer_than_bcrypt_reads(tmp_path):
    path = tmp_path / "htpasswd"
    long = "x" * 100
    path.write_text(entry("alice", long[:72]) + "\n")
    assert auth.Passwords(str(path)).verify("alice", long)


# -- limits ---------------------------------------------------------------------------------------------

def test_parse_limits():
    assert parse_limits("cpu=2,memory=256m,processes=40,file-size=10k") == (
        ("cpu", 2), ("memory", 256 * 1024 ** 2), ("processes", 40), ("file-size", 10240))
    for bad in ("cpu", "cpu=x", "cpu=1m", "memory=-1", "nice=1", "memory=0"):
        with pytest.raises(ValueError):
            parse_limits(bad)


def test_every_limit_the_grammar_takes_has_a_resource_and_an_option():
    assert set(limits.OPTIONS) == set(limits.RESOURCES) == set(LIMIT_NAMES)


def test_wrapper_sets_the_limits_before_the_script_runs():
    prlimit = limits.find_prlimit()
    if prlimit is None:
        pytest.skip("util-linux prlimit is not installed")
    argv = limits.wrapper_argv(prlimit, (("cpu", 3), ("memory", 500_000_000), ("file-size", 4096)))
    assert argv[-1] == "--" and "--cpu=3:4" in argv
    out = subprocess.run([*argv, "/bin/sh", "-c", "ulimit -t; ulimit -v; ulimit -f"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "3" and int(out[1]) == 500_000_000 // 1024 and int(out[2]) * 512 == 4096


def test_limit_reached():
    configured = {"cpu": 2, "memory": 10, "processes": 5, "file-size": 1}
    assert limits.limit_reached(configured, 0, 5.0, "MemoryError") is None
    assert limits.limit_reached(configured, -signal.SIGXCPU, 2.0, "") == "cpu"
    assert limits.limit_reached(configured, -signal.SIGKILL, 3.0, "") == "cpu"
    assert limits.limit_reached(configured, -signal.SIGKILL, 0.1, "") is None
    assert limits.limit_reached(configured, -signal.SIGXFSZ, 0, "") == "file-size"
    assert limits.limit_reached(configured, 1, 0, "Traceback\nMemoryError\n") == "memory"
    assert limits.limit_reached(configured, 1, 0, "fork: Resource temporarily unavailable") == "processes"
    assert limits.limit_reached({"cpu": 1}, 1, 0, "MemoryError") is None  # not configured: not named


# -- configured variables --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["AUTH_TYPE", "remote_user", "HTTP_X", "SERVER_ADMIN", "PATH",
                                  "DOCUMENT_ROOT", "HTTPS", "REQUEST_URI", "1X", "A-B", "", "APP\n"])
def test_refused_names(name):
    assert check_configured_name(name)


@pytest.mark.parametrize("name", ["DATABASE_URL", "APP_MODE", "TZ", "LANG", "_private"])
def test_allowed_names(name):
    assert check_configured_name(name) is None


def test_configured_never_overrides_and_login_variables():
    env = {"QUERY_STRING": "q"}
    cgi_protocol.add_configured_environ(env, (("QUERY_STRING", "evil"), ("APP", "1")))
    assert env == {"QUERY_STRING": "q", "APP": "1"}
    request = Request("GET", "/", remote_user="zoë")
    cgi_protocol.add_login_environ(env, request)
    assert env["AUTH_TYPE"] == "Basic"
    assert env["REMOTE_USER"].encode("utf-8", "surrogateescape") == "zoë".encode()
    anonymous: dict[str, str] = {}
    cgi_protocol.add_login_environ(anonymous, Request("GET", "/"))
    assert anonymous == {}


def test_config_loads_repeatable_settings(tmp_path):
    root = str(tmp_path)
    resolved = load({"root": root, "cgi_dir": root, "cgi_env": ["A=1", "B=x=y"], "public": ["/a/*"],
                     "cgi_pass_env": None},
                    {"CGIBOX_CGI_PASS_ENV": "HOME_X", "HOME_X": "v", "CGIBOX_PUBLIC": "/ignored"})
    assert resolved.cgi_env == (("A", "1"), ("B", "x=y"))
    assert resolved.cgi_pass_env == (("HOME_X", "v"),)
    assert resolved.public == ("/a/*",)  # a flag replaces the variable's list
    with pytest.raises(ConfigError, match="--cgi-pass-env MISSING: .* no such variable"):
        load({"root": root, "cgi_dir": root, "cgi_pass_env": ["MISSING"]}, {})


# -- reason phrases and extra headers -------------------------------------------------------------------

@pytest.mark.parametrize(("head", "reason"), [
    (b"Status: 404 Nope\n\n", "Nope"), (b"Status: 200\nContent-Type: x\n\n", None),
    (b"Status: 404 caf\xc3\xa9\n\n", None), (b"Status: 404 " + b"a" * 65 + b"\n\n", None),
    (b"Status: 404 " + b"a" * 64 + b"\n\n", "a" * 64), (b"Status: 500 Bad\tTab\n\n", None),
])
def test_script_reason(head, reason):
    assert cgi_protocol.parse_head(head).reason == reason


def test_extra_headers():
    assert parse_extra_header("Content-Security-Policy:  default-src 'self'") == \
        ("Content-Security-Policy", "default-src 'self'")
    for bad in ("Connection: close", "keep-alive: 5", "Content-Length: 1", "Transfer-Encoding: x",
                "Bad Name: x", "X: a\x01b", "nothing"):
        with pytest.raises(ValueError):
            parse_extra_header(bad)
    response = Response(200, [("X-Frame-Options", "SAMEORIGIN"), ("Content-Type", "text/plain")])
    apply_extra_headers(response, (("x-frame-options", "DENY"),))
    apply_extra_headers(response, (("x-frame-options", "DENY"),))  # idempotent
    assert response.headers == [("Content-Type", "text/plain"), ("x-frame-options", "DENY")]


# -- TLS and start-up ------------------------------------------------------------------------------------

def make_pair(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "c.pem", folder / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_server_context(tmp_path):
    if not os.path.exists("/usr/bin/openssl"):
        pytest.skip("openssl is not installed")
    cert, key = make_pair(tmp_path)
    context = server_context(cert, key)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE  # a server that asks no client certificate
    with pytest.raises(TLSError):
        server_context(key, key)


def test_startup_warnings_and_errors(tmp_path):
    path = tmp_path / "htpasswd"
    path.write_text(entry("alice", "x") + "\n")
    loopback = Config(auth_file=path)
    assert check(loopback) == []
    exposed = check(Config(auth_file=path, host="0.0.0.0"))
    assert len(exposed) == 1 and "without TLS on 0.0.0.0" in exposed[0]
    assert check(Config(public=("/x",)))[0].startswith("cgibox: warning: --public")
    with pytest.raises(StartupError, match="cannot be used"):  # a pair checked on every front
        check(Config(tls_cert=path, tls_key=path))
    path.write_text("alice:$apr1$x$y\n")
    with pytest.raises(StartupError, match="MD5"):
        check(loopback)


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "a\x00b", "x\ud800y"])
def test_configured_values_script_cannot_get_are_refused_at_start(tmp_path, value):
    # check_environ would refuse them on every request (400, blaming the client): refuse them once
    root = str(tmp_path)
    with pytest.raises(ConfigError, match="^--cgi-env: 'APP_X': "):
        load({"root": root, "cgi_dir": root, "cgi_env": [f"APP_X={value}"]}, {})
    with pytest.raises(ConfigError, match="^--cgi-pass-env: 'APP_Y': "):
        load({"root": root, "cgi_dir": root, "cgi_pass_env": ["APP_Y"]}, {"APP_Y": value})
    with pytest.raises(ConfigError, match="^CGIBOX_CGI_PASS_ENV: 'APP_Y': "):
        load({"root": root, "cgi_dir": root}, {"CGIBOX_CGI_PASS_ENV": "APP_Y", "APP_Y": value})


def test_one_rule_for_configured_and_request_values():
    for value in ("a\rb", "a\nb", "a\x00b", "x\ud800y"):
        assert env_value_problem(value)
        with pytest.raises(HTTPError):
            cgi_protocol.check_environ({"APP": value})
    assert env_value_problem("postgres://db/app?x=1 y\udcff") is None
