"""Logins (HTTP Basic, RFC 7617) against an htpasswd file of bcrypt hashes, and the failure
throttle shared by every process of one server. Who needs a login where is core.access's table;
it calls `Auth.login` when its answer is "log in", so every front behaves the same. Passwords are
checked with bcrypt (constant time; an unknown user costs one check of a dummy hash too), and a
verified user:password is remembered per process (keyed by an HMAC, bounded, tied to the file's
validator) so that a keep-alive client does not pay bcrypt's ~100 ms on every request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable

from cgibox.core.accesslog import server_log
from cgibox.core.errors import HTTPError
from cgibox.core.request import Request
from cgibox.core.shared import SharedCells

REALM = "cgibox"
CHALLENGE = f'Basic realm="{REALM}", charset="UTF-8"'
BCRYPT_PREFIXES = ("$2y$", "$2b$", "$2a$")
# bcrypt reads at most 72 bytes of a password; Apache's htpasswd hashed only those
BCRYPT_MAX = 72
# the file is looked at (one stat) at most this often, so an edit applies without a restart
RECHECK_SECONDS = 1.0
VERIFIED_CACHE = 256
# the throttle: this many failed logins from one address within WINDOW seconds block it for BLOCK
MAX_FAILURES = 10
WINDOW = 60
BLOCK = 60
# the shared table: a secret, then TABLE_SETS sets of WAYS entries (address key, failures,
# window start, blocked until); an address that finds its set full takes the stalest entry
TABLE_SETS = 1024
WAYS = 4
_ENTRY = 4
_SECRET_CELLS = 4
TABLE_CELLS = _SECRET_CELLS + TABLE_SETS * WAYS * _ENTRY
_SECRET_FORMAT = struct.Struct(f"<{_SECRET_CELLS}q")


class AuthFileError(ValueError):
    """The htpasswd file cannot be used; the message is one line for the operator."""


def _weak_kind(hashed: str) -> str:
    if hashed.startswith("$apr1$"):
        return "MD5 (apr1)"
    if hashed.startswith("{SHA}"):
        return "SHA-1"
    if hashed.startswith(("$1$", "$5$", "$6$")):
        return "crypt"
    if len(hashed) == 13:
        return "DES crypt or plain text"
    return "plain text"


def parse_htpasswd(text: str, source: str) -> dict[str, bytes]:
    """user -> bcrypt hash. Blank lines and `#` comments are skipped; anything that is not a
    bcrypt entry is refused (AuthFileError), since plain, crypt, MD5 and SHA-1 entries can be
    guessed far too fast by anyone who reads the file."""
    users: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise AuthFileError(f"{source} line {number}: expected user:hash")
        if not hashed.startswith(BCRYPT_PREFIXES) or len(hashed) != 60:
            raise AuthFileError(f"{source} line {number} (user {user!r}): {_weak_kind(hashed)} is "
                                "refused; write bcrypt entries with `htpasswd -B`")
        users[user] = hashed.encode("ascii")
    return users


def load_htpasswd(path: str) -> dict[str, bytes]:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise AuthFileError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    return parse_htpasswd(text, path)


def _validator(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from `Authorization: Basic ...`, None when absent or not Basic at all.

    Raises ValueError for a Basic header that cannot be decoded (a failed login)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("undecodable Basic credentials") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise ValueError("Basic credentials without a ':'")
    return user, password


class Throttle:
    """Failed logins per client address in a SharedCells table, so that forked children and
    gunicorn workers count together (a per-process table would forget every failure with the
    forking front's child). Fixed size: a flood of addresses only evicts the stalest entries."""

    def __init__(self, path: str) -> None:
        self.cells = SharedCells(path, TABLE_CELLS)
        with self.cells.locked():
            if not any(self.cells.row(0, _SECRET_FORMAT)):
                for index in range(_SECRET_CELLS):
                    self.cells.set(index, secrets.randbits(63))
            self.secret = _SECRET_FORMAT.pack(*self.cells.row(0, _SECRET_FORMAT))

    def _key(self, address: str) -> int:
        digest = hmac.new(self.secret, address.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
        return (int.from_bytes(digest[:8], "little") >> 1) or 1

    def _base(self, key: int) -> int:
        return _SECRET_CELLS + (key % TABLE_SETS) * WAYS * _ENTRY

    def blocked_for(self, address: str, now: float | None = None) -> int:
        """Seconds this address is still blocked (0: not blocked). No lock: a torn read of a
        single entry at worst lets one more attempt through."""
        now = int(now if now is not None else time.time())
        key = self._key(address)
        base = self._base(key)
        for way in range(WAYS):
            cell = base + way * _ENTRY
            if self.cells.get(cell) == key:
                return max(0, self.cells.get(cell + 3) - now)
        return 0

    def failed(self, address: str, now: float | None = None) -> int:
        """Count one failure; returns the seconds the address is now blocked (0: not blocked)."""
        now = int(now if now is not None else time.time())
        key = self._key(address)
        base = self._base(key)
        with self.cells.locked():
            cell = None
            for way in range(WAYS):
                if self.cells.get(base + way * _ENTRY) == key:
                    cell = base + way * _ENTRY
                    break
            if cell is None:
                # the free or stalest way of the set (oldest window, never one still blocked first)
                ways = [base + way * _ENTRY for way in range(WAYS)]
                cell = min(ways, key=lambda c: (self.cells.get(c + 3) > now, self.cells.get(c + 2)))
                for offset, value in enumerate((key, 0, now, 0)):
                    self.cells.set(cell + offset, value)
            if self.cells.get(cell + 2) + WINDOW <= now:
                self.cells.set(cell + 1, 0)
                self.cells.set(cell + 2, now)
            failures = self.cells.get(cell + 1) + 1
            self.cells.set(cell + 1, failures)
            if failures >= MAX_FAILURES:
                self.cells.set(cell + 3, now + BLOCK)
                self.cells.set(cell + 1, 0)
                self.cells.set(cell + 2, now)
            return max(0, self.cells.get(cell + 3) - now)


# the login timing's clock and pause (tests replace them)
_clock = time.monotonic
_sleep = time.sleep
DEFAULT_COST = 10
# the moving average of the slowest checks' time: each new one counts for 1/SLOWEST_WEIGHT
SLOWEST_WEIGHT = 5


def _cost(hashed: bytes) -> int:
    """A bcrypt hash's cost ($2b$12$...: 12)."""
    try:
        return int(hashed[4:6])
    except ValueError:
        return DEFAULT_COST


def _highest_cost(hashes: Iterable[bytes]) -> int:
    return max((_cost(hashed) for hashed in hashes), default=DEFAULT_COST)


class Passwords:
    """The htpasswd file, reloaded when it changes, and bcrypt checks with a cache of successes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._key = secrets.token_bytes(32)  # per process: the cache never leaves it
        self._verified: OrderedDict[bytes, str] = OrderedDict()
        self._checked_at = 0.0
        self._validator = _validator(path)
        self._users = load_htpasswd(path)
        self._dummy: bytes | None = None
        # wall seconds a check at the file's highest cost takes lately (0.0: none timed yet)
        self._slowest = 0.0

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < RECHECK_SECONDS:
            return
        self._checked_at = now
        validator = _validator(self.path)
        if validator == self._validator:
            return
        try:
            users = load_htpasswd(self.path)
        except AuthFileError as error:
            # fail closed: a broken file lets nobody in (it may be an edit that removes a user)
            server_log(f"cgibox: --auth-file: {error}; every login fails until it is fixed")
            users = {}
        with self._lock:
            self._users, self._validator = users, validator
            self._verified.clear()
            self._slowest = 0.0  # the highest cost may be another now

    def _time_slowest(self, elapsed: float) -> None:
        """Count one check at the file's highest cost into the moving average."""
        slowest = self._slowest
        self._slowest = elapsed if not slowest else slowest + (elapsed - slowest) / SLOWEST_WEIGHT

    def _dummy_hash(self) -> bytes:
        """The hash checked for an unknown name, so that its answer takes as long as the
        slowest user's: an entry of the file's highest cost (the check's result is never used;
        a name not in the file never logs in), or with no entries one made once."""
        with self._lock:
            users = list(self._users.values())
        if users:
            return max(users, key=_cost)
        if self._dummy is None:
            import bcrypt  # see verify

            self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(DEFAULT_COST))
        return self._dummy

    def verify(self, user: str, password: str) -> bool:
        """Whether `password` is `user`'s. Every check that is not a cache hit takes as long as
        one at the file's highest cost, whatever the user's own hash costs (a file mixing costs
        would otherwise tell by the time a failed login takes which names exist). A check at the
        highest cost (a user's, or the dummy of an unknown name) is timed, and a cheaper one
        sleeps until it has taken as long as they take lately (a moving average of wall time,
        so the machine's load counts alike; a sleep spends no CPU). Before any was timed, a
        cheaper check is followed by the dummy's, which is timed: only a process's first login
        can take longer, by the cheap check's own few milliseconds."""
        self._refresh()
        secret = password.encode("utf-8", "surrogateescape")[:BCRYPT_MAX]
        key = hmac.new(self._key, user.encode("utf-8", "surrogateescape") + b"\0" + secret,
                       hashlib.sha256).digest()
        with self._lock:
            validator = self._validator
            if key in self._verified:
                self._verified.move_to_end(key)
                return True
            hashed = self._users.get(user)
            highest = _highest_cost(self._users.values())
        import bcrypt  # here, not at the top: a server without --auth-file never loads it

        checked = hashed if hashed is not None else self._dummy_hash()
        started = _clock()
        ok = bcrypt.checkpw(secret, checked)
        elapsed = _clock() - started
        if _cost(checked) >= highest:
            self._time_slowest(elapsed)
        elif self._slowest:
            _sleep(max(0.0, self._slowest - elapsed))
        else:
            dummy = self._dummy_hash()
            started = _clock()
            bcrypt.checkpw(b"", dummy)
            self._time_slowest(_clock() - started)
        if not ok or hashed is None:
            return False
        with self._lock:
            if self._validator == validator:
                self._verified[key] = user
                while len(self._verified) > VERIFIED_CACHE:
                    self._verified.popitem(last=False)
        return True


class Auth:
    """The login step (core.access asks it where its table says a login is needed): the user's
    name (also set on the request as `remote_user`), else an HTTPError 401 or 429."""

    def __init__(self, auth_file: str, table_path: str) -> None:
        self.passwords = Passwords(auth_file)
        self.throttle = Throttle(table_path)

    def login(self, request: Request) -> str:
        blocked = self.throttle.blocked_for(request.remote_addr)
        if blocked:
            raise HTTPError(429, "Too many failed logins from your address; try again later.",
                            headers=[("Retry-After", str(blocked))])
        try:
            given = credentials(request.headers.get("authorization"))
        except ValueError:
            given = ("", "")
        if given is not None:
            user, password = given
            if user and self.passwords.verify(user, password):
                request.remote_user = user
                return user
            blocked = self.throttle.failed(request.remote_addr)
            if blocked:  # this failure started the block: the one log line an operator (or fail2ban) reads
                server_log(f"cgibox: {request.remote_addr}: {MAX_FAILURES} failed logins within {WINDOW} s "
                           f"(the last as {user!r}); blocked for {blocked} s (429)")
                raise HTTPError(429, "Too many failed logins from your address; try again later.",
                                headers=[("Retry-After", str(blocked))])
        raise HTTPError(401, "This server needs a login.", headers=[("WWW-Authenticate", CHALLENGE)])
