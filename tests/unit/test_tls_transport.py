"""fronts/tls_transport.py on a socket pair in one thread: the non-blocking handshake step, reads
that drain what the SSL layer already decrypted (the selector cannot see it), plain HTTP spotted."""

from __future__ import annotations

import selectors
import shutil
import socket
import ssl
import subprocess

import pytest

from cgibox.core.connection import CLOSED_EVENT, Connection, EarlyError
from cgibox.core.wire import PLAIN_ON_TLS_PORT
from cgibox.fronts import tls_transport
from cgibox.tls import server_context


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "c.crt", folder / "c.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.fixture
def ends(pair):
    """(TLSClient on the server end, the client's raw socket, the client's context), registered."""
    cert, key = pair
    server_end, client_end = socket.socketpair()
    selector = selectors.DefaultSelector()
    tls = tls_transport.TLSClient(server_end, ("127.0.0.1", 1), Connection(1 << 20),
                                  server_context(cert, key), selector)
    selector.register(tls.sock, selectors.EVENT_READ, "data")
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    yield tls, client_end, context
    selector.close()
    tls.sock.close()
    client_end.close()


def handshake(tls, client_end, context) -> ssl.SSLSocket:
    client = context.wrap_socket(client_end, server_hostname="localhost", do_handshake_on_connect=False)
    client.setblocking(False)
    done = False
    for _ in range(20):  # each side steps until it waits for the other
        if not done:
            try:
                client.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                pass
        if tls.advance_transport() is True and done:
            return client
    raise AssertionError("the handshake did not finish")


def test_the_handshake_steps_without_blocking(ends):
    tls, client_end, context = ends
    assert tls.advance_transport() is False  # nothing sent yet: wait for the socket
    with pytest.raises(BlockingIOError):
        tls.recv_ready()  # no HTTP bytes before the handshake
    client = handshake(tls, client_end, context)
    assert tls.sock.gettimeout() == tls_transport.IO_TIMEOUT  # the handlers' mode between loop calls
    client.setblocking(True)
    client.sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert tls.recv_ready() == b"GET / HTTP/1.1\r\n\r\n"
    with pytest.raises(BlockingIOError):
        tls.recv_ready()


def test_bytes_the_ssl_layer_holds_are_read_too(ends, monkeypatch):
    """A record larger than one read leaves decrypted bytes in the SSL layer, where the selector
    cannot see them: recv_ready takes them all, so a pipelined request there does not stall."""
    tls, client_end, context = ends
    client = handshake(tls, client_end, context)
    client.setblocking(True)
    pipelined = b"GET /a HTTP/1.1\r\n\r\n" * 3
    client.sendall(pipelined)  # one record
    monkeypatch.setattr(tls_transport, "RECV_SIZE", 7)
    assert tls.recv_ready() == pipelined
    assert not tls.transport_pending()


def test_plain_http_is_answered_in_plain_text(ends):
    tls, client_end, _ = ends
    client_end.sendall(b"GET / HTTP/1.1\r\n\r\n")
    event = tls.advance_transport()
    assert isinstance(event, EarlyError) and (event.status, event.detail) == (400, PLAIN_ON_TLS_PORT)
    assert type(tls.sock) is socket.socket  # the answer goes without the SSL layer
    tls.sock.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert client_end.recv(100).startswith(b"HTTP/1.1 400 ")


def test_a_broken_handshake_closes_with_a_log_line(ends, capfd):
    tls, client_end, _ = ends
    client_end.sendall(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64)
    assert tls.advance_transport() is CLOSED_EVENT
    assert "cgibox: TLS handshake with 127.0.0.1 failed: " in capfd.readouterr().err


def test_a_stalled_handshake_times_out_without_a_408(ends, capfd):
    tls, client_end, _ = ends
    client_end.sendall(b"\x16\x03\x01\x00\x80")
    assert tls.advance_transport() is False
    assert tls.timed_out() is CLOSED_EVENT  # no HTTP answer inside a handshake
    assert "not finished within --header-timeout" in capfd.readouterr().err
