"""`--front forking`: a busy connection runs in a forked child (at most --threads at once). The
child answers the requests it has, then hands the connection back: the parent kept the socket;
the child reports over a pipe whether it goes on, and the bytes it read past its last response.
A TLS connection stays in its child to the end (its SSL state lives there)."""

from __future__ import annotations

import os
import select
import signal
import struct
from typing import Any

from cgibox.config import Config
from cgibox.core.connection import RequestHead
from cgibox.core.router import App
from cgibox.fronts.forks import fork_holding, release
from cgibox.fronts.handler import HandBackNow, Handler
from cgibox.fronts.loop import Client
from cgibox.fronts.loop_server import LoopServer

# a forked child's report to the parent: keep-alive?, responses finished, bytes read past them
REPORT = struct.Struct("!?QI")
# a forked child keeps a connection whose next bytes come within this long: a child starts cold
# (every page it touches is copied on write: a first response costs it milliseconds), so one
# per request would cut a busy connection's rate tenfold; an idle one is handed back soon after
HANDBACK_AFTER_IDLE = 0.2


class ForkingServer(LoopServer):
    """Busy connections run in forked children (at most `threads` at once)."""

    def __init__(self, address: tuple[str, int], app: App, config: Config) -> None:
        self.max_children = config.threads
        self.wanted_back = False  # in a child: the parent asked for the slot (SIGUSR1)
        self.waiting_idle = False  # in a child: waiting where SIGUSR1 may end the wait
        self.children: dict[int, tuple[int, Client, bytearray]] = {}  # report fd -> child
        self.waiting: list[Client] = []  # heads waiting for a free child slot
        super().__init__(address, app, config, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if len(self.children) >= self.max_children:
            self.waiting.append(request)
            # every slot is taken: children waiting on an idle connection hand it back now
            for pid, _, _ in self.children.values():
                try:
                    os.kill(pid, signal.SIGUSR1)
                except ProcessLookupError:
                    pass
            return
        self._fork(request)

    def _fork(self, client: Client) -> None:
        report_r, report_w = os.pipe()
        pid = fork_holding()  # released by install_child_signals
        if pid:
            client.event = None  # the child's to act on; the parent keeps no request
            os.close(report_w)
            os.set_blocking(report_r, False)
            self.children[report_r] = (pid, client, bytearray())
            self.loop.selector.register(report_r, 1, self._on_report)
            return
        # the child: this connection only, then its report, then exit
        status = 1
        try:
            os.close(report_r)
            for fd in self.children:
                os.close(fd)
            self.loop.close_inherited(client)
            install_child_signals(self)
            # forked into the last free slot: other heads may soon wait for one (a crowd of new
            # connections), so this child answers what it has and hands back without waiting. Not
            # a TLS connection, which cannot be handed back: closing it early would only cut its
            # keep-alive; it gives up an idle wait when the parent asks (SIGUSR1).
            if not client.ends_in_child:
                self.wanted_back = self.wanted_back or len(self.children) + 1 >= self.max_children
            self.finish_request(client, client.address)  # type: ignore[arg-type]
            http = client.http
            keep = client.keep and not self.stopping and not client.ends_in_child
            leftover = bytes(http.buffer) if keep else b""
            report = REPORT.pack(keep, http.served, len(leftover)) + leftover
            with open(report_w, "wb", closefd=True) as pipe:
                pipe.write(report)
            status = 0
        except Exception:  # noqa: BLE001
            self.handle_error(client, client.address)
        finally:
            os._exit(status)

    def _on_report(self, fd: int) -> None:
        pid, client, report = self.children[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if data:
            report += data
            return
        # the end of the report: the child is done with the connection
        self.loop.selector.unregister(fd)
        os.close(fd)
        del self.children[fd]
        os.waitpid(pid, 0)
        client.keep = False
        if len(report) >= REPORT.size:
            keep, served, length = REPORT.unpack_from(report)
            leftover = bytes(report[REPORT.size:REPORT.size + length])
            if keep and len(leftover) == length:
                client.http.resume(served, leftover)
                client.keep = True
        self.loop.hand_back(client)
        while self.waiting and len(self.children) < self.max_children:
            self._fork(self.waiting.pop(0))

    def start_loop(self) -> None:
        # a child forked before it installs its own SIGUSR1 handler must not die of one (the
        # default action); the handler it installs is reset by exec, so scripts get the default
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        self.app.load_on_demand_modules()  # each child would import them again, then exit
        super().start_loop()

    def busy(self) -> bool:
        return bool(self.children or self.waiting)

    # -- in a child: what its handler asks ---------------------------------------------------------

    def handler_window(self, client: Client) -> float | None:
        # a TLS connection cannot go back to the parent: its child waits under the loop's deadlines
        return None if client.ends_in_child else HANDBACK_AFTER_IDLE

    def may_wait(self, client: Client) -> bool:
        if self.stopping:
            return False
        # the parent wants the slot: a plain connection goes back; a TLS one is closed if idle
        # (as a keep-alive timeout would) and keeps a head already arriving
        return not self.wanted_back or (client.ends_in_child and not client.http.idle)

    def wait_readable(self, client: Client, poller: select.poll, seconds: float) -> bool:
        # SIGUSR1 ends the wait at once, unless a TLS head is arriving (that one is finished)
        self.waiting_idle = not client.ends_in_child or client.http.idle
        try:
            return super().wait_readable(client, poller, seconds)
        except HandBackNow:
            return False
        finally:
            self.waiting_idle = False

    def hands_back_for_body(self, client: Client, event: RequestHead) -> bool:
        return False  # the parent cannot take a connection back in the middle of a request

    # -- stopping --------------------------------------------------------------------------------

    def begin_stop(self) -> None:
        for pid, _, _ in list(self.children.values()):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def end_stop(self) -> None:
        for pid, _, _ in list(self.children.values()):
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def install_child_signals(server: ForkingServer) -> None:
    """In a forked child: on SIGTERM/SIGINT finish the request in flight, then close; on SIGUSR1
    (the parent needs the slot) hand an idle connection back at once instead of waiting."""
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
