"""StampedCache: small caches of values that stay valid while their stamp (an mtime, a file's
validator) is unchanged, and at most a TTL; the files' and the listings' caches are these."""

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
    goes first when it is full."""

    def __init__(self, size: int = 256, ttl: float | None = LISTING_TTL) -> None:
        self.size = size
        self.ttl = ttl
        self._items: OrderedDict[Hashable, tuple[float, int, T]] = OrderedDict()
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

    def put(self, key: Hashable, stamp: int, value: T) -> None:
        with self._lock:
            self._items.pop(key, None)  # re-inserted: now the newest
            self._items[key] = (time.monotonic(), stamp, value)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
