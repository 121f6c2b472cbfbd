"""core.access's rule table, fed a grid of (rule set, user, kind, method, path, query) with the
expected answer, so that a new rule kind never changes an old answer unseen; and Access.check's
errors (401 with the challenge, 403, 405 with Allow) for a request."""

from __future__ import annotations

import pytest

from cgibox.core.access import (
    ALLOW,
    FORBIDDEN,
    LOGIN,
    NOT_ALLOWED,
    READ,
    RUN,
    WRITE,
    Access,
    PrivateRule,
    Rules,
    WriteRule,
)
from cgibox.core.errors import HTTPError
from cgibox.core.request import Headers, Request

SCRIPTS = ("/cgi-bin", "/git")


def rules(logins: bool = True, scope: str = "all", public: tuple[str, ...] = (),
          private: tuple[str, ...] = (), write: tuple[str, ...] = (),
          exts: tuple[str, ...] = ()) -> Rules:
    return Rules(logins=logins, scope=scope, public=public,
                 private=tuple(PrivateRule.parse(text) for text in private),
                 writes=tuple(WriteRule.parse(text) for text in write),
                 script_prefixes=SCRIPTS, script_exts=exts)


# the rule sets of the grid, by name
RULE_SETS = {
    "open": rules(logins=False),
    "open-write": rules(logins=False, write=("/up/*",)),
    "all": rules(public=("/pub/*", "/stats")),
    "scripts": rules(scope="scripts", public=("/cgi-bin/free",)),
    "writes": rules(scope="writes", write=("/up/*", "/alice/*=alice", "/team/*=alice,bob")),
    # git's recipe: anonymous clone, logins for push
    "git": rules(scope="none", private=("/git/*/git-receive-pack",
                                        "/git/*/info/refs?service=git-receive-pack")),
    "private-over-public": rules(scope="all", public=("/pub/*",), private=("/pub/secret/*",)),
    "ext": rules(logins=False, write=("/*",), exts=(".cgi",)),
}

# (rule set, user, kind, method (for the reader), path, query, expected)
GRID = [
    # no --auth-file: reads and runs for anyone, writes nowhere without a rule
    ("open", None, READ, "GET", "/a.txt", "", ALLOW),
    ("open", None, RUN, "GET", "/cgi-bin/x", "", ALLOW),
    ("open", None, WRITE, "PUT", "/a.txt", "", NOT_ALLOWED),
    ("open-write", None, WRITE, "PUT", "/up/a.txt", "", ALLOW),
    ("open-write", None, WRITE, "PUT", "/up/../a.txt", "", NOT_ALLOWED),
    ("open-write", None, WRITE, "PUT", "/a.txt", "", NOT_ALLOWED),
    # scope all: everything but --public and /healthz
    ("all", None, READ, "GET", "/a.txt", "", LOGIN),
    ("all", "alice", READ, "GET", "/a.txt", "", ALLOW),
    ("all", None, READ, "GET", "/healthz", "", ALLOW),
    ("all", None, READ, "GET", "/pub/a/b.txt", "", ALLOW),
    ("all", None, READ, "GET", "/pub", "", LOGIN),
    ("all", None, READ, "GET", "/pub/../a.txt", "", LOGIN),
    ("all", None, READ, "GET", "/stats", "format=json", ALLOW),
    ("all", None, READ, "GET", "/metrics", "", LOGIN),
    ("all", None, READ, "GET", "/PUB/x", "", LOGIN),  # globs are case-sensitive, like paths
    ("all", None, RUN, "GET", "/cgi-bin/x", "", LOGIN),
    ("all", None, WRITE, "PUT", "/pub/a.txt", "", NOT_ALLOWED),  # no --write rule: 405 first
    # scope scripts: runs only
    ("scripts", None, READ, "GET", "/a.txt", "", ALLOW),
    ("scripts", None, RUN, "GET", "/cgi-bin/x", "", LOGIN),
    ("scripts", None, RUN, "GET", "/cgi-bin/free", "", ALLOW),
    ("scripts", "bob", RUN, "POST", "/cgi-bin/x", "", ALLOW),
    # scope writes: reads and runs open, writes need a login and the named users
    ("writes", None, READ, "GET", "/up/a.txt", "", ALLOW),
    ("writes", None, RUN, "POST", "/cgi-bin/x", "", ALLOW),
    ("writes", None, WRITE, "PUT", "/up/a.txt", "", LOGIN),
    ("writes", "bob", WRITE, "PUT", "/up/a.txt", "", ALLOW),
    ("writes", "bob", WRITE, "PUT", "/alice/a.txt", "", FORBIDDEN),
    ("writes", "alice", WRITE, "PUT", "/alice/a.txt", "", ALLOW),
    ("writes", None, WRITE, "PUT", "/alice/a.txt", "", LOGIN),
    ("writes", "bob", WRITE, "DELETE", "/team/x", "", ALLOW),
    ("writes", "carol", WRITE, "DELETE", "/team/x", "", FORBIDDEN),
    ("writes", "alice", WRITE, "MKCOL", "/other/", "", NOT_ALLOWED),
    ("writes", "alice", WRITE, "PUT", "/cgi-bin/x", "", NOT_ALLOWED),  # never in a script folder
    ("writes", "alice", WRITE, "PUT", "/git/repo", "", NOT_ALLOWED),
    ("writes", "alice", WRITE, "MOVE", "/alice/../cgi-bin/x", "", NOT_ALLOWED),
    # git: clones anonymous, pushes logged in, whatever the query's spelling
    ("git", None, RUN, "GET", "/git/r.git/info/refs", "service=git-upload-pack", ALLOW),
    ("git", None, RUN, "POST", "/git/r.git/git-upload-pack", "", ALLOW),
    ("git", None, RUN, "GET", "/git/r.git/info/refs", "service=git-receive-pack", LOGIN),
    ("git", None, RUN, "GET", "/git/r.git/info/refs", "service=git%2Dreceive-pack", LOGIN),
    ("git", None, RUN, "POST", "/git/r.git/git-receive-pack", "", LOGIN),
    ("git", None, RUN, "POST", "/git/r.git//git-receive-pack", "", LOGIN),
    ("git", None, RUN, "POST", "/git/r.git/x/../git-receive-pack", "", LOGIN),
    ("git", "alice", RUN, "POST", "/git/r.git/git-receive-pack", "", ALLOW),
    ("git", None, READ, "GET", "/index.html", "", ALLOW),
    # --private wins over --public
    ("private-over-public", None, READ, "GET", "/pub/a", "", ALLOW),
    ("private-over-public", None, READ, "GET", "/pub/secret/a", "", LOGIN),
    # a --cgi-ext name is never written, whatever the rules
    ("ext", None, WRITE, "PUT", "/a.txt", "", ALLOW),
    ("ext", None, WRITE, "PUT", "/app/x.cgi", "", NOT_ALLOWED),
    ("ext", None, WRITE, "MOVE", "/app/x.cgi/y", "", NOT_ALLOWED),
]


@pytest.mark.parametrize(("rule_set", "user", "kind", "method", "path", "query", "expected"), GRID,
                         ids=[f"{row[0]}-{row[1]}-{row[2]}-{row[4]}?{row[5]}" for row in GRID])
def test_the_table(rule_set, user, kind, method, path, query, expected):
    assert RULE_SETS[rule_set].answer(kind, path, query, user) == expected


def test_every_rule_set_is_in_the_grid():
    assert {row[0] for row in GRID} == set(RULE_SETS)


def test_unknown_kind_is_a_bug():
    with pytest.raises(ValueError):
        RULE_SETS["open"].answer("delete", "/a")


@pytest.mark.parametrize(("text", "rule"), [
    ("/up/*", WriteRule("/up/*")),
    ("/up/*=alice", WriteRule("/up/*", ("alice",))),
    ("/up/*=alice, bob", WriteRule("/up/*", ("alice", "bob"))),
])
def test_write_rules_parse(text, rule):
    assert WriteRule.parse(text) == rule
    assert str(WriteRule.parse(text)) == text.replace(" ", "")


@pytest.mark.parametrize("text", ["up/*", "/up/*=", "/up/*=alice,", "/up/*=a:b"])
def test_bad_write_rules(text):
    with pytest.raises(ValueError):
        WriteRule.parse(text)


def test_private_rules_parse():
    assert PrivateRule.parse("/git/*") == PrivateRule("/git/*")
    rule = PrivateRule.parse("/git/*/info/refs?service=git-receive-pack")
    assert rule == PrivateRule("/git/*/info/refs", "service=git-receive-pack")
    assert str(rule) == "/git/*/info/refs?service=git-receive-pack"


# -- Access.check: the HTTPError for a request --------------------------------------------------------

class FakeAuth:
    """The login step, without bcrypt: "alice" with "Basic ok" logs in, anything else is 401."""

    def login(self, request: Request) -> str:
        if request.headers.get("authorization") == "Basic ok":
            request.remote_user = "alice"
            return "alice"
        raise HTTPError(401, headers=[("WWW-Authenticate", "Basic")])


def request(method: str, target: str, authorization: str | None = None) -> Request:
    headers = Headers([("Host", "x")] + ([("Authorization", authorization)] if authorization else []))
    return Request(method=method, target=target, protocol="HTTP/1.1", headers=headers)


def test_check_logs_in_and_returns_the_user():
    access = Access(RULE_SETS["writes"], FakeAuth())  # type: ignore[arg-type]
    req = request("PUT", "/alice/a.txt", "Basic ok")
    assert access.check(req, WRITE, "/alice/a.txt") == "alice"
    assert req.remote_user == "alice"


def test_check_errors():
    access = Access(RULE_SETS["writes"], FakeAuth())  # type: ignore[arg-type]
    with pytest.raises(HTTPError) as login:
        access.check(request("PUT", "/up/a"), WRITE, "/up/a")
    assert login.value.status == 401 and login.value.headers[0][0] == "WWW-Authenticate"
    with pytest.raises(HTTPError) as refused:
        access.check(request("PUT", "/team/a", "Basic ok"), WRITE, "/other/a")
    assert refused.value.status == 405 and refused.value.headers == [("Allow", "GET, HEAD")]
    carol = Access(rules(scope="writes", write=("/team/*=bob",)), FakeAuth())  # type: ignore[arg-type]
    with pytest.raises(HTTPError) as forbidden:
        carol.check(request("PUT", "/team/a", "Basic ok"), WRITE, "/team/a")
    assert forbidden.value.status == 403


def test_anonymous_reads_need_no_login_step():
    access = Access(RULE_SETS["open"], None)
    assert access.check(request("GET", "/a"), READ, "/a") is None
    assert access.answer(request("PUT", "/a"), WRITE, "/a") == NOT_ALLOWED


def test_rules_and_login_step_go_together():
    with pytest.raises(ValueError):
        Access(RULE_SETS["all"], None)


# -- start-up: what the rules need, and the warning for open writes ------------------------------------

def test_open_writes_warn_off_loopback_only(tmp_path):
    from cgibox.config import Config
    from cgibox.startup import StartupError, check

    def warnings(**settings):
        return [line for line in check(Config(root=tmp_path, **settings)) if "--write" in line]

    assert warnings(write=("/up/*",)) == []
    assert warnings(write=("/up/*",), host="::1") == []
    (line,) = warnings(write=("/up/*",), host="0.0.0.0")
    assert "anyone" in line
    with pytest.raises(StartupError, match="--auth-file"):
        check(Config(root=tmp_path, write=("/up/*=alice",)))
