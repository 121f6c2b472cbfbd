"""`python -m cgibox.compat [--cgi] [-b ADDRESS] [-d DIRECTORY] [-p VERSION] [PORT]`:
`python -m http.server`'s command line with cgibox.compat's handlers, except that it binds
127.0.0.1 unless -b names another address. Without --cgi no script ever runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import sys
from collections.abc import Sequence
from http.server import ThreadingHTTPServer
from typing import Any

from cgibox.cli import OneLineParser
from cgibox.compat.handlers import CGIHTTPRequestHandler, SimpleHTTPRequestHandler

DEFAULT_BIND = "127.0.0.1"
_PROTOCOL = re.compile(r"HTTP/1\.[01]")  # fullmatch: "$" would let "HTTP/1.1\n" through


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m cgibox.compat",
        description="python -m http.server, served by cgibox: files and listings of a directory, "
                    "and with --cgi the scripts of its cgi-bin and htbin folders.")
    parser.add_argument("--cgi", action="store_true", help="run as CGI server")
    parser.add_argument("-b", "--bind", metavar="ADDRESS",
                        help=f"bind to this address (default: {DEFAULT_BIND}, this machine only; "
                             "http.server bound every interface: give -b 0.0.0.0 or -b :: for that)")
    parser.add_argument("-d", "--directory", default=os.getcwd(),
                        help="serve this directory (default: current directory)")
    parser.add_argument("-p", "--protocol", metavar="VERSION", default="HTTP/1.0",
                        help="conform to this HTTP version (default: %(default)s)")
    parser.add_argument("port", default=8000, type=int, nargs="?",
                        help="bind to this port (default: %(default)s)")
    return parser


def address_for(bind: str | None, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    """The family and socket address to listen on, as http.server chose them."""
    infos = socket.getaddrinfo(bind or DEFAULT_BIND, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = next(iter(infos))
    return family, sockaddr


def make_server(handler_class: type[SimpleHTTPRequestHandler], family: socket.AddressFamily,
                address: tuple[Any, ...], directory: str) -> ThreadingHTTPServer:
    class DualStackServer(ThreadingHTTPServer):
        address_family = family

        def server_bind(self) -> None:
            # "::" answers IPv4 as well, as http.server's own command does
            with contextlib.suppress(Exception):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

        def finish_request(self, request: Any, client_address: Any) -> None:
            handler_class(request, client_address, self, directory=directory)

    return DualStackServer(address, handler_class)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not _PROTOCOL.fullmatch(args.protocol):
        parser.error(f"argument -p/--protocol: HTTP/1.0 or HTTP/1.1, not {args.protocol!r}")
    if not 0 <= args.port <= 65535:
        parser.error(f"argument port: a number from 0 to 65535, not {args.port}")
    if not os.path.isdir(args.directory):
        parser.error(f"argument -d/--directory: {args.directory!r} is not a directory")
    handler_class = CGIHTTPRequestHandler if args.cgi else SimpleHTTPRequestHandler
    # a subclass, so that setting the protocol does not change the importable class
    handler = type(handler_class.__name__, (handler_class,), {"protocol_version": args.protocol})
    try:
        family, address = address_for(args.bind, args.port)
        server = make_server(handler, family, address, os.path.abspath(args.directory))
    except OSError as error:
        sys.stderr.write(f"{parser.prog}: error: cannot listen on {args.bind or DEFAULT_BIND} port "
                         f"{args.port}: {error.strerror or error}\n")
        return 2
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    with server:
        host, port = server.socket.getsockname()[:2]
        url_host = f"[{host}]" if ":" in host else host
        print(f"Serving HTTP on {host} port {port} (http://{url_host}:{port}/) ...", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("\nKeyboard interrupt received, exiting.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
