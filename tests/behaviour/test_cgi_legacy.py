"""Each failure of the standard library's removed CGIHTTPRequestHandler, as its own test: it sent
200 before the script ran (Status and Location ignored), buffered the output, gave chunked
request bodies no body, left HTTP/1.1 clients hanging, leaked the server's environment and had
no timeout."""

from __future__ import annotations

from tests.behaviour.site_cgi import connect, dechunk, outside_of, recv_until, split_response, tag


def test_status_is_not_ignored(server):
    assert server.get("/cgi-bin/status").status == 418


def test_location_is_not_ignored(server):
    reply = server.get("/cgi-bin/redirect?abs")
    assert reply.status == 302
    assert reply.header("Location") == "http://example.com/elsewhere"


def test_output_is_not_buffered(server):
    name = tag("gate")
    with connect(server, f"GET /cgi-bin/gate?{name} HTTP/1.1\r\nHost: t\r\n\r\n".encode()) as sock:
        # the script waits (up to 10 s) for the test to have seen its first line
        assert b"first\n" in recv_until(sock, b"first\n")
        (outside_of(server.cgi_dir) / f"{name}.go").touch()
        data = recv_until(sock, b"\r\n0\r\n\r\n")
    assert b"second\n" in data


def test_a_chunked_request_body_is_not_lost(server):
    request = (b"POST /cgi-bin/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    _, _, body = split_response(server.raw(request))
    assert dechunk(body)[0] == b"hello world"


def test_an_http11_client_does_not_hang(server):
    conn = server.connection(timeout=10)
    try:
        for _ in range(3):  # keep-alive: each response is framed, the next request is answered
            conn.request("GET", "/cgi-bin/hello")
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.getheader("Content-Length") or resp.getheader("Transfer-Encoding") == "chunked"
            assert resp.read().startswith(b"Hello from")
    finally:
        conn.close()


def test_the_servers_environment_does_not_leak(make_server):
    running = make_server(env={"SECRET_TOKEN": "leak-me"})
    env = running.get("/cgi-bin/dump").json()["env"]
    assert "SECRET_TOKEN" not in env
    assert "HOME" not in env
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"


def test_a_script_has_a_timeout(make_server):
    running = make_server(["--cgi-timeout", "1"])
    assert running.get(f"/cgi-bin/sleepy?{tag('legacy')}").status == 504
