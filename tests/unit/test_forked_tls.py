"""fronts/forked_tls.py: the relay between a connection kept by the loop and a child's end of a
socketpair loses no byte when the child hands the connection back (plain sockets stand in for
TLS: the relay only asks the connection for recv_ready and send)."""

from __future__ import annotations

import select
import selectors
import socket
import time
import types

from cgibox.fronts.forked_tls import Relay
from cgibox.fronts.loop import Client


def pump_until(loop, condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the relay made no progress"
        for key, _ in loop.selector.select(0.05):
            key.data(key.fileobj)


def readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def read_some(sock: socket.socket, want: int) -> bytes:
    sock.settimeout(5)
    data = b""
    while len(data) < want:
        data += sock.recv(want - len(data))
    return data


def test_a_hand_back_loses_no_byte_either_way():
    loop = types.SimpleNamespace(selector=selectors.DefaultSelector())
    server_side, peer = socket.socketpair()
    server_side.setblocking(True)
    client = Client(server_side, ("192.0.2.1", 4000), None)  # type: ignore[arg-type]
    mine, child = socket.socketpair()
    finished: list[Relay] = []
    relay = Relay(loop, client, mine, finished.append)  # type: ignore[arg-type]

    peer.sendall(b"GET /one HTTP/1.1\r\n\r\n")
    pump_until(loop, lambda: readable(child))
    assert read_some(child, 21) == b"GET /one HTTP/1.1\r\n\r\n"
    child.sendall(b"response one")
    pump_until(loop, lambda: readable(peer))
    assert read_some(peer, 12) == b"response one"

    peer.sendall(b"NEXT1")  # reaches the child's queue before it hands back
    pump_until(loop, lambda: readable(child))
    child.sendall(b"-last bytes")  # its response's tail, still to relay
    child.shutdown(socket.SHUT_RD)  # handing back: the loop's sends fail from now on
    drained = child.recv(100, socket.MSG_DONTWAIT)
    peer.sendall(b"NEXT2")  # after the hand-back began: the loop keeps it
    pump_until(loop, lambda: bool(relay.undelivered))
    child.close()
    pump_until(loop, lambda: bool(finished))
    assert drained + bytes(relay.undelivered) == b"NEXT1NEXT2"
    assert read_some(peer, 11) == b"-last bytes"
    assert relay.finished and not loop.selector.get_map()
    peer.close()
    server_side.close()
