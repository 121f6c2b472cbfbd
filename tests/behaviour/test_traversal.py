"""Traversal over the wire on every front: every refused path of the unit corpus
(tests/unit/traversal_corpus.txt), sent byte for byte, is a 404 that reveals nothing."""

from __future__ import annotations

import pytest

from tests.unit.test_paths import CASES

REFUSED = [path for path, expected in CASES if expected is None]
SECRETS = (b"outside the root", b"HIDDEN-CONTENT", b"[core]", b"echo source")


def fetch(server, target: str) -> tuple[int, bytes]:
    data = server.raw(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode("latin-1"))
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("target", REFUSED, ids=REFUSED)
def test_refused_over_the_wire(server, target):
    status, body = fetch(server, target)
    if not target.startswith("/"):
        assert status in (400, 404)  # not a path at all: the wire parser may refuse it first
    elif target.startswith(("/cgi-bin", "/%63gi-bin")):
        assert status in (403, 404)  # the CGI side: a missing or unrunnable script, never its source
    else:
        assert status == 404
    for secret in SECRETS:
        assert secret not in body


@pytest.mark.parametrize("target", [
    "/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd",
    "/..\\..\\..\\etc\\passwd", "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", "/hello.txt%00.html",
    "/link-out", "/link-dir-out/secret.txt", "/link-rel-out",
])
def test_classic_attacks(server, target):
    status, body = fetch(server, target)
    assert status == 404
    assert b"root:" not in body and b"outside the root" not in body


def test_allowed_corpus_paths_that_exist_are_served(server):
    for path, expected in CASES:
        if expected in ("hello.txt", "café.txt", "plain-dir/a.txt"):
            status, body = fetch(server, path)
            assert status == 200, path
