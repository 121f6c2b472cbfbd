"""Content codings of responses: the Accept-Encoding choice (RFC 9110 12.5.3), gzip (and br when
the Brotli package is importable) for what the server generates, and --compress-files for files.

App.handle passes every response through Compressor.apply once routing is done. A response says
whether it may be encoded with `Response.compress`: "page" (listings, error pages, /stats: always
for clients that accept it) or "file" (a file's full 200, only with --compress-files). Encoded
bodies are cached (pages by `compress_key` while the page's bytes are the same object, files by
their ETag, which changes with the file), so a page or file is compressed once per state, not per
request. Every encoded answer carries `Vary: Accept-Encoding` and an ETag of its own, and an
If-None-Match naming that ETag gets a 304.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

from cgibox.core.request import Headers, Request
from cgibox.core.response import FileRegion, Response

try:  # optional: br is offered only where the Brotli package is installed
    import brotli
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None

# best first: on equal q-values the client gets the smaller one
CODINGS: tuple[str, ...] = ("br", "gzip") if brotli is not None else ("gzip",)
ALIASES = {"x-gzip": "gzip"}  # RFC 9110 8.4.1.3
GZIP_LEVEL = 6
BROTLI_QUALITY = 5  # close to gzip's speed, a good deal smaller
MIN_SIZE = 256  # below this an encoded body is hardly smaller, and costs the client a decoder
FILE_MAX_SIZE = 1024 * 1024  # --compress-files: larger files go as they are (sendfile)
PAGE_ENTRIES = 256
FILE_CACHE_BYTES = 32 * 1024 * 1024
# headers a 304 may carry (RFC 9110 15.4.5)
NOT_MODIFIED_HEADERS = frozenset({"cache-control", "content-location", "date", "etag", "expires", "vary"})
TEXT_LIKE = ("application/javascript", "application/json", "application/xml", "image/svg+xml",
             "application/xhtml+xml", "application/manifest+json", "application/wasm")


def parse_accept_encoding(header: str) -> dict[str, float]:
    """{coding: q} of an Accept-Encoding value; items with a malformed q-value are dropped."""
    weights: dict[str, float] = {}
    for item in header.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = -1.0
                if not 0.0 <= quality <= 1.0:
                    quality = -1.0
        if quality < 0:
            continue
        coding = ALIASES.get(coding, coding)
        weights[coding] = max(quality, weights.get(coding, 0.0))
    return weights


def choose(header: str | None, available: tuple[str, ...] = CODINGS) -> str:
    """The coding to send ("identity" for none), following RFC 9110 12.5.3: no header means the
    client said nothing (identity); `*` covers codings not named; identity stays acceptable unless
    `identity;q=0` (or `*;q=0` without an identity entry) excludes it, and it wins over any coding
    the client likes less. When nothing is acceptable identity is sent anyway (RFC 9110 allows
    ignoring the header rather than answering 415)."""
    if header is None:
        return "identity"
    weights = parse_accept_encoding(header)
    star = weights.get("*")
    best, best_q = "identity", 0.0
    for coding in available:
        quality = weights.get(coding, star if star is not None else 0.0)
        if quality > best_q:
            best, best_q = coding, quality
    if best == "identity":
        return best
    if "identity" in weights:
        identity_q = weights["identity"]
    elif star is not None and star == 0.0:
        identity_q = 0.0
    else:
        identity_q = 0.001  # acceptable by default, preferred to nothing but to no named coding
    return best if best_q >= identity_q else "identity"


def encode(coding: str, body: bytes) -> bytes:
    if coding == "gzip":
        # mtime=0: the same bytes give the same encoded bytes (stable ETags, cacheable)
        return gzip.compress(body, GZIP_LEVEL, mtime=0)
    if coding == "br" and brotli is not None:
        return brotli.compress(body, quality=BROTLI_QUALITY)
    raise ValueError(f"unknown coding {coding!r}")


def tagged(etag: str, coding: str) -> str:
    """The ETag of an encoded representation: `"abc"` -> `"abc-gzip"` (weakness kept)."""
    weak = etag.startswith("W/")
    opaque = etag.removeprefix("W/").strip('"')
    return f'{"W/" if weak else ""}"{opaque}-{coding}"'


def none_match(headers: Headers, etag: str) -> bool:
    """If-None-Match names this ETag (weak comparison, RFC 9110 13.1.2) or is `*`."""
    value = headers.get("if-none-match")
    if value is None:
        return False
    wanted = etag.removeprefix("W/")
    return any(tag == "*" or tag.removeprefix("W/") == wanted
               for tag in (part.strip() for part in value.split(",")))


def is_text_like(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in TEXT_LIKE or media.endswith(("+xml", "+json"))


@dataclass
class Variants:
    """One body and its encoded forms, made on first demand."""

    identity: bytes
    etag: str | None = None
    encoded: dict[str, bytes | None] = field(default_factory=dict)

    def get(self, coding: str) -> bytes | None:
        """The encoded body, or None when encoding does not make it smaller."""
        if coding not in self.encoded:
            data = encode(coding, self.identity)
            self.encoded[coding] = data if len(data) < len(self.identity) else None
        return self.encoded[coding]

    @property
    def size(self) -> int:
        return len(self.identity) + sum(len(data) for data in self.encoded.values() if data)


class Compressor:
    """Encodes marked responses for the clients that accept it; see the module docstring."""

    def __init__(self, compress_files: bool = False) -> None:
        self.compress_files = compress_files
        self._pages: OrderedDict[Hashable, Variants] = OrderedDict()
        self._files: OrderedDict[str, Variants] = OrderedDict()
        self._files_bytes = 0
        self._lock = threading.Lock()

    def apply(self, request: Request, response: Response) -> Response:
        kind = response.compress
        if kind is None or (kind == "file" and not self.compress_files):
            return response
        if response.status in (204, 206, 304) or response.header("content-encoding") is not None:
            return response
        if kind == "file" and (request.headers.get("range") is not None or
                               not is_text_like(response.header("content-type"))):
            return response  # never on a Range request, even one answered in full
        _add_vary(response)
        coding = choose(request.headers.get("accept-encoding"))
        if coding == "identity" and not 200 <= response.status < 300:
            return response  # an error page as it is: no ETag to add, nothing to encode
        variants = self._variants(response)
        if variants is None:
            return response
        data = variants.get(coding) if coding != "identity" and len(variants.identity) >= MIN_SIZE else None
        etag = variants.etag
        if data is not None:
            response.body = data
            _set(response.headers, "Content-Length", str(len(data)))
            response.headers.append(("Content-Encoding", coding))
            if etag is not None:
                etag = tagged(etag, coding)
        if etag is not None:
            _set(response.headers, "ETag", etag)
            if request.method in ("GET", "HEAD") and none_match(request.headers, etag):
                return self._not_modified(response)
        return response

    # -- the encoded bodies, cached ------------------------------------------------------------

    def _variants(self, response: Response) -> Variants | None:
        if response.compress == "file":
            return self._file_variants(response)
        body = response.body
        if not isinstance(body, bytes):
            return None
        key = response.compress_key
        with_etag = 200 <= response.status < 300
        if key is None:
            return Variants(body, _content_etag(body) if with_etag else None)
        cached = self._pages.get(key)
        # the page's own cache hands out the same bytes object while the page is unchanged
        if cached is not None and cached.identity is body:
            return cached
        variants = Variants(body, _content_etag(body) if with_etag else None)
        with self._lock:
            self._pages[key] = variants
            self._pages.move_to_end(key)
            while len(self._pages) > PAGE_ENTRIES:
                self._pages.popitem(last=False)
        return variants

    def _file_variants(self, response: Response) -> Variants | None:
        """A file's 200, cached by its ETag (inode, mtime and size: a changed file is a new entry)."""
        etag = response.header("etag")
        length = response.header("content-length")
        if etag is None or length is None or not length.isdigit() or int(length) > FILE_MAX_SIZE:
            return None
        cached = self._files.get(etag)
        if cached is not None:
            return cached
        body = response.body
        if isinstance(body, FileRegion):
            content = b"".join(body.read_chunks())
        elif isinstance(body, bytes):
            content = body
        else:
            return None
        if len(content) != int(length):
            return None  # the file changed under us: send it as it is
        variants = Variants(content, etag)
        for coding in CODINGS:
            variants.get(coding)  # all at once, so the size kept in the cache is known
        with self._lock:
            old = self._files.pop(etag, None)
            if old is not None:
                self._files_bytes -= old.size
            self._files[etag] = variants
            self._files_bytes += variants.size
            while self._files_bytes > FILE_CACHE_BYTES and len(self._files) > 1:
                _, dropped = self._files.popitem(last=False)
                self._files_bytes -= dropped.size
        return variants

    @staticmethod
    def _not_modified(response: Response) -> Response:
        kept = [(k, v) for k, v in response.headers if k.lower() in NOT_MODIFIED_HEADERS]
        not_modified = Response(304, kept, b"", cleanups=response.cleanups,
                                close_connection=response.close_connection, route_kind=response.route_kind)
        response.cleanups = []
        response.close()
        return not_modified


def _content_etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _set(headers: list[tuple[str, str]], name: str, value: str) -> None:
    lname = name.lower()
    headers[:] = [(k, v) for k, v in headers if k.lower() != lname]
    headers.append((name, value))


def _add_vary(response: Response) -> None:
    for index, (name, value) in enumerate(response.headers):
        if name.lower() == "vary":
            if "accept-encoding" not in value.lower() and value.strip() != "*":
                response.headers[index] = (name, f"{value}, Accept-Encoding")
            return
    response.headers.append(("Vary", "Accept-Encoding"))
