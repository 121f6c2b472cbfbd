"""--tls-cert / --tls-key: HTTPS on every front (curl --cacert and Python's ssl, with a certificate
made here by openssl): keep-alive and pipelining, large files without sendfile, handshakes under
--header-timeout that hold no handler, plain HTTP on the HTTPS port, and the pair checked at start-up."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from tests.behaviour.site_static import BIG_SIZE, PATTERN_BYTES
from tests.behaviour.test_cli import assert_one_line_error, run_cgibox
from tests.servers import read_from, start_server


def make_pair(folder, name: str = "localhost"):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return make_pair(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https(front, site_dirs, pair, tmp_path_factory):
    root, cgi_dir = site_dirs
    cert, key = pair
    running = start_server(front, root, cgi_dir, tmp_path_factory.mktemp("logs"),
                           ["--tls-cert", str(cert), "--tls-key", str(key), "--header-timeout", "2"])
    yield running
    running.stop()


def client_context(cert) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.set_alpn_protocols(["http/1.1"])
    return context


def test_start_up_line_says_https(https):
    assert f"on https://127.0.0.1:{https.port}/" in https.log()


def test_curl_with_the_ca_certificate(https, pair):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    cert, _ = pair
    result = subprocess.run(["curl", "-sS", "--cacert", str(cert), "-w", "\\n%{http_code} %{scheme}",
                             f"https://127.0.0.1:{https.port}/hello.txt"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello, world\n\n200 HTTPS"


def test_python_ssl_keep_alive_alpn_and_version(https, pair):
    cert, _ = pair
    conn = http.client.HTTPSConnection("127.0.0.1", https.port, context=client_context(cert), timeout=10)
    try:
        conn.connect()
        assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert conn.sock.selected_alpn_protocol() == "http/1.1"
        for _ in range(3):  # on the same connection where the front keeps it (sync closes)
            conn.request("GET", "/hello.txt")
            reply = conn.getresponse()
            assert (reply.status, reply.read()) == (200, b"hello, world\n")
    finally:
        conn.close()


def test_scripts_know_they_run_over_https(https, pair):
    cert, _ = pair
    conn = http.client.HTTPSConnection("127.0.0.1", https.port, context=client_context(cert), timeout=10)
    try:
        conn.request("GET", "/cgi-bin/dump")
        env = json.loads(conn.getresponse().read())["env"]
    finally:
        conn.close()
    assert (env["HTTPS"], env["REQUEST_SCHEME"]) == ("on", "https")


def test_a_large_file_over_tls(https, pair):
    """Larger than what goes inline with the head: streamed in chunks, sendfile cannot encrypt."""
    cert, _ = pair
    conn = http.client.HTTPSConnection("127.0.0.1", https.port, context=client_context(cert), timeout=30)
    try:
        for _ in range(2):  # and the connection goes on after it
            conn.request("GET", "/pattern.bin")
            reply = conn.getresponse()
            assert (reply.status, reply.read()) == (200, PATTERN_BYTES)
        conn.request("GET", "/pattern.bin", headers={"Range": "bytes=100000-"})
        reply = conn.getresponse()
        assert (reply.status, reply.read()) == (206, PATTERN_BYTES[100000:])
        conn.request("GET", "/big.bin")  # 16 MiB (a sparse file: zeros)
        reply = conn.getresponse()
        received = 0
        while chunk := reply.read(1 << 20):
            assert not chunk.strip(b"\0")
            received += len(chunk)
        assert (reply.status, received) == (200, BIG_SIZE)
    finally:
        conn.close()


def test_pipelined_requests_over_tls(https, pair):
    """Several requests in one TLS write: every one answered, in order, on the one connection."""
    if https.front == "gunicorn-sync":
        pytest.skip("the sync front closes after each response")
    cert, _ = pair
    head = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection((https.host, https.port), timeout=15) as raw:
        with client_context(cert).wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(head * 5 + last)
            answer, closed = read_from(sock, timeout=12)
    assert closed
    assert answer.count(b"HTTP/1.1 200 ") == 6 and answer.count(b"hello, world\n") == 6


def test_an_unfinished_handshake_is_dropped(https, pair):
    """A client that starts a handshake and stalls holds no worker past --header-timeout."""
    with socket.create_connection((https.host, https.port), timeout=15) as sock:
        started = time.monotonic()
        sock.sendall(b"\x16\x03\x01\x00\x80")  # a TLS record header, then nothing
        _, closed = read_from(sock, timeout=12)
        assert closed and time.monotonic() - started < 12
    assert "Traceback" not in https.errors()
    test_python_ssl_keep_alive_alpn_and_version(https, pair)


def test_stalled_handshakes_hold_no_handler(front, site_dirs, pair, tmp_path):
    """With one handler (--threads 1), stalled handshakes wait in the loop: others are served
    meanwhile; the stalled ones are closed at --header-timeout, with a log line."""
    if front.startswith("gunicorn"):
        pytest.skip("gunicorn runs handshakes in its workers (a thread or process each)")
    root, cgi_dir = site_dirs
    cert, key = pair
    running = start_server(front, root, cgi_dir, tmp_path / "logs",
                           ["--tls-cert", str(cert), "--tls-key", str(key), "--header-timeout", "5",
                            "--threads", "1", "--processes", "1"])
    try:
        stalled = [socket.create_connection((running.host, running.port), timeout=15) for _ in range(3)]
        for sock in stalled:
            sock.sendall(b"\x16\x03\x01\x00\x80")
        test_python_ssl_keep_alive_alpn_and_version(running, pair)
        for sock in stalled:  # served while they still wait: they held no handler
            _, closed = read_from(sock, timeout=0.05)
            assert not closed
        for sock in stalled:
            _, closed = read_from(sock, timeout=12)
            assert closed
            sock.close()
        deadline = time.monotonic() + 5
        while "not finished within --header-timeout" not in running.errors():
            assert time.monotonic() < deadline, running.errors()
            time.sleep(0.1)
        assert "Traceback" not in running.errors()
    finally:
        running.stop()


def test_keep_alive_with_pauses_between_requests(https, pair):
    """Pauses longer than a forking child's wait between requests: the connection still goes on
    (its TLS state stays in the child) and no pipelined byte is lost."""
    if https.front == "gunicorn-sync":
        pytest.skip("the sync front closes after each response")
    cert, _ = pair
    with socket.create_connection((https.host, https.port), timeout=15) as raw:
        with client_context(cert).wrap_socket(raw, server_hostname="localhost") as sock:
            for _ in range(3):
                sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                answer, closed = read_from(sock, until=b"hello, world\n", timeout=10)
                assert answer.startswith(b"HTTP/1.1 200 ") and not closed
                time.sleep(0.5)


def test_an_idle_tls_connection_holds_no_child(front, site_dirs, pair, tmp_path):
    """Forking, one child slot: a kept-alive TLS connection goes back to the loop when idle (the
    loop keeps the TLS layer and relays to the child), so a new request is served at once and
    the idle connection still carries its next request."""
    if front != "forking":
        pytest.skip("child slots are the forking front's")
    root, cgi_dir = site_dirs
    cert, key = pair
    running = start_server(front, root, cgi_dir, tmp_path / "logs",
                           ["--tls-cert", str(cert), "--tls-key", str(key), "--threads", "1"])
    try:
        with socket.create_connection((running.host, running.port), timeout=15) as raw:
            with client_context(cert).wrap_socket(raw, server_hostname="localhost") as idle:
                idle.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                answer, _ = read_from(idle, until=b"hello, world\n", timeout=10)
                assert answer.startswith(b"HTTP/1.1 200 ")
                time.sleep(0.5)  # past a child's wait for a next request
                test_python_ssl_keep_alive_alpn_and_version(running, pair)
                idle.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                answer, _ = read_from(idle, until=b"hello, world\n", timeout=10)
                assert answer.startswith(b"HTTP/1.1 200 ")
        assert "Traceback" not in running.errors()
    finally:
        running.stop()


def test_an_idle_tls_connection_does_not_delay_the_stop(front, site_dirs, pair, tmp_path):
    """Kept-alive and idle (on the forking front, in its child): closed at SIGTERM, not waited for."""
    root, cgi_dir = site_dirs
    cert, key = pair
    running = start_server(front, root, cgi_dir, tmp_path / "logs",
                           ["--tls-cert", str(cert), "--tls-key", str(key)])
    conn = http.client.HTTPSConnection("127.0.0.1", running.port, context=client_context(cert), timeout=10)
    try:
        conn.request("GET", "/hello.txt")
        assert conn.getresponse().read() == b"hello, world\n"
        time.sleep(0.5)
        started = time.monotonic()
        code = running.stop()
        elapsed = time.monotonic() - started
    finally:
        conn.close()
    assert code == 0 and elapsed < 5, f"exit {code} after {elapsed:.1f} s"


def test_a_stop_lets_a_tls_download_in_flight_finish(front, site_dirs, pair, tmp_path):
    """SIGTERM while a client is paused early in 16 MiB over TLS: the whole file still arrives
    (the request in flight is finished under --graceful-timeout), then the server exits 0."""
    root, cgi_dir = site_dirs
    cert, key = pair
    running = start_server(front, root, cgi_dir, tmp_path / "logs",
                           ["--tls-cert", str(cert), "--tls-key", str(key), "--graceful-timeout", "30"])
    conn = http.client.HTTPSConnection("127.0.0.1", running.port, context=client_context(cert), timeout=30)
    try:
        conn.request("GET", "/big.bin")
        reply = conn.getresponse()
        received = len(reply.read(1 << 20))
        running.process.send_signal(signal.SIGTERM)
        time.sleep(1.0)  # the server's buffers fill while the client reads nothing
        while chunk := reply.read(1 << 20):
            received += len(chunk)
        assert (reply.status, received) == (200, BIG_SIZE)
        assert running.process.wait(timeout=30) == 0
    finally:
        conn.close()
        running.stop()


def test_processes_share_one_context(front, site_dirs, pair, tmp_path):
    if front != "threading":
        pytest.skip("--processes is the threading front's")
    root, cgi_dir = site_dirs
    cert, key = pair
    running = start_server(front, root, cgi_dir, tmp_path / "logs",
                           ["--tls-cert", str(cert), "--tls-key", str(key), "--processes", "2"])
    try:
        for _ in range(4):
            test_python_ssl_keep_alive_alpn_and_version(running, pair)
    finally:
        running.stop()


def test_a_broken_handshake_is_one_log_line(https, pair):
    with socket.create_connection((https.host, https.port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64)  # a record that is no ClientHello
        read_from(sock, timeout=5)
    deadline = time.monotonic() + 5
    while "TLS handshake with 127.0.0.1 failed" not in https.errors():
        assert time.monotonic() < deadline, https.errors()
        time.sleep(0.1)
    assert "Traceback" not in https.errors()
    test_python_ssl_keep_alive_alpn_and_version(https, pair)


def test_a_head_that_stalls_over_tls_gets_408(https, pair):
    """After the handshake, and again on a kept-alive connection, the head has --header-timeout."""
    cert, _ = pair
    with socket.create_connection((https.host, https.port), timeout=15) as raw:
        with client_context(cert).wrap_socket(raw, server_hostname="localhost") as sock:
            if https.front != "gunicorn-sync":  # sync closes after each response
                sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                answer, _ = read_from(sock, until=b"hello, world\n", timeout=10)
                assert answer.startswith(b"HTTP/1.1 200 ")
            started = time.monotonic()
            sock.sendall(b"GET /hello.txt HTTP/1.1\r\n")  # and nothing more
            answer, closed = read_from(sock, timeout=12)
            assert closed and time.monotonic() - started < 12
            assert answer.startswith(b"HTTP/1.1 408 ")
    test_python_ssl_keep_alive_alpn_and_version(https, pair)


@pytest.mark.parametrize("size", [100, 200_000], ids=["held-in-the-loop", "read-by-the-handler"])
def test_a_body_that_stalls_over_tls_gets_408(front, site_dirs, pair, tmp_path, size):
    """--body-timeout over TLS: a small body waits in the loop, a big one in its handler; 408 both."""
    root, cgi_dir = site_dirs
    cert, key = pair
    running = start_server(front, root, cgi_dir, tmp_path / "logs",
                           ["--tls-cert", str(cert), "--tls-key", str(key), "--body-timeout", "1"])
    try:
        with socket.create_connection((running.host, running.port), timeout=30) as raw:
            with client_context(cert).wrap_socket(raw, server_hostname="localhost") as sock:
                framing = b"Content-Length: %d\r\n\r\n" % size if size <= 65536 else \
                    b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % size
                sock.sendall(b"POST /cgi-bin/dump HTTP/1.1\r\nHost: x\r\n" + framing + b"x" * (size // 2))
                answer, closed = read_from(sock, timeout=20)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert closed
    finally:
        running.stop()


def test_plain_http_on_the_tls_port_gets_a_clear_answer(https, pair):
    answer = https.raw(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"This port speaks HTTPS" in answer and b"hello, world" not in answer
    deadline = time.monotonic() + 5
    while "sent plain HTTP to this HTTPS port" not in https.errors():
        assert time.monotonic() < deadline, https.errors()
        time.sleep(0.1)
    assert https.alive()
    test_python_ssl_keep_alive_alpn_and_version(https, pair)


# -- start-up -----------------------------------------------------------------------------------------

def gunicorn_args(site_dirs) -> list[str]:
    root, cgi_dir = site_dirs
    return ["--front", "gunicorn", "--root", str(root), "--cgi-dir", str(cgi_dir), "--port", "0"]


def test_cert_without_key_is_refused(site_dirs, pair):
    cert, _ = pair
    result = run_cgibox(*gunicorn_args(site_dirs), "--tls-cert", str(cert))
    assert_one_line_error(result, "both or neither")


def test_a_key_that_does_not_match_is_refused(site_dirs, pair, tmp_path):
    cert, _ = pair
    _, other_key = make_pair(tmp_path, "other")
    result = run_cgibox(*gunicorn_args(site_dirs), "--tls-cert", str(cert), "--tls-key", str(other_key))
    assert_one_line_error(result, "cannot be used")


def test_a_file_that_is_no_certificate_is_refused(site_dirs, pair, tmp_path):
    _, key = pair
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    result = run_cgibox(*gunicorn_args(site_dirs), "--tls-cert", str(junk), "--tls-key", str(key))
    assert_one_line_error(result, "cannot be used")


def test_tls_from_the_environment(site_dirs, pair):
    cert, _ = pair
    result = run_cgibox(*gunicorn_args(site_dirs), env={"CGIBOX_TLS_CERT": str(cert),
                                                        "CGIBOX_TLS_KEY": str(cert) + ".missing"})
    assert_one_line_error(result, "CGIBOX_TLS_KEY=")
