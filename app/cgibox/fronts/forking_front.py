"""`--front forking`: every request runs in a process apart from the loop and from the requests
running at once, paid for before it arrives. At start the loop's process forks a small template
process (no connections, nothing but a control socket); the template forks children ahead of need
(at most --threads), each with a Unix socket to the loop. The loop sends a child a ready
connection (`socket.send_fds`) with its head and the bytes read ahead; the child answers, then
reports back (keep-alive?, responses, bytes read past them) and waits for the next one, and exits
after --max-requests. A TLS connection, whose SSL state cannot move between processes, stays
with the loop's process, whose relay threads carry its plaintext to the child over a socketpair
(forked_tls.py).
"""

from __future__ import annotations

import collections
import os
import select
import signal
import socket
import time
from typing import TYPE_CHECKING, Any

from cgibox.config import Config
from cgibox.core.accesslog import server_log
from cgibox.core.cgi_slots import owner_gone, reclaim_orphans
from cgibox.core.connection import RequestHead
from cgibox.core.router import App
from cgibox.fronts.client import IO_TIMEOUT, Client, timeval
from cgibox.fronts.forked_children import BORN, JOB, PART, REPORT, run_template, send_parts
from cgibox.fronts.forks import fork_holding
from cgibox.fronts.handler import HandBackNow, Handler
from cgibox.fronts.loop_server import LoopServer

if TYPE_CHECKING:
    from cgibox.fronts.forked_tls import Relay, RelayThreads

# how long a child whose socket closed may take to finish exiting before its scripts are reclaimed
CHILD_EXIT_WAIT = 1.0
# a child keeps a connection whose next bytes come within this long (a keep-alive client sends
# its next request at once); an idle one goes back to the loop soon after
HANDBACK_AFTER_IDLE = 0.2
# children idle this long are let go (their socket closed: they exit), down to SPARE_CHILDREN: a
# burst's 64 children do not stay forever, and a few stay ready for the next request
IDLE_CHILD_SECONDS = 10.0
SPARE_CHILDREN = 2
# the send buffer of a relayed child's end (the kernel caps it at net.core.wmem_max): 64 MiB over
# TLS, 4 connections, medians of three: 438 MB/s at the default 208 KiB, 525 at 1 MiB
RELAY_SEND_BUFFER = 1024 * 1024


class Child:
    """The loop's view of one child forked ahead: its pid, its socket, the connection it runs."""

    __slots__ = ("pid", "channel", "client", "inbox", "idle_since", "asked_back")

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel
        self.client: Client | None = None
        self.inbox = bytearray()
        self.idle_since = time.monotonic()
        # asked to hand its connection back (sent it as the last slot, or SIGUSR1 since): once
        # per connection, not on every event while heads wait
        self.asked_back = False


class ForkingServer(LoopServer):
    """Busy connections run in children forked ahead (at most `threads` at once)."""

    def __init__(self, address: tuple[str, int], app: App, config: Config) -> None:
        self.max_children = config.threads
        self.wanted_back = False  # in a child: the loop asked for the slot (SIGUSR1)
        self.waiting_idle = False  # in a child: waiting where SIGUSR1 may end the wait
        self.children: dict[int, Child] = {}  # channel fd -> child, idle or busy
        self.idle: list[Child] = []
        self.asked = 0  # children asked of the template, not yet arrived
        self.waiting: collections.deque[Client] = collections.deque()  # heads for a free child
        self.template_pid = 0
        self.control: socket.socket | None = None
        self.relays: dict[Client, Relay] = {}  # TLS connections in a child, and their relays
        self.relay_threads: RelayThreads | None = None  # started with the first TLS relay
        super().__init__(address, app, config, Handler)

    # -- the loop's side -------------------------------------------------------------------------

    def start_loop(self) -> None:
        # a child forked before it installs its own SIGUSR1 handler must not die of one (the
        # default action); the handler it installs is reset by exec, so scripts get the default
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        self.app.load_on_demand_modules()  # each child would import them again
        control = self._start_template(holding_connections=False)
        super().start_loop()
        self.loop.keep_heads = True  # a child is sent a head's own bytes
        self.loop.selector.register(control, 1, self._on_born)
        self._ask(1)  # one child ahead of the first request

    def _start_template(self, holding_connections: bool) -> socket.socket:
        """Fork the template process and keep the loop's end of its control socket. At start
        this process holds no connection yet; a template forked later (the first one was
        killed) drops its copies of every connection and of the loop's sockets first."""
        control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = fork_holding()
        if pid == 0:
            control.close()
            if holding_connections:
                self.loop.close_inherited(None)  # the listener too
                for child in self.children.values():
                    child.channel.close()
                for relay in self.relays.values():
                    relay.mine.close()
            else:
                self.socket.close()  # the listener stays the loop's alone
            run_template(theirs, self)
        theirs.close()
        self.template_pid = pid
        self.control = control
        return control

    def _template_gone(self) -> None:
        """The template exited while the server runs (killed, out of memory): reap it and fork
        another, so that children keep coming; the children it made serve on meanwhile."""
        assert self.control is not None
        self.loop.selector.unregister(self.control)
        self.control.close()
        self.control = None
        self.asked = 0
        try:
            os.waitpid(self.template_pid, 0)
        except ChildProcessError:
            pass
        if self.stopping:
            return
        server_log("cgibox: the forking front's template process exited; starting another")
        control = self._start_template(holding_connections=True)
        self.loop.selector.register(control, 1, self._on_born)
        self._serve_waiting()

    def process_request(self, request: Any, client_address: Any) -> None:
        client: Client = request
        self.waiting.append(client)
        self._serve_waiting()

    def in_use(self) -> int:
        return len(self.children) + self.asked

    def _serve_waiting(self) -> None:
        while self.waiting and self.idle:
            self._send(self.idle.pop(), self.waiting.popleft())  # the warmest: the last back
        if not self.waiting and self.idle:
            # the longest idle are first in the list: let go of those idle too long
            let_go = time.monotonic() - IDLE_CHILD_SECONDS
            while len(self.idle) > SPARE_CHILDREN and self.idle[0].idle_since < let_go:
                self._forget(self.idle[0])
            return
        # children for what waits, and one ahead, as far as --threads allows
        wanted = len(self.waiting) + (0 if self.idle else 1) - self.asked
        self._ask(min(wanted, self.max_children - self.in_use()))
        if self.waiting and self.in_use() >= self.max_children:
            # every slot is taken: children waiting on an idle connection hand it back now; each
            # asked once (a signal per child per event was most of the loop's time in a crowd)
            for child in self.children.values():
                if child.client is not None and not child.asked_back:
                    child.asked_back = True
                    self._signal(child.pid, signal.SIGUSR1)

    def _ask(self, count: int) -> None:
        if count > 0 and self.control is not None and not self.stopping:
            try:
                self.control.send(b"f" * count)
                self.asked += count
            except OSError:  # the template is gone: _on_born sees its socket close and starts another
                pass

    def _send(self, child: Child, client: Client) -> None:
        http = client.http
        address = f"{client.address[0]}\0{client.address[1]}".encode()
        payload = address + client.head + bytes(http.buffer)
        last_slot = self.in_use() >= self.max_children and not self.idle
        relayed = client.pinned  # TLS: the child gets a socketpair end, a relay thread carries it
        given = client.sock
        if relayed:
            mine, given = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            given.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                             timeval(self.config.body_timeout))
            given.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval(IO_TIMEOUT))
            # the child's responses: a bigger buffer, fewer wake-ups of the relay per byte
            given.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RELAY_SEND_BUFFER)
        try:
            socket.send_fds(child.channel, [JOB.pack(http.served, len(payload), len(address), last_slot,
                                                     self.stopping, relayed)], [given.fileno()])
            send_parts(child.channel, payload)
        except OSError:  # the child died meanwhile: the connection goes to another
            if relayed:
                mine.close()
                given.close()
            self._child_gone(child)
            self.waiting.appendleft(client)
            return
        client.head = b""
        client.event = None
        child.client = client
        child.asked_back = last_slot
        if relayed:
            given.close()
            from cgibox.fronts.forked_tls import Relay, RelayThreads
            if self.relay_threads is None:
                self.relay_threads = RelayThreads()
            self.relays[client] = Relay(self.relay_threads.pick(), self.loop, client, mine,
                                        self._relay_done)

    def _relay_done(self, relay: Relay) -> None:
        if relay.report is not None:
            self._settle(relay.client, *relay.report)

    def _settle(self, client: Client, keep: bool, served: int, leftover: bytes) -> None:
        """A child is done with `client`: back to the loop (parked again or closed)."""
        relay = self.relays.pop(client, None)
        if relay is not None:
            leftover += bytes(relay.undelivered)
            keep = keep and not relay.client_gone  # the relay gave up on it: a response went short
        client.keep = keep
        if keep:
            client.http.resume(served, leftover)
        self.loop.hand_back(client)

    def _on_born(self, _fileobj: object) -> None:
        assert self.control is not None
        try:
            data, fds, _, _ = socket.recv_fds(self.control, BORN.size, 1, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset: the template died with asks unread
            data, fds = b"", []
        if not data:
            self._template_gone()
            return
        (pid,) = BORN.unpack(data)
        self.asked = max(0, self.asked - 1)
        if not fds:
            return
        channel = socket.socket(fileno=fds[0])
        child = Child(pid, channel)
        self.children[channel.fileno()] = child
        self.loop.selector.register(channel, 1, self._on_child)
        self.idle.append(child)
        self._serve_waiting()

    def _on_child(self, channel: socket.socket) -> None:
        child = self.children.get(channel.fileno())
        if child is None:
            return
        try:
            data = channel.recv(PART, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._child_gone(child)
            self._serve_waiting()
            return
        child.inbox += data
        if len(child.inbox) < REPORT.size:
            return
        keep, served, length, last = REPORT.unpack_from(child.inbox)
        if len(child.inbox) < REPORT.size + length:
            return
        leftover = bytes(child.inbox[REPORT.size:REPORT.size + length])
        child.inbox.clear()
        client, child.client = child.client, None
        if client is not None:
            relay = self.relays.get(client)
            if relay is not None and not relay.finished:  # its last response bytes are on the way
                relay.report = (keep, served, leftover)
            else:
                self._settle(client, keep, served, leftover)
        if last:  # past --max-requests: it exits; a fresh one is forked ahead
            self._forget(child)
        else:
            child.idle_since = time.monotonic()
            self.idle.append(child)
        self._serve_waiting()

    def _child_gone(self, child: Child) -> None:
        """A child's socket closed without a report: it died (killed, crashed). The connection it
        had is closed (its client sees the connection end, not a made-up answer)."""
        self._forget(child)
        reclaim_after_exit([child.pid])  # the script it ran is ended, its --cgi-max slot freed
        if child.client is not None:
            relay = self.relays.pop(child.client, None)
            if relay is not None:
                relay.abandon()
            server_log(f"cgibox: child {child.pid} ended while answering {child.client.address[0]}; "
                       "connection closed")
            self.loop.close(child.client)
            child.client = None

    def _forget(self, child: Child) -> None:
        if self.children.pop(child.channel.fileno(), None) is None:
            return
        if child in self.idle:
            self.idle.remove(child)
        self.loop.selector.unregister(child.channel)
        child.channel.close()

    def busy(self) -> bool:
        # a relay outlives its child's report while the response's last bytes go out through TLS
        return (bool(self.waiting) or any(c.client for c in self.children.values())
                or any(not relay.finished for relay in self.relays.values()))

    @staticmethod
    def _signal(pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    def begin_stop(self) -> None:
        for child in self.children.values():
            if child.client is not None:
                self._signal(child.pid, signal.SIGTERM)

    def end_stop(self) -> None:
        killed = []
        for child in list(self.children.values()):
            if child.client is not None:
                self._signal(child.pid, signal.SIGKILL)
                killed.append(child.pid)
            self._forget(child)
        # their scripts now, not at this process's exit: by then the template is gone and the
        # children are init's (no longer this process's descendants), perhaps not yet dead
        reclaim_after_exit(killed)
        for relay in list(self.relays.values()):
            relay.abandon()
        self.relays.clear()
        if self.control is not None:
            self.control.close()  # the template exits; idle children see their socket close
            self.control = None
        try:
            os.waitpid(self.template_pid, 0)
        except ChildProcessError:
            pass

    # -- in a child: what its handler asks ---------------------------------------------------------

    def handler_window(self, client: Client) -> float | None:
        return HANDBACK_AFTER_IDLE

    def may_wait(self, client: Client) -> bool:
        return not (self.stopping or self.wanted_back)  # the loop wants the slot: hand back

    def wait_readable(self, client: Client, poller: select.poll, seconds: float) -> bool:
        self.waiting_idle = True  # SIGUSR1 ends the wait at once
        try:
            return super().wait_readable(client, poller, seconds)
        except HandBackNow:
            return False
        finally:
            self.waiting_idle = False

    def hands_back_for_body(self, client: Client, event: RequestHead) -> bool:
        return False  # the loop cannot take a connection back in the middle of a request


def reclaim_after_exit(pids: list[int]) -> None:
    """End the scripts of children that died or were killed, and free their slots. A child
    stops counting as running a moment after its socket closes or its SIGKILL is sent: wait for
    that (bounded), or the reclaim would still see a live owner and leave its script running."""
    deadline = time.monotonic() + CHILD_EXIT_WAIT
    while any(not owner_gone(pid, 0) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.002)
    reclaim_orphans()
