"""StampedCache: small caches of values that stay valid while their stamp (an mtime, a file's
validator) is unchanged, and at most a TTL, bounded in entries and (optionally) in bytes; the
files' and the listings' caches are these."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

# a listing is rebuilt when its folder's mtime changes, and at the latest after this many seconds
# (a file growing in place changes its size but not the folder's mtime)
LISTING_TTL = 2.0
T = TypeVar("T")


class StampedCache(Generic[T]):
    """A small cache of values that stay valid while their stamp is unchanged, and at most `ttl`
    seconds (listings: a file growing in place changes no folder's mtime); the oldest entry
    goes first when it holds more than `size` entries or, with `max_bytes`, more than that many
    bytes by the weights `put` is given (the newest entry is always kept)."""

    def __init__(self, size: int = 256, ttl: float | None = LISTING_TTL,
                 max_bytes: int | None = None) -> None:
        self.size = size
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.bytes = 0  # the sum of the weights of the entries held
        self._items: OrderedDict[Hashable, tuple[float, int, T, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, stamp: int) -> T | None:
        # no lock: a dict lookup is atomic, and every request of every thread passes here;
        # eviction is therefore by age of insertion rather than of use
        item = self._items.get(key)
        if item is None or item[1] != stamp:
            return None
        if self.ttl is not None and time.monotonic() - item[0] >= self.ttl:
            return None
        return item[2]

    def peek(self, key: Hashable) -> T | None:
        """The value under `key` whatever its stamp and age."""
        item = self._items.get(key)
        return None if item is None else item[2]

    def put(self, key: Hashable, stamp: int, value: T, weight: int = 0) -> None:
        """Keep `value` under `key` while `stamp` holds; `weight` is what it costs in bytes."""
        with self._lock:
            old = self._items.pop(key, None)  # re-inserted: now the newest
            if old is not None:
                self.bytes -= old[3]
            self._items[key] = (time.monotonic(), stamp, value, weight)
            self.bytes += weight
            while len(self._items) > self.size or (
                    self.max_bytes is not None and self.bytes > self.max_bytes and len(self._items) > 1):
                self.bytes -= self._items.popitem(last=False)[1][3]
