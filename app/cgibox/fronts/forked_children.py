"""The forking front's other processes and what they say to the loop: the template, which forks
children ahead when the loop asks, and each child, which answers the connections the loop sends
it (JOB), then reports how each ended (REPORT). A child's state is the server object it was
forked with (`ChildServer`: its stop and hand-back flags, its config, its handler); all it
shares with the loop is its socket and the connections sent over it.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
from typing import Any, Protocol

from cgibox.config import Config
from cgibox.core.connection import Connection
from cgibox.fronts.client import RECV_SIZE, Client
from cgibox.fronts.forks import fork_holding, release
from cgibox.fronts.handler import HandBackNow

# loop -> child: responses finished on the connection, bytes that follow (the peer's address, its
# head, then what was read past it), the address's length, hand back soon (the child took the
# last free slot), the server is stopping, relayed (a socketpair end in place of the connection)
JOB = struct.Struct("!QIH???")
# child -> loop: keep-alive?, responses finished, bytes read past them, this child exits now
REPORT = struct.Struct("!?QI?")
# template -> loop: a new child's pid (its socket rides along)
BORN = struct.Struct("!i")
# the bytes after a JOB or REPORT go in messages this long (SOCK_SEQPACKET keeps them apart)
PART = 65536


class ChildServer(Protocol):
    """What a child asks of the ForkingServer it was forked with."""

    stopping: bool  # finish the request in flight, then exit
    wanted_back: bool  # the loop wants the slot: hand an idle connection back
    waiting_idle: bool  # waiting where SIGUSR1 may end the wait
    config: Config

    def make_connection(self, address: tuple[Any, ...]) -> Connection: ...

    def finish_request(self, request: Any, client_address: Any) -> None: ...

    def handle_error(self, request: Any, client_address: Any) -> None: ...


def send_parts(sock: socket.socket, data: bytes) -> None:
    for start in range(0, len(data), PART):
        sock.sendall(data[start:start + PART])


def recv_exactly(sock: socket.socket, length: int) -> bytes:
    data = bytearray()
    while len(data) < length:
        part = sock.recv(PART)
        if not part:
            raise ConnectionError("the other end closed")
        data += part
    return bytes(data)


def run_template(control: socket.socket, server: ChildServer) -> None:
    """The template process: forks a child each time the loop asks (a byte on `control`) and
    sends the loop the child's socket; exits when the loop closes `control`. It holds no
    connection, so a fork copies little and the child has nothing to close."""
    status = 1
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)  # the loop ends it by closing `control`
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # its children are reaped by the kernel
        signal.set_wakeup_fd(-1)
        release()
        while True:
            try:
                asked = control.recv(4096)
            except InterruptedError:
                continue
            if not asked:
                status = 0
                return
            for _ in asked:
                mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                pid = fork_holding()
                if pid == 0:
                    control.close()
                    mine.close()
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # scripts are waited for
                    run_child(theirs, server)
                theirs.close()
                try:
                    socket.send_fds(control, [BORN.pack(pid)], [mine.fileno()])
                except OSError:
                    status = 0
                    return
                finally:
                    mine.close()
    finally:
        os._exit(status)


def run_child(channel: socket.socket, server: ChildServer) -> None:
    """A child forked ahead: take a connection from the loop, answer it, report, and again, until
    --max-requests responses (or the loop closes `channel`, or stopping)."""
    status = 1
    try:
        install_child_signals(server)
        answered = 0
        while not server.stopping:
            try:
                data, fds, _, _ = socket.recv_fds(channel, JOB.size, 1)
            except InterruptedError:
                continue
            if not data or not fds:
                break
            served, length, address_length, last_slot, stopping, relayed = JOB.unpack(data)
            server.stopping = server.stopping or stopping
            server.wanted_back = last_slot
            sock = socket.socket(fileno=fds[0])
            payload = recv_exactly(channel, length)
            host, port = payload[:address_length].decode().split("\0")
            keep, leftover, served_after = answer(server, sock, (host, int(port)), served,
                                                  payload[address_length:], relayed)
            answered += served_after - served
            last = answered >= server.config.max_requests or server.stopping
            channel.sendall(REPORT.pack(keep, served_after, len(leftover), last))
            send_parts(channel, leftover)
            if last:
                break
        status = 0
    except Exception:  # noqa: BLE001
        server.handle_error(None, ("-",))
    finally:
        os._exit(status)


def answer(server: ChildServer, sock: socket.socket, address: tuple[str, int], served: int,
           payload: bytes, relayed: bool) -> tuple[bool, bytes, int]:
    """Run one connection handed over by the loop: (keep-alive?, bytes read past the last
    response, responses finished on it). This process's copy of the socket is closed."""
    try:
        http = server.make_connection(address)
        http.resume(served, payload)
        client = Client(sock, address, http)
        client.event = http.next_event()
        server.finish_request(client, address)
        keep = client.keep and not server.stopping
        if keep and relayed:
            # a socketpair end a relay carries TLS through: after this, the relay's sends fail
            # (EPIPE) and it keeps those bytes; what it sent before is queued here: take it
            sock.shutdown(socket.SHUT_RD)
            while True:
                try:
                    data = sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
                if not data:
                    break
                http.buffer += data
        return keep, bytes(http.buffer) if keep else b"", http.served
    except OSError:
        return False, b"", served
    finally:
        sock.close()


def install_child_signals(server: ChildServer) -> None:
    """In a child: on SIGTERM/SIGINT finish the request in flight, then close; on SIGUSR1 (the
    loop needs the slot) hand an idle connection back at once instead of waiting."""
    def on_stop(signum: int, frame: object) -> None:
        server.stopping = True

    def on_wanted(signum: int, frame: object) -> None:
        server.wanted_back = True
        if server.waiting_idle:
            raise HandBackNow

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_wanted)
    release()
