"""Per-head cost of core.connection with the hand parser alone and with llhttp (httptools) in
front: `python bench/heads.py`. No sockets: a Connection is fed whole heads, as the loop feeds
what one recv() brings, and each head is taken through to the Request (framing rules and the
body reader included), then the response is ended so the next head can follow.

Prints CPU microseconds per head for a few typical heads, the best of several rounds with the two
parsers taking turns, so that other load on the machine shows less.
"""

from __future__ import annotations

import argparse
import time

from cgibox.core import fast_head
from cgibox.core.connection import Connection, RequestHead
from cgibox.core.response import Response

HEADS = {
    "curl (3 fields)": b"GET /hello.txt HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: curl/8.5.0\r\n"
                       b"Accept: */*\r\n\r\n",
    "wrk (1 field)": b"GET /1k.bin HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n",
    "browser (11 fields)": (
        b"GET /docs/index.html?sort=name HTTP/1.1\r\nHost: files.example.org\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
        b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
        b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n"
        b"Connection: keep-alive\r\nCookie: session=0123456789abcdef; theme=dark\r\n"
        b"Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\n"
        b"If-None-Match: \"5f3c-1a2b3c4d\"\r\n\r\n"),
}
DONE = Response(200, [("Content-Length", "0")])


def per_head(data: bytes, fast: bool, count: int) -> float:
    """Microseconds per head over `count` heads on one kept-alive connection."""
    connection = Connection(1 << 20, fast=fast)
    start = time.process_time()  # CPU time: other processes on the machine count less
    for _ in range(count):
        connection.receive_data(data)
        event = connection.next_event()
        assert isinstance(event, RequestHead), event
        connection.start_response(DONE)
        connection.end_response(True)
    return (time.process_time() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="heads per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best is shown")
    args = parser.parse_args()
    modes = [("hand", False)] + ([("llhttp", True)] if fast_head.AVAILABLE else [])
    if not fast_head.AVAILABLE:
        print("httptools is not installed: the hand parser only (pip install httptools)")
    print(f"{'head':<22}" + "".join(f"{name:>12}" for name, _ in modes) + "   (µs per head, best of "
          f"{args.rounds} x {args.count})")
    for label, data in HEADS.items():
        best = [float("inf")] * len(modes)
        for _ in range(args.rounds):  # the modes take turns, so a busy moment hits both alike
            for index, (_, fast) in enumerate(modes):
                best[index] = min(best[index], per_head(data, fast, args.count))
        print(f"{label:<22}" + "".join(f"{cell:>12.2f}" for cell in best))


if __name__ == "__main__":
    main()
