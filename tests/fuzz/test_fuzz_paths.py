"""core.paths under hypothesis, on a root with symlinks that stay in, lead out, loop, and point
at hidden names and at the cgi dir: whatever the URL path, decode_path and resolve never raise,
and a result is always under the root and never in the cgi dir or a hidden name."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cgibox.core.paths import decode_path, display_name, is_within, resolve, url_segment


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[str, str, str]:
    """(root, cgi dir inside it, a folder outside it), all real paths."""
    base = tmp_path_factory.mktemp("fuzz-paths")
    root, outside = base / "www", base / "outside"
    (root / "dir" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "cgi-bin").mkdir()
    outside.mkdir()
    (outside / "secret").write_text("s")
    (root / "dir" / "file.txt").write_text("f")
    (root / ".hidden" / "key").write_text("k")
    (root / "cgi-bin" / "script").write_text("#!/bin/sh\n")
    links = {
        "in": root / "dir", "in-file": root / "dir" / "file.txt", "up": root,
        "out": outside, "out-file": outside / "secret", "parent": base,
        "to-hidden": root / ".hidden", "to-cgi": root / "cgi-bin", "loop": root / "loop",
        "dangling": root / "nowhere", "abs-root": Path("/"),
    }
    for name, target in links.items():
        (root / name).symlink_to(target)
    (root / "dir" / "back-out").symlink_to("../../outside")
    (root / "dir" / "back-in").symlink_to("../dir/deeper")
    with open(os.path.join(os.fsencode(root), b"raw\xff"), "wb") as f:
        f.write(b"r")
    return os.path.realpath(root), os.path.realpath(root / "cgi-bin"), os.path.realpath(outside)


SEGMENTS = ["dir", "deeper", "file.txt", "in", "in-file", "up", "out", "out-file", "parent",
            "to-hidden", "to-cgi", "loop", "dangling", "abs-root", "back-out", "back-in", "cgi-bin",
            "script", ".hidden", "key", "secret", "outside", "raw%FF", "raw%ff", "..", ".", "",
            "%2e%2e", "%2E", "%2f", "%5c", "%00", "%0a", "%c0%ae", "%ff", "%ed%a0%80", "\\", "~",
            "%252e", "..%2f", "a%00b", "%e9", "\x00", "\udcff", "\ud800", "é"]


@st.composite
def url_paths(draw) -> str:
    parts = draw(st.lists(st.sampled_from(SEGMENTS) | st.text(max_size=6), max_size=6))
    path = "/".join(parts)
    return path if draw(st.booleans()) and path.startswith("/") else "/" + path + draw(
        st.sampled_from(["", "/", "//"]))


def check_confined(tree, url_path: str) -> None:
    root, cgi_dir, outside = tree
    decoded = decode_path(url_path)
    if decoded is None:
        return
    display_name(decoded).encode("utf-8")  # what a page shows of it can always be encoded
    result = resolve(root, decoded, exclude=(cgi_dir,))
    if result is None:
        return
    real = os.path.realpath(result)
    assert is_within(real, root), (url_path, result)
    assert not is_within(real, cgi_dir) and not is_within(real, outside)
    relative = os.path.relpath(real, root)
    assert not any(part.startswith(".") and part != "." for part in relative.split(os.sep))


@given(url_path=url_paths())
@example(url_path="/\ud800")
@example(url_path="/dir/\udfff/x")
@example(url_path="/out/secret")
@example(url_path="/dir/back-out/secret")
@example(url_path="/to-cgi/script")
@example(url_path="/to-hidden/key")
@example(url_path="/%c0%ae%c0%ae/outside/secret")
@example(url_path="/loop/x")
def test_a_result_is_always_under_the_root(tree, url_path):
    check_confined(tree, url_path)


@given(url_path=st.text(max_size=40))
def test_any_text_at_all_never_raises(tree, url_path):
    check_confined(tree, url_path)


@given(name=st.binary(min_size=1, max_size=20).filter(lambda b: b"/" not in b and b"\x00" not in b))
@example(name=b"\xff")
@example(name=b"\xed\xa0\x80")
@example(name=b"caf\xe9")
@example(name=b"\\")  # a name byte like any other (was refused in every URL, so never listed)
@example(name=b"a\xe2\x80\xaeb")  # RIGHT-TO-LEFT OVERRIDE
def test_any_file_name_round_trips_through_its_url_segment(name):
    decoded_name = os.fsdecode(name)
    assert decode_path("/" + url_segment(decoded_name)) == "/" + decoded_name
    shown = display_name(decoded_name)
    shown.encode("utf-8")
    assert not any(ord(c) < 0x20 for c in shown)
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") and c != "\u200d" for c in shown)
