"""A crowd of idle or slow clients on 127.0.0.1 for the bench's connection cells (asyncio, bounded).

    python bench/clients.py idle --port P --count 5000     # each sends one request, then stays idle
    python bench/clients.py slow --port P --count 1000     # each sends a head one byte a second

It prints one JSON line when the crowd is in place ({"event": "ready", ...}) and another when it is
told to go (stdin closes, SIGTERM, or --max-seconds pass) ({"event": "done", ...}); then every
connection is closed and it exits. A slow client the server closes is replaced, so the pressure
stays at --count; an idle one is not (the server may close idle connections: that is counted).
The soft RLIMIT_NOFILE is raised toward the hard limit first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
import time

CONNECTING_AT_ONCE = 256  # more at once overflows a small listen backlog for nothing
CONNECT_TIMEOUT = 5.0
SLOW_HEAD = b"GET /file-1k.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard == resource.RLIM_INFINITY else min(hard, max(soft, wanted))
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


class Crowd:
    def __init__(self, mode: str, port: int, count: int, path: str) -> None:
        self.mode = mode
        self.port = port
        self.count = count
        self.path = path
        self.opened = 0  # connections established, ever
        self.answered = 0  # idle: first request answered
        self.failed = 0  # connect attempts that failed or timed out
        self.closed_by_server = 0
        self.reconnects = 0
        self.open_now = 0
        self.writers: set[asyncio.StreamWriter] = set()
        self.stopping = asyncio.Event()
        self.gate = asyncio.Semaphore(CONNECTING_AT_ONCE)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        async with self.gate:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port), CONNECT_TIMEOUT)
            except (TimeoutError, OSError):
                self.failed += 1
                return None
        self.opened += 1
        self.open_now += 1
        self.writers.add(writer)
        return reader, writer

    def forget(self, writer: asyncio.StreamWriter) -> None:
        if writer in self.writers:
            self.writers.discard(writer)
            self.open_now -= 1
        writer.close()

    async def idle_client(self, ready: asyncio.Event) -> None:
        """One request on the connection, then nothing until the crowd is told to go."""
        pair = await self.connect()
        ready.set()
        if pair is None:
            return
        reader, writer = pair
        try:
            writer.write(f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip() or 0)
            if length:
                await reader.readexactly(length)
            self.answered += 1
            # idle from here on: only the server closing the connection wakes this up
            if await reader.read(1) == b"" and not self.stopping.is_set():
                self.closed_by_server += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            if not self.stopping.is_set():
                self.closed_by_server += 1
        finally:
            self.forget(writer)

    async def slow_client(self, ready: asyncio.Event) -> None:
        """A request head that never ends, one byte a second; replaced when the server closes it."""
        first = True
        while not self.stopping.is_set():
            pair = await self.connect()
            if first:
                ready.set()
                first = False
            if pair is None:
                await asyncio.sleep(0.5)
                continue
            reader, writer = pair
            try:
                writer.write(SLOW_HEAD)
                while not self.stopping.is_set():
                    try:
                        # wakes up when the server answers (408) or closes, else sends a byte a second
                        data = await asyncio.wait_for(reader.read(4096), 1.0)
                        if not data:
                            break
                    except TimeoutError:
                        writer.write(b"a")
                        await writer.drain()
            except OSError:
                pass
            finally:
                self.forget(writer)
            if not self.stopping.is_set():
                self.closed_by_server += 1
                self.reconnects += 1

    def report(self, event: str, started: float) -> None:
        print(json.dumps({"event": event, "mode": self.mode, "count": self.count, "opened": self.opened,
                          "open_now": self.open_now, "answered": self.answered, "failed": self.failed,
                          "closed_by_server": self.closed_by_server, "reconnects": self.reconnects,
                          "seconds": round(time.monotonic() - started, 2)}), flush=True)


async def main_async(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    crowd = Crowd(args.mode, args.port, args.count, args.path)
    started = time.monotonic()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, crowd.stopping.set)
    # stdin closing (the bench is done with us, or died) also ends the crowd
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.buffer.read1(1) or crowd.stopping.set())
    client = crowd.idle_client if args.mode == "idle" else crowd.slow_client
    events = [asyncio.Event() for _ in range(args.count)]
    tasks = [asyncio.create_task(client(event)) for event in events]
    # ready: every client has tried to connect, and (idle) every answer that is coming has come
    deadline = started + args.ramp_seconds
    while time.monotonic() < deadline and not crowd.stopping.is_set():
        connected = all(event.is_set() for event in events)
        if connected and (args.mode == "slow" or crowd.answered + crowd.failed + crowd.closed_by_server
                          >= args.count):
            break
        await asyncio.sleep(0.05)
    crowd.report("ready", started)
    try:
        await asyncio.wait_for(crowd.stopping.wait(), max(0.0, started + args.max_seconds - time.monotonic()))
    except TimeoutError:
        pass
    crowd.stopping.set()
    crowd.report("done", started)
    for writer in list(crowd.writers):
        writer.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("idle", "slow"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--path", default="/healthz", help="what each idle client asks for once")
    parser.add_argument("--ramp-seconds", type=float, default=30.0,
                        help="at most this long to put the crowd in place")
    parser.add_argument("--max-seconds", type=float, default=180.0, help="the crowd goes after this long")
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 50_000 or args.max_seconds > 600:
        parser.error("--count must be 1 to 50,000 and --max-seconds at most 600")
    limit = raise_nofile(args.count + 256)
    if limit < args.count + 64:
        print(f"clients: RLIMIT_NOFILE is {limit}; fewer than {args.count} connections will open",
              file=sys.stderr)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
