"""Many raw client sockets at once, for the behaviour tests of crowds and slow clients: opening
them, reading every one until its answer is in, and the open-files limit they need."""

from __future__ import annotations

import resource
import selectors
import socket
import time
from collections.abc import Iterator

import pytest


def raise_open_files(wanted: int, needed: int) -> Iterator[None]:
    """Raise this process's soft RLIMIT_NOFILE to `wanted` (the hard limit at most) for a module
    of tests, skipping them if fewer than `needed` files may be open; the old limit comes back."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < needed:
        pytest.skip(f"this process may not open {needed} files (RLIMIT_NOFILE)")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def connect(server, timeout: float = 60.0) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=timeout)


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def read_all(socks: list[socket.socket], until: bytes, timeout: float = 60.0) -> dict[socket.socket, bytes]:
    """Read every socket until `until` arrived on it (or it closed), all within `timeout`; the
    sockets are left blocking, with `timeout`."""
    received = {sock: b"" for sock in socks}
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        waiting = len(socks)
        while waiting and time.monotonic() < deadline:
            for key, _ in selector.select(1.0):
                sock = key.fileobj
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionError:
                    chunk = b""
                received[sock] += chunk
                if not chunk or until in received[sock]:
                    selector.unregister(sock)
                    waiting -= 1
    for sock in socks:
        sock.setblocking(True)
        sock.settimeout(timeout)
    return received
