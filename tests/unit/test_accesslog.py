"""core/accesslog.py: Combined Log Format and JSON lines, control characters escaped."""

from __future__ import annotations

import json
import re

import pytest

from cgibox.core.accesslog import AccessLog, server_log

COMBINED = re.compile(
    r'^(?P<addr>\S+) - - \[(?P<time>\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] '
    r'"(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) (?P<bytes>\d+|-) '
    r'"(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)"$')


def log_line(capfd, log_format: str = "combined", **fields) -> str:
    values = dict(remote_addr="127.0.0.1", request_line="GET / HTTP/1.1", status=200, bytes_sent=5,
                  referer=None, user_agent=None, duration=0.0125, method="GET", path="/")
    values.update(fields)
    AccessLog(log_format).log(**values)
    out = capfd.readouterr().out
    assert out.endswith("\n") and out.count("\n") == 1, repr(out)
    return out[:-1]


def test_combined_fields(capfd):
    line = log_line(capfd, referer="http://r/", user_agent="curl/8")
    match = COMBINED.match(line)
    assert match, line
    assert match["addr"] == "127.0.0.1" and match["request"] == "GET / HTTP/1.1"
    assert match["status"] == "200" and match["bytes"] == "5"
    assert match["referer"] == "http://r/" and match["agent"] == "curl/8"


def test_combined_missing_values_are_dashes(capfd):
    match = COMBINED.match(log_line(capfd, bytes_sent=0))
    assert match["bytes"] == "-" and match["referer"] == "-" and match["agent"] == "-"


@pytest.mark.parametrize(("raw", "escaped"), [
    ("a\nb", "a\\x0ab"), ("a\rb", "a\\x0db"), ("\x1b[31mred", "\\x1b[31mred"), ("a\x00b", "a\\x00b"),
    ("a\x7fb", "a\\x7fb"), ("a\x9bb", "a\\x9bb"), ('say "hi"', 'say \\"hi\\"'),
    ("back\\slash", "back\\\\slash"),
    ("tab\there", "tab\\x09here"),
])
def test_combined_escapes_control_characters(capfd, raw, escaped):
    line = log_line(capfd, user_agent=raw, referer=raw, request_line=f"GET /{raw} HTTP/1.1")
    match = COMBINED.match(line)
    assert match, line
    assert match["agent"] == escaped and match["referer"] == escaped
    assert match["request"] == f"GET /{escaped} HTTP/1.1"
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", line)


def test_percent_escapes_stay_as_sent(capfd):
    match = COMBINED.match(log_line(capfd, request_line="GET /a%0ab%1B HTTP/1.1"))
    assert match["request"] == "GET /a%0ab%1B HTTP/1.1"


def test_non_ascii_is_kept_readable(capfd):
    match = COMBINED.match(log_line(capfd, user_agent="café ☕"))
    assert match["agent"] == "café ☕"


def test_json_lines(capfd):
    line = log_line(capfd, "json", user_agent="a\x1b\nb", referer=None, status=404, bytes_sent=0)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", line)
    record = json.loads(line)
    assert record["user_agent"] == "a\x1b\nb"
    assert record["status"] == 404 and record["bytes"] == 0 and record["referer"] is None
    assert record["method"] == "GET" and record["path"] == "/" and record["request"] == "GET / HTTP/1.1"
    assert record["remote_addr"] == "127.0.0.1" and record["duration_ms"] == 12.5
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}", record["time"])


def test_server_log_is_one_escaped_line_on_stderr(capfd):
    server_log("tried HTTPS\x1b[2J from \x00 client")
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == "tried HTTPS\\x1b[2J from \\x00 client\n"
