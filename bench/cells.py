"""What is measured: the cells (a path, a number of wrk connections, a unit) and the generated
corpus they ask for (a 1 KiB and a 64 MiB file, a 1,000-file folder, a CGI `sh` script)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SMALL_FILE = "file-1k.bin"
LARGE_FILE = "file-64m.bin"
LARGE_SIZE = 64 * 1024 * 1024
LISTING_DIR = "listing-1000"
LISTING_COUNT = 1000
CGI_SCRIPT = "hello"
CGI_BODY = b"hello\n"


@dataclass(frozen=True)
class Cell:
    key: str
    title: str
    path: str
    connections: int
    unit: str  # "req/s" or "MB/s"
    expect: int = 200  # the status every response should have


CELLS = (
    Cell("file-1k", "1 KiB file", f"/{SMALL_FILE}", 32, "req/s"),
    Cell("file-64m", "64 MiB file", f"/{LARGE_FILE}", 4, "MB/s"),
    Cell("listing", f"listing of {LISTING_COUNT:,} files", f"/{LISTING_DIR}/", 16, "req/s"),
    Cell("cgi", "CGI sh hello", f"/cgi-bin/{CGI_SCRIPT}", 8, "req/s"),
    Cell("404", "404 (missing path)", "/no/such/file.txt", 16, "req/s", expect=404),
)
# the connection cells (issue 8), cgibox fronts only: 32 active connections on the 1 KiB file,
# alone, beside an idle keep-alive crowd, beside a slow-head crowd; then memory holding idle ones
CONN_ALONE = Cell("conn-alone", "32 active, alone", f"/{SMALL_FILE}", 32, "req/s")
CONN_IDLE = Cell("conn-idle", "32 active + idle crowd", f"/{SMALL_FILE}", 32, "req/s")
CONN_SLOW = Cell("conn-slow", "32 active + slow-head crowd", f"/{SMALL_FILE}", 32, "req/s")
CONN_CELLS = (CONN_ALONE, CONN_IDLE, CONN_SLOW)
# the TLS cells (issue 12): the two files again, each server started anew serving HTTPS on the run's
# certificate (a handshake per connection, every byte encrypted: no sendfile)
TLS_CELLS = (Cell("tls-1k", "1 KiB file over TLS", f"/{SMALL_FILE}", 32, "req/s"),
             Cell("tls-64m", "64 MiB file over TLS", f"/{LARGE_FILE}", 4, "MB/s"))


def cell_by_key(key: str) -> Cell:
    return next(cell for cell in (*CELLS, *CONN_CELLS, *TLS_CELLS) if cell.key == key)


def build_corpus(base: Path) -> Path:
    """ROOT with the files, the listing folder and ROOT/cgi-bin (where `http.server --cgi` looks)."""
    root = base / "www"
    root.mkdir(parents=True)
    (root / SMALL_FILE).write_bytes(os.urandom(1024))
    block = os.urandom(1024 * 1024)
    with open(root / LARGE_FILE, "wb") as out:
        for _ in range(LARGE_SIZE // len(block)):
            out.write(block)
    listing = root / LISTING_DIR
    listing.mkdir()
    for number in range(LISTING_COUNT):
        (listing / f"file-{number:04d}.txt").write_bytes(b"x" * (number % 200 + 1))
    cgi_dir = root / "cgi-bin"
    cgi_dir.mkdir()
    script = cgi_dir / CGI_SCRIPT
    script.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello\\n'\n")
    # http.server's CGI child drops to `nobody` when run as root: everything must be world-readable
    for directory in (base, root, listing, cgi_dir):
        directory.chmod(0o755)
    script.chmod(0o755)
    return root
