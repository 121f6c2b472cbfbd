"""TLS connections on the forking front. A TLS session's state (sequence numbers, keys, buffered
records) lives in the OpenSSL object of the process that read and wrote it, and no API moves it,
so such a connection cannot be sent to a child forked ahead: once its head is complete (the
handshake and the head were read by the loop), the loop's process forks a child for it, which
keeps it to its end (waiting for each next head under the loop's deadlines) and closes it. An
idle one is closed when the loop needs the slot (SIGUSR1), as a keep-alive timeout would.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

from cgibox.fronts.forks import fork_holding
from cgibox.fronts.loop import Client

if TYPE_CHECKING:
    from cgibox.fronts.forking_front import ForkingServer


class TLSChildren:
    """The children running TLS connections, each watched through a pipe that closes when it ends."""

    def __init__(self, server: ForkingServer) -> None:
        self.server = server
        self.running: dict[int, tuple[int, Client]] = {}  # pipe fd -> (pid, connection)
        self.waiting: list[Client] = []

    def start(self, client: Client) -> None:
        server = self.server
        if server.in_use() >= server.max_children and not server.idle:
            self.waiting.append(client)
            for pid, _ in self.running.values():  # idle TLS children give up their slot
                server._signal(pid, signal.SIGUSR1)
            return
        if server.in_use() >= server.max_children and server.idle:
            server._forget(server.idle.pop())  # a child forked ahead and idle gives its slot
        done_r, done_w = os.pipe()
        pid = fork_holding()  # released by install_child_signals
        if pid:
            client.event = None
            os.close(done_w)
            self.running[done_r] = (pid, client)
            server.loop.selector.register(done_r, 1, self._on_done)
            return
        status = 1
        try:
            from cgibox.fronts.forking_front import install_child_signals
            os.close(done_r)
            for fd in self.running:
                os.close(fd)
            for child in server.children.values():
                child.channel.close()
            if server.control is not None:
                server.control.close()
            server.loop.close_inherited(client)
            install_child_signals(server)
            server.finish_request(client, client.address)  # type: ignore[arg-type]
            status = 0
        except Exception:  # noqa: BLE001
            server.handle_error(client, client.address)
        finally:
            os._exit(status)

    def _on_done(self, fd: int) -> None:
        pid, client = self.running.pop(fd)
        self.server.loop.selector.unregister(fd)
        os.close(fd)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        client.keep = False  # its SSL state stayed in the child: closed, never parked again
        self.server.loop.hand_back(client)
        while self.waiting and self.server.in_use() < self.server.max_children:
            self.start(self.waiting.pop(0))

    def stop(self) -> None:
        for pid, _ in self.running.values():
            self.server._signal(pid, signal.SIGTERM)

    def kill(self) -> None:
        for pid, _ in list(self.running.values()):
            self.server._signal(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
