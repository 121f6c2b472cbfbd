"""Ready responses: the whole answer (status, fields, body) to a plain GET or HEAD of a small file,
or its 404, kept in memory per process and replayed while one stat says it still holds.

An answer is only ever recorded from what App.handle's full path produced, and only for a request
that none of the fields that change an answer in ways the key cannot hold (conditionals, Range,
a login, a body) came with; the key is what else the answer depends on (method, target,
Accept-Encoding, whether JSON was asked for). Each entry carries the check its maker gave
(core.static: the confined lstat of the file, and of the encoded sibling sent), asked before every
replay: a file changed, replaced, removed, made unreadable, or given a sibling is answered the full
way again (and recorded anew). Bounded in bytes per process (READY_BYTES), oldest entries first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from cgibox.core import wire
from cgibox.core.durations import ERROR, FILE
from cgibox.core.errors import HTTPError
from cgibox.core.paths import decode_path
from cgibox.core.request import Request, request_problem
from cgibox.core.response import Response

# the largest body kept (a file's, or its encoded form's)
READY_BODY_LIMIT = 64 * 1024
# what the ready answers of one process may hold in all (bodies and an estimate of their fields)
READY_BYTES = 16 * 1024 * 1024
# counted per entry besides its body: the key, the fields, the objects around them
ENTRY_OVERHEAD = 1024

# request fields after which the answer is not the plain one, or depends on more than the key:
# preconditions (304/412), ranges (206/416), a login (the user in the log; 401/403), a body
# (keep-alive depends on reading it), an expectation
NOT_PLAIN = frozenset({"range", "if-range", "if-match", "if-none-match", "if-modified-since",
                       "if-unmodified-since", "authorization", "content-length", "transfer-encoding",
                       "expect"})


def ready_key(request: Request) -> Hashable | None:
    """What a plain request's answer depends on, or None when the request is not a plain one."""
    method = request.method
    if method != "GET" and method != "HEAD":
        return None
    target = request.target
    if not target.startswith("/") or "?" in target:
        return None
    headers = request.headers
    if not NOT_PLAIN.isdisjoint(headers.names()):
        return None
    return method, target, headers.get("accept-encoding"), request.wants_json


class ReadyResponses:
    """Recorded answers by ready_key, each with the check that says it still holds."""

    def __init__(self, max_bytes: int = READY_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[Hashable, tuple[Response, Callable[[], bool], int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> Response | None:
        """The recorded answer under `key` if its check still holds (a stale one is dropped)."""
        item = self._items.get(key)  # no lock: a dict lookup is atomic
        if item is None:
            return None
        if item[1]():
            return item[0]
        self.drop(key, item[0])
        return None

    def replay(self, key: Hashable, request: Request) -> Response | None:
        """The answer recorded under `key` if it still holds and `request` passes the core's
        door as on the full way (a request that fails it is answered there)."""
        response = self.get(key)
        if response is None:
            return None
        try:
            wire.check_limits(request)
        except HTTPError:
            return None
        return response if request_problem(request) is None else None

    def record(self, key: Hashable, request: Request, response: Response,
               static_only: Callable[[str | None], bool],
               missing_check: Callable[[str | None], Callable[[], bool]]) -> None:
        """Keep the full way's `response` to the plain `request` for replay when it is a small
        file's 200 (with the check core.static made for it) or the 404 of a missing file
        (`missing_check`), at a path where only core.static answers and anyone may read
        (`static_only`), and its check holds now."""
        body = response.body
        if not isinstance(body, bytes) or len(body) > READY_BODY_LIMIT or response.cleanups or \
                response.close_connection or response.cgi_run or request.remote_user is not None:
            return
        decoded = decode_path(request.raw_path)
        if response.status == 200 and response.route_kind == FILE:
            check = response.ready_check
        elif response.status == 404 and response.route_kind == ERROR:
            check = missing_check(decoded)
        else:
            return
        if check is not None and static_only(decoded) and check():
            self.put(key, response, check)

    def put(self, key: Hashable, response: Response, check: Callable[[], bool]) -> None:
        """Keep `response` (whose body is bytes) under `key` while `check()` holds."""
        assert isinstance(response.body, bytes)
        weight = len(response.body) + ENTRY_OVERHEAD + sum(len(k) + len(v) for k, v in response.headers)
        if weight > self.max_bytes:
            return
        response.from_memory = True
        response.framed = {}  # core.wire keeps its framing here: only the Date moves
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[2]
            self._items[key] = (response, check, weight)
            self.bytes += weight
            while self.bytes > self.max_bytes:
                self.bytes -= self._items.popitem(last=False)[1][2]

    def drop(self, key: Hashable, response: Response) -> None:
        """Forget `key` if it still holds `response` (another thread may have recorded anew)."""
        with self._lock:
            item = self._items.get(key)
            if item is not None and item[0] is response:
                del self._items[key]
                self.bytes -= item[2]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0
