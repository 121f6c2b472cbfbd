"""WebDAV locks (RFC 4918 6, 9.10, 10.4): the lock table every serving process of one server
shares (a small JSON file beside the shared state files, read and written under a thread lock and
a POSIX record lock), and the If: header, parsed and evaluated.

Locks live as long as the server: the state folder is made at start and removed at exit, as
WsgiDAV's default (in-memory) lock storage forgets its locks on a restart. A client whose lock
has gone answers the 412 of its next conditional write by locking again."""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from cgibox.core.errors import HTTPError

DEFAULT_TIMEOUT = 3600
MAX_TIMEOUT = 7 * 24 * 3600  # "Infinite" and anything longer become a week
MAX_LOCKS = 10000  # a table past this refuses new locks (507): no client needs as many


@dataclass
class Lock:
    token: str
    path: str  # decoded URL path, no trailing slash ("/" for the root)
    depth: str  # "0" or "infinity"
    exclusive: bool
    owner: str  # the <D:owner> element's XML as the client sent it ("" when none)
    user: str | None  # who took it (a login), or None without logins
    timeout: int
    expires: float

    def covers(self, path: str) -> bool:
        """The lock applies to `path`: its own resource, or a member when depth is infinity."""
        return self.path == path or (self.depth == "infinity" and is_below(path, self.path))


def norm(path: str) -> str:
    """A decoded URL path as the table keys it: no trailing slash, "/" for the root."""
    stripped = path.rstrip("/")
    return stripped or "/"


def is_below(path: str, ancestor: str) -> bool:
    """`path` lies strictly under `ancestor` (both normed)."""
    if ancestor == "/":
        return path != "/"
    return path.startswith(ancestor + "/")


def parse_timeout(header: str | None) -> int:
    """Timeout: Second-N, Infinite (RFC 4918 10.7): the first one understood, capped; else the default."""
    for item in (header or "").split(","):
        item = item.strip()
        if item.lower() == "infinite":
            return MAX_TIMEOUT
        if item[:7].lower() == "second-" and item[7:].isdigit():
            return max(1, min(int(item[7:]), MAX_TIMEOUT))
    return DEFAULT_TIMEOUT


class LockTable:
    """The locks of one server, in a file every process opens; each call sees the others' changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._thread_lock = threading.Lock()
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._thread_lock = threading.Lock()

    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        with self._thread_lock:
            fcntl.lockf(self._fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def _read(self) -> tuple[bytes, list[Lock]]:
        """The file's bytes and its live locks (expired ones left out)."""
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size, 0) if size else b""
        try:
            locks = [Lock(**record) for record in json.loads(data)] if data else []
        except (ValueError, TypeError):
            locks = []  # a table cut short by a crash: its locks are forgotten, not half-read
        now = time.time()
        return data, [lock for lock in locks if lock.expires > now]

    def snapshot(self) -> list[Lock]:
        """The live locks now."""
        with self._locked(exclusive=False):
            return self._read()[1]

    def change(self, action: Callable[[list[Lock]], object]) -> object:
        """Run `action` on the live locks (it may change the list in place) and keep the result,
        under one exclusive lock: no other process sees or changes the table in between."""
        with self._locked(exclusive=True):
            data, locks = self._read()
            result = action(locks)
            new = json.dumps([asdict(lock) for lock in locks], separators=(",", ":")).encode() \
                if locks else b""
            if new != data:
                os.pwrite(self._fd, new, 0)
                os.ftruncate(self._fd, len(new))
            return result

    # -- operations -----------------------------------------------------------------------------

    def acquire(self, path: str, depth: str, exclusive: bool, owner: str, user: str | None,
                timeout: int) -> Lock:
        """A new lock, or HTTPError 423 when one held conflicts with it."""
        path = norm(path)
        lock = Lock(token="opaquelocktoken:" + str(uuid.uuid4()), path=path, depth=depth,
                    exclusive=exclusive, owner=owner, user=user, timeout=timeout,
                    expires=time.time() + timeout)

        def add(locks: list[Lock]) -> None:
            for held in locks:
                overlaps = held.covers(path) or (depth == "infinity" and is_below(held.path, path))
                if overlaps and (held.exclusive or exclusive):
                    raise HTTPError(423, "the resource is locked",
                                    headers=[("Content-Type", "application/xml; charset=utf-8")])
            if len(locks) >= MAX_LOCKS:
                raise HTTPError(507, "too many locks are held")
            locks.append(lock)

        self.change(add)
        return lock

    def refresh(self, token: str, path: str, timeout: int) -> Lock | None:
        """The lock `token` names, covering `path`, with a new timeout; None when there is none."""
        path = norm(path)

        def renew(locks: list[Lock]) -> Lock | None:
            for lock in locks:
                if lock.token == token and lock.covers(path):
                    lock.timeout = timeout
                    lock.expires = time.time() + timeout
                    return lock
            return None

        found = self.change(renew)
        return found if isinstance(found, Lock) else None

    def release(self, token: str, path: str, user: str | None) -> int:
        """UNLOCK: 204 when released; 409 when no lock by that token covers `path`; 403 when it
        is another user's."""
        path = norm(path)

        def remove(locks: list[Lock]) -> int:
            for index, lock in enumerate(locks):
                if lock.token == token and lock.covers(path):
                    if lock.user is not None and lock.user != user:
                        return 403
                    del locks[index]
                    return 204
            return 409

        result = self.change(remove)
        assert isinstance(result, int)
        return result

    def drop_under(self, path: str) -> None:
        """Forget the locks of `path` and everything under it (it was deleted or moved away)."""
        path = norm(path)

        def remove(locks: list[Lock]) -> None:
            locks[:] = [lock for lock in locks if not (lock.path == path or is_below(lock.path, path))]

        self.change(remove)


def covering(locks: list[Lock], path: str) -> list[Lock]:
    """The locks that apply to `path` (its own, and depth-infinity ones of its ancestors)."""
    path = norm(path)
    return [lock for lock in locks if lock.covers(path)]


def within(locks: list[Lock], path: str) -> list[Lock]:
    """Every lock a change of `path` and its members touches: those covering it and those below."""
    path = norm(path)
    return [lock for lock in locks if lock.covers(path) or is_below(lock.path, path)]


# -- the If: header (RFC 4918 10.4) -------------------------------------------------------------

@dataclass(frozen=True)
class Condition:
    negated: bool
    token: str | None  # a state token (<...>), or None for an entity tag
    etag: str | None


@dataclass(frozen=True)
class IfList:
    resource: str | None  # a tagged list's resource (as sent), None for the request URI
    conditions: tuple[Condition, ...]


_IF_TOKEN = re.compile(r'\s*(<[^>]*>|\(|\)|\[[^\]]*\]|[Nn][Oo][Tt](?=[\s<\[]))')


def parse_if(header: str | None) -> list[IfList]:
    """The If: header's lists; 400 when it does not parse."""
    if header is None:
        return []
    lists: list[IfList] = []
    resource: str | None = None
    position = 0
    text = header.strip()
    conditions: list[Condition] | None = None
    negated = False
    while position < len(text):
        match = _IF_TOKEN.match(text, position)
        if match is None:
            if not text[position:].strip():
                break
            raise HTTPError(400, "malformed If header")
        item = match.group(1)
        position = match.end()
        if conditions is None:  # between lists: a resource tag or a list's start
            if item.startswith("<"):
                resource = item[1:-1]
            elif item == "(":
                conditions = []
            else:
                raise HTTPError(400, "malformed If header")
            continue
        if item == ")":
            if not conditions or negated:
                raise HTTPError(400, "malformed If header")
            lists.append(IfList(resource, tuple(conditions)))
            conditions = None
        elif item.lower() == "not":
            if negated:
                raise HTTPError(400, "malformed If header")
            negated = True
        elif item.startswith("<"):
            conditions.append(Condition(negated, item[1:-1], None))
            negated = False
        elif item.startswith("["):
            conditions.append(Condition(negated, None, item[1:-1]))
            negated = False
        else:
            raise HTTPError(400, "malformed If header")
    if conditions is not None or not lists:
        raise HTTPError(400, "malformed If header")
    if len({item.resource is None for item in lists}) > 1:
        raise HTTPError(400, "malformed If header: tagged and untagged lists mixed")
    return lists


def submitted_tokens(lists: list[IfList]) -> set[str]:
    """Every lock token the header names (RFC 4918 10.4.1: so submitted)."""
    return {condition.token for item in lists for condition in item.conditions
            if condition.token is not None and not condition.negated}


def _etag_matches(given: str, etag: str | None) -> bool:
    return etag is not None and given.removeprefix("W/") == etag.removeprefix("W/")


def list_holds(conditions: tuple[Condition, ...], tokens: set[str], etag: str | None) -> bool:
    """Every condition of one list holds for a resource with these lock tokens and entity tag."""
    for condition in conditions:
        if condition.token is not None:
            held = condition.token in tokens
        else:
            held = _etag_matches(condition.etag or "", etag)
        if held == condition.negated:
            return False
    return True
