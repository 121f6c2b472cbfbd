"""The script's environment (RFC 3875 section 4): every MUST and SHOULD variable with the request's
own values, HTTP_* by the rules, arguments from a search query, and nothing of the server's own."""

from __future__ import annotations

import json
import os

import pytest

from tests.behaviour.site_cgi import dechunk, split_response

ALLOWED = {
    "PATH", "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
    "REQUEST_METHOD", "QUERY_STRING", "SCRIPT_NAME", "PATH_INFO", "PATH_TRANSLATED", "REMOTE_ADDR",
    "REMOTE_HOST", "REMOTE_PORT", "REQUEST_URI", "REQUEST_SCHEME", "SCRIPT_FILENAME", "DOCUMENT_ROOT",
    "CONTENT_LENGTH", "CONTENT_TYPE",
    "LC_CTYPE",  # set by the python3 that runs the dump script itself (PEP 538), not by the server
}


def dump(server, path="/cgi-bin/dump", method="GET", headers=None, body=None) -> dict:
    reply = server.request(method, path, headers=headers, body=body)
    assert reply.status == 200, reply.text
    return reply.json()


def raw_dump(server, request: bytes) -> dict:
    status, headers, body = split_response(server.raw(request))
    assert " 200 " in status
    if headers.get("transfer-encoding") == "chunked":
        body, _ = dechunk(body)
    return json.loads(body)


def test_the_must_variables(server):
    env = dump(server, "/cgi-bin/dump?x=1&y=2")["env"]
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["REQUEST_METHOD"] == "GET"
    assert env["QUERY_STRING"] == "x=1&y=2"
    assert env["SCRIPT_NAME"] == "/cgi-bin/dump"
    assert env["SERVER_NAME"] == server.host
    assert env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_SOFTWARE"].startswith("cgibox/")
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_HOST"] == "127.0.0.1"
    assert env["REQUEST_URI"] == "/cgi-bin/dump?x=1&y=2"
    assert "CONTENT_LENGTH" not in env
    assert "CONTENT_TYPE" not in env
    assert "PATH_TRANSLATED" not in env


def test_query_string_is_empty_when_there_is_none(server):
    assert dump(server)["env"]["QUERY_STRING"] == ""


def test_server_protocol_is_the_requests_own(server):
    doc = raw_dump(server, b"GET /cgi-bin/dump HTTP/1.0\r\nHost: example.test\r\n\r\n")
    assert doc["env"]["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert doc["env"]["SERVER_NAME"] == "example.test"


def test_path_info_is_decoded_and_translated(server):
    env = dump(server, "/cgi-bin/dump/a%20b/caf%C3%A9.txt")["env"]
    # the dump script shows the environment's bytes as latin-1
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/a b/café.txt"
    translated = env["PATH_TRANSLATED"].encode("latin-1").decode("utf-8")
    assert translated == os.path.join(os.path.realpath(server.root), "a b", "café.txt")
    assert env["SCRIPT_NAME"] == "/cgi-bin/dump"


def test_the_script_runs_in_its_own_folder(server):
    doc = dump(server)
    assert doc["cwd"] == os.path.realpath(server.cgi_dir)
    assert doc["env"]["SCRIPT_FILENAME"] == os.path.join(os.path.realpath(server.cgi_dir), "dump")


def test_a_body_brings_content_length_and_type(server):
    env = dump(server, method="POST", body=b"a=1&b=2",
               headers={"Content-Type": "application/x-www-form-urlencoded"})["env"]
    assert env["CONTENT_LENGTH"] == "7"
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert "HTTP_CONTENT_LENGTH" not in env
    assert "HTTP_CONTENT_TYPE" not in env


def test_http_variables_follow_the_rules(server):
    request = (b"GET /cgi-bin/dump HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n"
               b"X-Multi: one\r\nX-Multi: two\r\n"
               b"Proxy: http://evil.test:3128/\r\n"          # httpoxy
               b"Authorization: Basic dXNlcjpzZWNyZXQ=\r\n"
               b"X_Spoof: spoofed\r\nX-Spoof: real\r\n"       # "_" could pose as "-"
               b"User-Agent: cgibox-tests\r\n\r\n")
    env = raw_dump(server, request)["env"]
    if server.front.startswith("gunicorn"):
        # gunicorn joins repeated fields itself, with "," (PEP 3333), before the core sees them
        assert env["HTTP_X_MULTI"] in ("one, two", "one,two")
    else:
        assert env["HTTP_X_MULTI"] == "one, two"
    assert env["HTTP_USER_AGENT"] == "cgibox-tests"
    assert env["HTTP_HOST"] == "h.test"
    assert "HTTP_PROXY" not in env
    assert "HTTP_AUTHORIZATION" not in env
    assert "dXNlcjpzZWNyZXQ=" not in str(env)
    assert env["HTTP_X_SPOOF"] == "real"
    assert "spoofed" not in str(env)
    assert "AUTH_TYPE" not in env and "REMOTE_USER" not in env


def test_header_bytes_reach_the_script_unchanged(server):
    request = (b"GET /cgi-bin/dump HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
               b"X-Name: caf\xe9 \xc3\xa9\r\n\r\n")
    env = raw_dump(server, request)["env"]
    assert env["HTTP_X_NAME"].encode("latin-1") == b"caf\xe9 \xc3\xa9"


@pytest.mark.parametrize(("query", "argv"), [
    ("a+b%20c", ["a", "b c"]),
    ("one", ["one"]),
    ("x%3Dy", ["x=y"]),
    ("a=b", []),
    ("a+b=c", []),
    ("", []),
    ("a++b", []),
])
def test_a_query_without_equals_becomes_the_arguments(server, query, argv):
    path = "/cgi-bin/dump" + (f"?{query}" if query else "")
    assert dump(server, path)["argv"] == argv


def test_nothing_of_the_servers_environment_leaks(make_server):
    running = make_server(env={"SECRET_TOKEN": "leak-me", "PYTHONPATH": "/leak/me"})
    env = dump(running)["env"]
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert "leak-me" not in str(env) and "/leak/me" not in str(env)
    unexpected = {key for key in env if key not in ALLOWED and not key.startswith("HTTP_")}
    assert not unexpected
