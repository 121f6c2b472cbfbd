"""Content codings: the one reading of Accept-Encoding (RFC 9110 12.5.3: `choose`, asked by the
generated pages here and by core/static.py for precompressed siblings and --compress-files), and
gzip (and br when the Brotli package is importable) of what the server makes or sends.

App.handle passes every response through Compressor.apply once routing is done: a response marked
`compress="page"` (listings, error pages, /stats) is encoded for clients that accept it, cached by
`compress_key` while the page's bytes are the same object. Files are chosen by core/static.py,
which asks `Compressor.may_encode_file` / `encoded_file` before it evaluates preconditions, so a
file's 304 and 412 are decided on the ETag of the representation it would send. Every encoded
answer carries `Vary: Accept-Encoding` and an ETag of its own (`tagged`); 304s are made by
core/conditional.py.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from cgibox.core import conditional
from cgibox.core.request import Request
from cgibox.core.response import Response
from cgibox.core.wire import has_no_body

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
PAGE_CACHE_BYTES = 16 * 1024 * 1024  # the encoded forms of generated pages (their plain bytes are
# the page caches' own, shared, not counted twice)
FILE_CACHE_BYTES = 32 * 1024 * 1024
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
        return bytes(brotli.compress(body, quality=BROTLI_QUALITY))
    raise ValueError(f"unknown coding {coding!r}")


def tagged(etag: str, coding: str) -> str:
    """The ETag of an encoded representation: `"abc"` -> `"abc-gzip"` (weakness kept)."""
    weak = etag.startswith("W/")
    opaque = etag.removeprefix("W/").strip('"')
    return f'{"W/" if weak else ""}"{opaque}-{coding}"'


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
    def encoded_size(self) -> int:
        return sum(len(data) for data in self.encoded.values() if data)

    @property
    def size(self) -> int:
        return len(self.identity) + self.encoded_size


class Compressor:
    """Encodes marked responses for the clients that accept it; see the module docstring."""

    def __init__(self, compress_files: bool = False) -> None:
        self.compress_files = compress_files
        self._pages: OrderedDict[Hashable, Variants] = OrderedDict()
        self._pages_bytes = 0
        self._files: OrderedDict[str, Variants] = OrderedDict()
        self._files_bytes = 0
        self._lock = threading.Lock()

    def apply(self, request: Request, response: Response) -> Response:
        """A generated page ("page") encoded for a client that accepts it, with its own ETag and a
        304 for an If-None-Match naming it. Files are not done here (see `encoded_file`)."""
        if response.compress != "page":
            return response
        if has_no_body(response.status) or response.status == 206 or \
                response.header("content-encoding") is not None:
            return response
        add_vary(response)
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
            if request.method in ("GET", "HEAD") and conditional.not_modified(request.headers, etag, None):
                return conditional.not_modified_response(response)
        return response

    def may_encode_file(self, content_type: str, size: int) -> bool:
        """With --compress-files: whether a file of this type and size may be sent encoded, so its
        answers (304s and ranges included) vary on Accept-Encoding."""
        return self.compress_files and MIN_SIZE <= size <= FILE_MAX_SIZE and is_text_like(content_type)

    def encoded_file(self, request: Request, etag: str,
                     content: Callable[[], bytes | None]) -> tuple[str, bytes] | None:
        """The (coding, body) a file's full 200 goes out as for this client, None for the file as it
        is; `content()` reads the file (None when it changed while read), only on a cache miss."""
        coding = choose(request.headers.get("accept-encoding"))
        if coding == "identity":
            return None
        variants = self._file_variants(etag, content)
        data = None if variants is None else variants.get(coding)
        return None if data is None else (coding, data)

    # -- the encoded bodies, cached ------------------------------------------------------------

    def _variants(self, response: Response) -> Variants | None:
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
            self._forget_page(key)
            self._pages[key] = variants
        return variants

    def _forget_page(self, key: Hashable) -> None:
        """Drop `key`'s page, and the oldest ones while the cache is past its bounds (under the lock).
        Encoded forms are made on demand after a page is kept, so they are counted here, at the
        next page kept: the bound holds but for the newest page's encodings."""
        self._pages.pop(key, None)
        self._pages_bytes = sum(variants.encoded_size for variants in self._pages.values())
        while self._pages and (len(self._pages) >= PAGE_ENTRIES or self._pages_bytes > PAGE_CACHE_BYTES):
            self._pages_bytes -= self._pages.popitem(last=False)[1].encoded_size

    def _file_variants(self, etag: str, content: Callable[[], bytes | None]) -> Variants | None:
        """A file's encoded forms, cached by its ETag (inode, mtime and size: a changed file is a
        new entry) within FILE_CACHE_BYTES."""
        cached = self._files.get(etag)
        if cached is not None:
            return cached
        identity = content()
        if identity is None:
            return None  # the file changed under us: send it as it is
        variants = Variants(identity, etag)
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

def _content_etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _set(headers: list[tuple[str, str]], name: str, value: str) -> None:
    lname = name.lower()
    headers[:] = [(k, v) for k, v in headers if k.lower() != lname]
    headers.append((name, value))


def add_vary(response: Response) -> None:
    """`Vary: Accept-Encoding` on the response, merged into a Vary it has."""
    for index, (name, value) in enumerate(response.headers):
        if name.lower() == "vary":
            if "accept-encoding" not in value.lower() and value.strip() != "*":
                response.headers[index] = (name, f"{value}, Accept-Encoding")
            return
    response.headers.append(("Vary", "Accept-Encoding"))
