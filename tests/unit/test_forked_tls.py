"""fronts/forked_tls.py: the relay between a connection kept by the loop's process and a child's
end of a socketpair, run in relay threads. It loses no byte when the child hands the connection
back, gives the socket back to the loop in its own mode, stops at once when abandoned, lets go
of a client that stops reading a dead child's last bytes, and spreads relays over its threads.
Plain sockets stand in for TLS: the relay asks the connection only for recv_into and send."""

from __future__ import annotations

import collections
import select
import socket
import threading
import time
import types

import pytest

from cgibox.fronts import forked_tls
from cgibox.fronts.client import Client
from cgibox.fronts.forked_tls import FIRST_WINDOW, Relay, RelayThread, RelayThreads, Window
from cgibox.fronts.forking_front import ForkingServer


class FakeLoop:
    """What a relay asks of the ConnectionLoop: call_soon, run here when the test says so."""

    def __init__(self) -> None:
        self.calls: collections.deque = collections.deque()
        self.thread = threading.get_ident()

    def call_soon(self, call) -> None:
        self.calls.append(call)

    def run_calls(self) -> None:
        assert threading.get_ident() == self.thread
        while self.calls:
            self.calls.popleft()()


def wait_until(loop: FakeLoop, condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the relay made no progress"
        loop.run_calls()
        time.sleep(0.005)
    loop.run_calls()


def readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def read_some(sock: socket.socket, want: int) -> bytes:
    sock.settimeout(5)
    data = b""
    while len(data) < want:
        part = sock.recv(want - len(data))
        assert part, "closed early"
        data += part
    return data


def relay_between(thread: RelayThread | None = None):
    """A relay on a fresh connection: (relay, loop, the client's peer, the child's end, finished)."""
    loop = FakeLoop()
    server_side, peer = socket.socketpair()
    server_side.settimeout(60.0)  # the loop's mode between its calls, given back at the end
    client = Client(server_side, ("192.0.2.1", 4000), None)  # type: ignore[arg-type]
    mine, child = socket.socketpair()
    finished: list[Relay] = []
    relay = Relay(thread or RelayThread(), loop, client, mine, finished.append)  # type: ignore[arg-type]
    return relay, loop, peer, child, finished


def test_a_hand_back_loses_no_byte_either_way():
    relay, loop, peer, child, finished = relay_between()
    peer.sendall(b"GET /one HTTP/1.1\r\n\r\n")
    assert read_some(child, 21) == b"GET /one HTTP/1.1\r\n\r\n"
    child.sendall(b"response one")
    assert read_some(peer, 12) == b"response one"

    peer.sendall(b"NEXT1")  # reaches the child's queue before it hands back
    wait_until(loop, lambda: readable(child))
    child.sendall(b"-last bytes")  # its response's tail, still to relay
    child.shutdown(socket.SHUT_RD)  # handing back: the relay's sends fail from now on
    drained = child.recv(100, socket.MSG_DONTWAIT)
    peer.sendall(b"NEXT2")  # after the hand-back began: the loop keeps it
    time.sleep(0.2)
    child.close()
    wait_until(loop, lambda: bool(finished))
    assert drained + bytes(relay.undelivered) == b"NEXT1NEXT2"
    assert read_some(peer, 11) == b"-last bytes"
    assert relay.finished and relay.mine.fileno() == -1
    assert relay.client.sock.gettimeout() == 60.0  # back in the loop's mode
    assert not relay.thread.running and relay.thread.given == 0
    assert relay.thread.selector.get_map().keys() == {relay.thread.waker.reader.fileno()}
    peer.close()


def test_a_large_response_arrives_whole_and_in_order():
    relay, loop, peer, child, finished = relay_between()
    body = bytes(range(256)) * (3 * 1024 * 1024 // 256 + 7)  # past every window size
    writer = threading.Thread(target=lambda: (child.sendall(body), child.close()))
    writer.start()
    got = bytearray()
    peer.settimeout(10)
    while len(got) < len(body):
        part = peer.recv(1 << 20)
        assert part
        got += part
    writer.join()
    wait_until(loop, lambda: bool(finished))
    assert got == body
    peer.close()


def test_abandon_stops_the_thread_before_it_returns():
    relay, loop, peer, child, finished = relay_between()
    peer.sendall(b"GET / HTTP/1.1\r\n\r\n")
    read_some(child, 18)
    started = time.monotonic()
    relay.abandon()
    assert time.monotonic() - started < 1.0
    assert relay.finished and relay.mine.fileno() == -1 and relay not in relay.thread.running
    assert relay.client.sock.gettimeout() == 60.0
    loop.run_calls()
    assert not finished  # abandoned: the caller closes the client, no report is settled
    relay.client.sock.close()  # the caller's part: safe now, the thread no longer touches it
    peer.close()
    child.close()


@pytest.mark.parametrize("child_ends_first", [True, False])
def test_a_client_that_stops_reading_is_let_go(monkeypatch, child_ends_first):
    """No byte moves for IO_TIMEOUT while bytes wait for the client: the relay drops them and
    whatever else the child sends (so a child blocked on its send ends), and the connection is
    closed after (client_gone), whether the child ended first or still writes."""
    monkeypatch.setattr(forked_tls, "IO_TIMEOUT", 0.3)
    monkeypatch.setattr(forked_tls, "SWEEP_SECONDS", 0.1)
    relay, loop, peer, child, finished = relay_between()
    if child_ends_first:
        child.sendall(b"x" * 600_000)  # less than the relay's window and the client's buffer
        child.close()
    else:
        child.settimeout(10)
        child.sendall(b"x" * 8_000_000)  # more than both: returns once the relay drops them
    wait_until(loop, lambda: relay.client_gone, timeout=10)
    child.close()
    wait_until(loop, lambda: bool(finished), timeout=10)
    assert relay.client_gone and not relay.to_client
    peer.close()


def test_relays_spread_over_the_threads():
    threads = RelayThreads(count=2)
    first = threads.pick()
    assert threads.threads == [first]
    relays = [relay_between(first)]
    second = threads.pick()  # the first one is busy: a second thread starts
    assert second is not first
    relays.append(relay_between(second))
    assert threads.pick() in (first, second) and len(threads.threads) == 2
    for _relay, loop, peer, child, finished in relays:
        child.close()
        peer.close()
        wait_until(loop, lambda done=finished: bool(done))
    assert first.given == second.given == 0


def test_a_relay_still_sending_keeps_the_server_busy():
    """A stop drains while busy(): a child that has reported is no longer busy, but its relay may
    still hold the response's tail for a client reading slowly; end_stop would cut it."""
    server = types.SimpleNamespace(waiting=collections.deque(), children={},
                                   relays={"client": types.SimpleNamespace(finished=False)})
    assert ForkingServer.busy(server)  # type: ignore[arg-type]
    server.relays["client"].finished = True
    assert not ForkingServer.busy(server)  # type: ignore[arg-type]


@pytest.mark.parametrize("limit", [FIRST_WINDOW // 2, FIRST_WINDOW, 4 * FIRST_WINDOW])
def test_a_window_grows_to_its_limit_and_keeps_order(limit):
    window = Window(limit)
    written = bytearray()
    sent = bytearray()
    counter = 0
    while len(sent) < 3 * limit:
        while window.make_room():
            space = window.space()
            chunk = bytes((counter + i) % 251 for i in range(min(len(space), 1000)))
            counter += len(chunk)
            space[:len(chunk)] = chunk
            window.filled(len(chunk))
            written += chunk
        assert len(window.buffer) == limit  # no room only at its limit
        take = min(len(window.waiting()), 777)
        sent += window.waiting()[:take]
        window.taken(take)
    sent += window.take_all()
    assert not window and sent == written
