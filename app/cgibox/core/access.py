"""Who may do what: one table, built at start-up, answers "may this user do this kind of thing
(read, write, run) at this path and query?" for every caller (the router, writes, pages).

The answer is one of ALLOW, LOGIN (401 with the Basic challenge), FORBIDDEN (403: logged in, not
allowed) and NOT_ALLOWED (405: nothing of that kind is allowed here, with `Allow`). `Rules.answer`
is the table itself, pure and without I/O (tests feed it a grid); `Access.check` asks it for a
request, logs the user in through core.auth when the answer is LOGIN and asks again.

The rules, from the settings:
- reads and runs: without --auth-file everything is allowed. With it, `/healthz` never needs a
  login; a --private match (path glob, and the query glob when given) always needs one; else
  --auth-scope says what does: `all` (everything but --public paths), `scripts` (runs, but not at
  --public paths), `writes` or `none` (nothing beyond --private).
- writes: nothing is writable unless a --write glob matches, and never under a script mount or at a
  --cgi-ext name (405). With --auth-file a write needs a login whatever the scope and --public say,
  and when every matching rule names its users, one of them (else 403); without --auth-file anyone
  may write where a rule matches (start-up refuses named users then, and warns off loopback).

Paths are the decoded URL paths. A glob (fnmatch, case-sensitive, `*` reaches below `/`) is
matched against the path as sent and against it with `//`, `.` and `..` collapsed: a --private or
--write-refusing rule applies if either matches, a --public one only if both do, so no spelling of
a path slips past a rule. A query glob is matched against the raw query and its percent-decoded
form, in the same spirit (git's backend decodes `%2D` in `service=`).
"""

from __future__ import annotations

import fnmatch
import posixpath
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cgibox.core.errors import HTTPError
from cgibox.grammars import parse_write_rule

if TYPE_CHECKING:
    from cgibox.core.auth import Auth
    from cgibox.core.request import Request

READ, WRITE, RUN = "read", "write", "run"
KINDS = (READ, WRITE, RUN)
SCOPES = ("all", "scripts", "writes", "none")

ALLOW = 0
LOGIN = 401
FORBIDDEN = 403
NOT_ALLOWED = 405

# methods that change the served tree: a request with one of them at a path that is no script
# is a write (the router asks for WRITE, so a tree without --write answers 405 before any login)
WRITE_METHODS = frozenset({"PUT", "POST", "DELETE", "PATCH", "MKCOL", "MOVE", "COPY",
                           "PROPPATCH", "LOCK", "UNLOCK"})
# what a 405 for a write offers instead: the methods every file path takes
READ_METHODS = "GET, HEAD"
HEALTHZ = "/healthz"


def _spellings(path: str) -> tuple[str, ...]:
    """The path as sent and, when it differs, with `//`, `.` and `..` collapsed (a trailing slash
    kept): a rule sees both."""
    collapsed = posixpath.normpath(path) if path.startswith("/") else path
    if collapsed.startswith("//"):  # normpath keeps a leading "//"
        collapsed = "/" + collapsed.lstrip("/")
    if path.endswith("/") and not collapsed.endswith("/"):
        collapsed += "/"
    return (path,) if collapsed == path else (path, collapsed)


def _query_spellings(query: str) -> tuple[str, ...]:
    decoded = urllib.parse.unquote_plus(query, errors="surrogateescape")
    return (query,) if decoded == query else (query, decoded)


def _any(globs: Iterable[str], texts: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(text, glob) for glob in globs for text in texts)


def _every(globs: Iterable[str], texts: tuple[str, ...]) -> bool:
    return any(all(fnmatch.fnmatchcase(text, glob) for text in texts) for glob in globs)


@dataclass(frozen=True, slots=True)
class PrivateRule:
    """--private GLOB[?QUERYGLOB]: a login is needed where the path (and the query) match."""

    glob: str
    query: str | None = None

    @classmethod
    def parse(cls, text: str) -> PrivateRule:
        """`GLOB` or `GLOB?QUERYGLOB`: the first `?` starts the query's glob (so `?` is no
        wildcard in the path part; `[?]` is none needed either, paths hold no `?`)."""
        glob, sep, query = text.partition("?")
        return cls(glob, query if sep else None)

    def matches(self, paths: tuple[str, ...], queries: tuple[str, ...]) -> bool:
        if not _any((self.glob,), paths):
            return False
        return self.query is None or _any((self.query,), queries)

    def __str__(self) -> str:
        return self.glob if self.query is None else f"{self.glob}?{self.query}"


@dataclass(frozen=True, slots=True)
class WriteRule:
    """--write GLOB[=USER,USER]: writes allowed where GLOB matches; `users` None is anyone
    (anyone logged in, with --auth-file)."""

    glob: str
    users: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, text: str) -> WriteRule:
        """`GLOB` or `GLOB=USER,USER` (grammars.parse_write_rule). Raises ValueError."""
        return cls(*parse_write_rule(text))

    def __str__(self) -> str:
        return self.glob if self.users is None else f"{self.glob}={','.join(self.users)}"


@dataclass(frozen=True, slots=True)
class Rules:
    """The table: every rule of one server, and `answer`, the one decision."""

    logins: bool = False  # --auth-file given
    scope: str = "all"
    public: tuple[str, ...] = ()
    private: tuple[PrivateRule, ...] = ()
    writes: tuple[WriteRule, ...] = ()
    # URL prefixes whose paths run scripts (cgi folders and program mounts), and --cgi-ext's
    # extensions: never writable
    script_prefixes: tuple[str, ...] = ()
    script_exts: tuple[str, ...] = ()

    def answer(self, kind: str, path: str, query: str = "", user: str | None = None) -> int:
        """ALLOW, LOGIN, FORBIDDEN or NOT_ALLOWED for `user` (None: not logged in) doing `kind`
        at the decoded `path` with the raw `query`."""
        paths = _spellings(path)
        if kind == WRITE:
            return self._write(paths, user)
        if kind not in (READ, RUN):
            raise ValueError(f"unknown kind {kind!r}")
        if not self.logins or user is not None or (kind == READ and path == HEALTHZ):
            return ALLOW
        if self.needs_login(kind, paths, query):
            return LOGIN
        return ALLOW

    def needs_login(self, kind: str, paths: tuple[str, ...], query: str) -> bool:
        """Whether a read or run needs a login (with --auth-file): --private always, else the scope."""
        queries = _query_spellings(query)
        if any(rule.matches(paths, queries) for rule in self.private):
            return True
        if self.scope == "all" or (self.scope == "scripts" and kind == RUN):
            return not _every(self.public, paths)
        return False

    def is_script_path(self, paths: tuple[str, ...]) -> bool:
        for text in paths:
            if any(text == prefix or text.startswith(prefix.rstrip("/") + "/")
                   for prefix in self.script_prefixes):
                return True
            if self.script_exts and any(segment.endswith(self.script_exts)
                                        for segment in text.split("/")):
                return True
        return False

    def _write(self, paths: tuple[str, ...], user: str | None) -> int:
        if self.is_script_path(paths):
            return NOT_ALLOWED
        # every spelling must be under a rule: "/up/../etc" is not a write to /up/*
        matching = [rule for rule in self.writes if _every((rule.glob,), paths)]
        if not matching:
            return NOT_ALLOWED
        if not self.logins:
            return ALLOW
        if user is None:
            return LOGIN
        if any(rule.users is None or user in rule.users for rule in matching):
            return ALLOW
        return FORBIDDEN


def not_allowed(allow: str = READ_METHODS) -> HTTPError:
    return HTTPError(405, headers=[("Allow", allow)])


def forbidden() -> HTTPError:
    return HTTPError(403, "Your login may not do this here.")


class Access:
    """The table of one App and its login step. Callers ask `check`:

        user = app.access.check(request, WRITE, decoded_path)

    raises the HTTPError to answer with (401 with `WWW-Authenticate`, 403, 405 with `Allow`, or
    429 from the failed-login throttle) or returns the user name (None: no login involved; the
    same name is on `request.remote_user`). Ask again for every path a request touches (MOVE's
    `Destination`, each file of an upload). `answer` gives the table's word without logging in
    or raising, for pages that show what the reader may do."""

    def __init__(self, rules: Rules, auth: Auth | None) -> None:
        if rules.logins != (auth is not None):
            raise ValueError("rules with logins need the login step, and only they")
        self.rules = rules
        self.auth = auth

    def answer(self, request: Request, kind: str, decoded_path: str) -> int:
        return self.rules.answer(kind, decoded_path, request.query, request.remote_user)

    def check(self, request: Request, kind: str, decoded_path: str,
              allow: str = READ_METHODS) -> str | None:
        """The user, or the HTTPError for `kind` at `decoded_path`; `allow` is the 405's `Allow`."""
        answer = self.answer(request, kind, decoded_path)
        if answer == LOGIN and self.auth is not None:
            self.auth.login(request)  # 401 or 429 unless the credentials are good
            answer = self.answer(request, kind, decoded_path)
        if answer == ALLOW:
            return request.remote_user
        if answer == NOT_ALLOWED:
            raise not_allowed(allow)
        if answer == FORBIDDEN:
            raise forbidden()
        raise HTTPError(401, "This server needs a login.")  # only without a login step: never
