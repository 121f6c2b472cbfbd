"""What a script writes (RFC 3875 section 6): its head decides the status before anything is sent,
redirects (to clients and local), lengths, nph- pass-through, 502 for a bad head, stderr to the
log, and its body streamed."""

from __future__ import annotations

import time

import pytest

from tests.behaviour.site_cgi import (
    connect,
    dechunk,
    outside_of,
    recv_until,
    split_response,
    tag,
)

HTTPSERVER_FRONTS = ("threading", "forking")


def test_status_sets_the_status_and_other_fields_pass(server):
    reply = server.get("/cgi-bin/status")
    assert reply.status == 418
    assert reply.header("X-Script") == "status"
    assert reply.header("Status") is None
    assert reply.body == b"teapot\n"


def test_status_with_a_location_keeps_both(server):
    reply = server.get("/cgi-bin/created")
    assert reply.status == 201
    assert reply.header("Location") == "http://example.com/new"
    assert reply.body == b"made\n"


def test_an_absolute_location_alone_is_a_302(server):
    reply = server.get("/cgi-bin/redirect?abs")
    assert reply.status == 302
    assert reply.header("Location") == "http://example.com/elsewhere"


def test_a_local_location_is_served_by_the_server_as_a_get(server):
    reply = server.request("POST", "/cgi-bin/redirect?local", body=b"")
    assert reply.status == 200
    assert reply.body == b"hello, world\n"
    assert reply.header("Location") is None


def test_a_local_location_can_name_another_script(server):
    reply = server.request("POST", "/cgi-bin/redirect?localcgi", body=b"ignored",
                           headers={"Content-Type": "text/plain", "X-Kept": "yes"})
    assert reply.status == 200
    doc = reply.json()
    assert doc["argv"] == ["from", "redirect"]
    assert doc["env"]["REQUEST_METHOD"] == "GET"
    assert doc["env"]["SCRIPT_NAME"] == "/cgi-bin/dump"
    assert doc["env"]["HTTP_X_KEPT"] == "yes"
    assert "CONTENT_LENGTH" not in doc["env"] and "CONTENT_TYPE" not in doc["env"]
    assert doc["stdin"] == ""


def test_a_local_location_to_nothing_is_404(server):
    assert server.get("/cgi-bin/redirect?missing").status == 404


def test_a_local_redirect_loop_ends_in_502(server):
    assert server.get("/cgi-bin/redirect?loop").status == 502


def test_crlf_line_ends_are_accepted(server):
    reply = server.get("/cgi-bin/crlf")
    assert reply.status == 200
    assert reply.header("X-Line-Ends") == "crlf"
    assert reply.body == b"crlf body\n"


def test_a_content_length_from_the_script_is_kept_and_held_to(server):
    reply = server.get("/cgi-bin/length")
    assert reply.header("Content-Length") == "5"
    assert reply.header("Transfer-Encoding") is None
    assert reply.body == b"hello"


def test_a_body_shorter_than_its_content_length_cuts_the_connection(server):
    with connect(server, b"GET /cgi-bin/short HTTP/1.1\r\nHost: t\r\n\r\n") as sock:
        data = recv_until(sock, None)
    status, headers, body = split_response(data)
    assert " 200 " in status
    assert headers["content-length"] == "100"
    assert body == b"only this\n"  # and then the connection closed, short of 100 bytes


@pytest.mark.parametrize("script", ["malformed", "nohead", "partialhead", "badstatus", "nofields"])
def test_a_bad_head_or_none_is_502_with_the_templated_page(server, script):
    reply = server.get(f"/cgi-bin/{script}")
    assert reply.status == 502
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    assert "502" in reply.text
    assert "this is not a header line" not in reply.text


def test_a_bad_head_is_502_in_json_when_asked(server):
    reply = server.get("/cgi-bin/malformed", accept="application/json")
    assert reply.status == 502
    assert reply.json()["status"] == 502


def test_no_content_sends_no_body_and_the_connection_goes_on(server):
    conn = server.connection()
    try:
        for _ in range(2):
            conn.request("GET", "/cgi-bin/nocontent")
            resp = conn.getresponse()
            assert resp.status == 204
            assert resp.getheader("X-Script") == "nocontent"
            assert resp.read() == b""
        conn.request("GET", "/cgi-bin/hello")
        assert conn.getresponse().read().startswith(b"Hello")
    finally:
        conn.close()


def test_head_runs_the_script_and_sends_no_body(server):
    reply = server.request("HEAD", "/cgi-bin/status")
    assert reply.status == 418
    assert reply.header("X-Script") == "status"
    assert reply.body == b""


def test_an_nph_script_is_sent_untouched(server):
    if server.front not in HTTPSERVER_FRONTS:
        pytest.skip("gunicorn writes its own status line and headers (the WSGI front passes them on)")
    data = server.raw(b"GET /cgi-bin/nph-raw HTTP/1.1\r\nHost: t\r\n\r\n")
    assert data == b"HTTP/1.1 299 Custom Reason\r\nX-Nph: yes\r\nContent-Type: text/plain\r\n\r\nraw body\n"


def test_an_nph_scripts_status_and_fields_reach_the_client(server):
    reply = server.get("/cgi-bin/nph-raw")
    assert reply.status == 299
    assert reply.header("X-Nph") == "yes"
    assert reply.body == b"raw body\n"


def test_an_nph_script_without_a_status_line_is_502(server):
    assert server.get("/cgi-bin/nph-bad").status == 502


def test_stderr_goes_to_the_server_log_tagged_with_the_script(server):
    assert server.get("/cgi-bin/warn").text == "warned\n"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "second warning line" not in server.errors():
        time.sleep(0.05)
    lines = [line for line in server.errors().splitlines() if "warning line" in line]
    assert len(lines) == 2
    assert all("/cgi-bin/warn" in line for line in lines)
    assert "warned" not in server.errors()


def test_without_a_length_http11_gets_chunks(server):
    with connect(server, b"GET /cgi-bin/hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") as sock:
        data = recv_until(sock, None)
    status, headers, body = split_response(data)
    assert status.startswith("HTTP/1.1 200")
    assert headers["transfer-encoding"] == "chunked"
    text, complete = dechunk(body)
    assert complete and text.startswith(b"Hello from")


def test_without_a_length_http10_gets_the_body_until_close(server):
    with connect(server, b"GET /cgi-bin/hello HTTP/1.0\r\n\r\n") as sock:
        data = recv_until(sock, None)
    status, headers, body = split_response(data)
    assert " 200 " in status
    assert "transfer-encoding" not in headers
    assert body.startswith(b"Hello from")


def test_the_body_is_streamed_as_the_script_writes_it(server):
    """The script writes "first" and waits for the test to have seen it: a buffering server
    would never let "first" through before the script ends."""
    name = tag("gate")
    go = outside_of(server.cgi_dir) / f"{name}.go"
    with connect(server, f"GET /cgi-bin/gate?{name} HTTP/1.1\r\nHost: t\r\n\r\n".encode()) as sock:
        data = recv_until(sock, b"first\n")
        assert b"first\n" in data, data
        assert b"second" not in data
        go.touch()
        data = recv_until(sock, b"\r\n0\r\n\r\n", data)
    _, headers, body = split_response(data)
    text, complete = dechunk(body)
    assert complete
    assert text == b"first\nsecond\n"


def test_the_stream_sample_sends_its_lines(server):
    reply = server.get("/cgi-bin/stream")
    assert reply.status == 200
    assert reply.text.splitlines() == [f"line {i}" for i in range(1, 6)]


# -- the sample scripts -----------------------------------------------------------------------------

def test_echo_sends_the_body_back(server):
    assert server.request("POST", "/cgi-bin/echo", body=b"ping pong").body == b"ping pong"
    assert server.request("POST", "/cgi-bin/echo?upper", body=b"ping pong").body == b"PING PONG"


@pytest.mark.parametrize("form", ["asctime", "seconds", "rfc822"])
def test_time_takes_its_format_from_the_query(server, form):
    reply = server.get(f"/cgi-bin/time?{form}")
    assert reply.status == 200
    text = reply.text.strip()
    if form == "seconds":
        assert abs(int(text) - time.time()) < 3600
    elif form == "rfc822":
        assert text.endswith("+0000")
    else:
        assert len(text.split()) == 5


def test_time_refuses_an_unknown_format(server):
    assert server.get("/cgi-bin/time?fortnight").status == 400


def test_headers_shows_the_request_headers_escaped(server):
    reply = server.get("/cgi-bin/headers", x_probe="<script>alert(1)</script>")
    assert reply.status == 200
    assert "X-Probe" in reply.text
    assert "&lt;script&gt;" in reply.text
    assert "<script>" not in reply.text


def test_form_posts_to_itself(server):
    page = server.get("/cgi-bin/form.py")
    assert 'action="/cgi-bin/form.py"' in page.text
    reply = server.request("POST", "/cgi-bin/form.py", body=b"name=Zo%C3%AB+%3Cb%3E",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert "Hello, Zoë &lt;b&gt;!" in reply.text
