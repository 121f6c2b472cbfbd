"""The access log on every front: one line per request on stdout, Combined Log Format or JSON
lines, control characters escaped."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from tests.servers import serving

COMBINED = re.compile(
    r'^(?P<addr>\S+) - - \[(?P<time>[^\]]+)\] "(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) '
    r'(?P<bytes>\d+|-) "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)"$')
# raw control characters other than the line feeds between lines
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def marker() -> str:
    return "m" + uuid.uuid4().hex[:12]


def lines_with(server, text: str, count: int = 1, timeout: float = 10.0) -> list[str]:
    """The log lines containing `text`, once there are `count` of them (lines are written just
    after the response is sent); then a short settle to catch any extra line."""
    deadline = time.monotonic() + timeout
    found: list[str] = []
    while time.monotonic() < deadline:
        found = [line for line in server.log().splitlines() if text in line]
        if len(found) >= count:
            break
        time.sleep(0.05)
    time.sleep(0.2)
    return [line for line in server.log().splitlines() if text in line]


def test_one_combined_line_per_request(server):
    tag = marker()
    reply = server.request("GET", f"/hello.txt?{tag}",
                           {"Referer": "http://ref.example/", "User-Agent": "tester/1"})
    assert reply.status == 200
    lines = lines_with(server, tag)
    assert len(lines) == 1, lines
    match = COMBINED.match(lines[0])
    assert match, lines[0]
    assert match["addr"] == "127.0.0.1"
    assert match["request"] == f"GET /hello.txt?{tag} HTTP/1.1"
    assert match["status"] == "200" and match["bytes"] == "13"
    assert match["referer"] == "http://ref.example/" and match["agent"] == "tester/1"
    assert re.fullmatch(r"\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}", match["time"])


def test_each_request_on_a_keep_alive_connection_is_logged(server):
    tag = marker()
    conn = server.connection()
    try:
        for i in range(3):
            conn.request("GET", f"/missing-{tag}-{i}")
            conn.getresponse().read()
    finally:
        conn.close()
    lines = lines_with(server, tag, count=3)
    assert len(lines) == 3
    assert all(COMBINED.match(line)["status"] == "404" for line in lines)


def test_head_and_304_bytes(server):
    tag = marker()
    server.request("HEAD", f"/hello.txt?{tag}")
    [line] = lines_with(server, tag)
    assert COMBINED.match(line)["bytes"] in ("-", "0")


def test_percent_escapes_stay_escaped(server):
    tag = marker()
    server.raw(f"GET /{tag}%0a%0d%1b%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    [line] = lines_with(server, tag)
    assert f"/{tag}%0a%0d%1b%00 " in line


def test_control_characters_in_headers_are_escaped(server):
    tag = marker()
    # obs-text bytes are valid in a field value; \x9b is a C1 control (CSI) once decoded
    server.raw(f"GET /hello.txt?{tag} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
               + b"User-Agent: evil\x9b2J\x85agent\r\nReferer: say \"hi\"\r\n\r\n")
    [line] = lines_with(server, tag)
    assert not CONTROL.search(line), repr(line)
    match = COMBINED.match(line)
    assert match, line
    assert match["agent"] == "evil\\x9b2J\\x85agent"
    assert match["referer"] == 'say \\"hi\\"'


def test_raw_escape_byte_in_a_header_value(server):
    """ESC is not allowed in a field value: the request is refused or logged, never echoed raw."""
    tag = marker()
    reply = server.raw(f"GET /hello.txt?{tag} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
                       + b"User-Agent: a\x1b[2Jb\r\n\r\n")
    assert reply.startswith((b"HTTP/1.1 400", b"HTTP/1.1 200"))
    time.sleep(0.3)
    assert "\x1b" not in server.log()


def test_bad_request_is_logged_once(server):
    tag = marker()
    reply = server.raw(f"GET /{tag} HTTP/1.1 junk\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 400")
    lines = lines_with(server, tag)
    assert len(lines) == 1 and " 400 " in lines[0]


def test_no_raw_control_characters_anywhere(server):
    assert not CONTROL.search(server.log().replace("\n", ""))


@pytest.fixture(scope="module")
def json_server(front, site_dirs, tmp_path_factory):
    yield from serving(front, site_dirs, tmp_path_factory.mktemp("jsonlog"), ["--log-format", "json"])


def test_json_lines(json_server):
    tag = marker()
    json_server.request("GET", f"/hello.txt?{tag}", {"User-Agent": "ua/2", "Referer": "http://r/"})
    json_server.get(f"/missing-{tag}")
    lines = lines_with(json_server, tag, count=2)
    assert len(lines) == 2
    # several serving processes share stdout, and each logs once its response is out: the two
    # lines may come in either order
    first, second = sorted((json.loads(line) for line in lines), key=lambda doc: doc["status"])
    assert first["method"] == "GET" and first["path"] == "/hello.txt"
    assert first["request"] == f"GET /hello.txt?{tag} HTTP/1.1"
    assert first["status"] == 200 and first["bytes"] == 13
    assert first["user_agent"] == "ua/2" and first["referer"] == "http://r/"
    assert first["remote_addr"] == "127.0.0.1" and first["duration_ms"] >= 0 and first["time"]
    assert second["status"] == 404 and second["path"] == f"/missing-{tag}"


def test_json_escapes_control_characters(json_server):
    tag = marker()
    json_server.raw(f"GET /{tag}%0a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
                    + b"User-Agent: x\x9by\r\n\r\n")
    [line] = lines_with(json_server, tag)
    assert not CONTROL.search(line)
    record = json.loads(line)
    assert record["path"] == f"/{tag}%0a"
    assert record["user_agent"] == "x\x9by"


def test_every_json_line_parses(json_server):
    tag = marker()
    json_server.get(f"/hello.txt?{tag}")
    lines_with(json_server, tag)  # waits until the request is logged, so the loop is never empty
    lines = json_server.log().splitlines()[1:]  # after the start-up line
    assert lines
    for line in lines:
        json.loads(line)
