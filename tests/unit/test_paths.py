"""core/paths.py: the one function that confines a URL path to the root, run over a corpus."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest

from cgibox.core.paths import (
    decode_path,
    display_name,
    is_within,
    resolve,
    safe_segments,
    stat_error_status,
    url_segment,
)
from tests.unit.tree import build_tree

CORPUS = Path(__file__).with_name("traversal_corpus.txt")


def load_corpus() -> list[tuple[str, str | None]]:
    """[(url_path, expected relative path or None)] from traversal_corpus.txt."""
    cases = []
    for number, line in enumerate(CORPUS.read_text("utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        columns = line.split()
        assert len(columns) >= 2, f"{CORPUS.name}:{number}: needs a path and an expectation"
        path, expected = columns[0], columns[1]
        # the expectation's bytes, as a file name (percent-encoded bytes that are not UTF-8 included)
        cases.append((path, None if expected == "-" else os.fsdecode(unquote_to_bytes(expected))))
    return cases


CASES = load_corpus()


def confine(root: str, cgi_dir: str, url_path: str) -> str | None:
    decoded = decode_path(url_path)
    if decoded is None:
        return None
    return resolve(root, decoded, exclude=(cgi_dir,))


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[str, str]:
    return build_tree(tmp_path_factory.mktemp("paths"))


def test_corpus_is_substantial():
    refused = [path for path, expected in CASES if expected is None]
    assert len(CASES) >= 80 and len(refused) >= 60
    assert len({path for path, _ in CASES}) == len(CASES), "a path appears twice in the corpus"


@pytest.mark.parametrize(("url_path", "expected"), CASES, ids=[c[0] for c in CASES])
def test_traversal_corpus(tree, url_path, expected):
    root, cgi_dir = tree
    result = confine(root, cgi_dir, url_path)
    if expected is None:
        assert result is None, f"{url_path!r} must be refused, resolved to {result!r}"
    else:
        want = root if expected == "." else os.path.join(root, expected)
        assert result == os.path.realpath(want)
        assert is_within(result, root)


def test_resolve_never_leaves_the_root_for_any_corpus_path(tree):
    root, cgi_dir = tree
    for url_path, _ in CASES:
        result = confine(root, cgi_dir, url_path)
        assert result is None or (is_within(result, root) and not is_within(result, cgi_dir))


def test_decode_path_refusals():
    assert decode_path("/a%2fb") is None
    # a backslash is a name byte on Linux, never a separator: kept, raw or encoded
    assert decode_path("/a%5Cb") == decode_path("/a\\b") == "/a\\b"
    assert decode_path("/a%00") is None
    assert decode_path("/caf%C3%A9") == "/café"
    assert decode_path("/%25") == "/%"
    assert decode_path("/a%zz") == "/a%zz"  # not an escape: kept as it is


def test_decode_path_keeps_bytes_that_are_not_utf8_as_surrogate_escapes():
    """Was None (strict UTF-8): a file whose name is not UTF-8 could never be asked for."""
    assert decode_path("/%ff") == "/\udcff"
    assert os.fsencode(decode_path("/%c0%ae")) == b"/\xc0\xae"  # an overlong "." is a plain name
    assert os.fsencode(decode_path("/caf%e9.txt")) == b"/caf\xe9.txt"


def test_decode_path_refuses_a_lone_surrogate_no_wire_can_carry():
    """Was returned unchanged, and then resolve() raised UnicodeEncodeError."""
    for raw in ("/\ud800", "/a\udcff", "/\u0100"):
        assert decode_path(raw) is None, repr(raw)


def test_resolve_never_raises_on_a_path_with_no_bytes(tree):
    """resolve("/\ud800") raised UnicodeEncodeError from os.lstat: now the path names nothing."""
    root, _ = tree
    assert resolve(root, "/\ud800") is None
    assert resolve(root, "/dir/\udfff/x") is None
    assert resolve(root, "/a\x00b") is None


def test_a_name_that_is_not_utf8_round_trips_through_a_url(tmp_path):
    root = os.path.realpath(tmp_path)
    with open(os.path.join(os.fsencode(root), b"bad\xff name.txt"), "wb") as f:
        f.write(b"x")
    (name,) = os.listdir(root)
    decoded = decode_path("/" + url_segment(name))
    assert resolve(root, decoded) == os.path.join(root, name)
    assert display_name(name) == "bad\\xff name.txt"


def test_display_name_escapes_what_cannot_be_shown():
    assert display_name("plain é \U0001f600") == "plain é \U0001f600"
    assert display_name("a\nb\x7f") == "a\\x0ab\\x7f"
    assert display_name("\ud800") == "\\ud800"
    display_name("\udcff\ud800\x00").encode("utf-8")  # always encodable


def test_one_stat_to_status_mapping():
    import errno
    assert stat_error_status(FileNotFoundError(errno.ENOENT, "x")) == 404
    assert stat_error_status(OSError(errno.ENAMETOOLONG, "x")) == 404
    assert stat_error_status(OSError(errno.ELOOP, "x")) == 404
    assert stat_error_status(NotADirectoryError(errno.ENOTDIR, "x")) == 404
    assert stat_error_status(PermissionError(errno.EACCES, "x")) == 403
    assert stat_error_status(OSError(errno.EIO, "x")) == 404


def test_safe_segments():
    assert safe_segments("/") == []
    assert safe_segments("/a/b/") == ["a", "b"]
    assert safe_segments("/a/b") == ["a", "b"]
    for bad in ("", "a", "//", "/a//b", "/a/../b", "/./a", "/.a", "/a/.", "/a//"):
        assert safe_segments(bad) is None, bad


def test_is_within_is_not_a_string_prefix():
    assert is_within("/srv/www", "/srv/www")
    assert is_within("/srv/www/a", "/srv/www")
    assert not is_within("/srv/www2/a", "/srv/www")
    assert not is_within("/srv", "/srv/www")
    assert is_within("/anything", "/")


def test_root_with_similar_sibling(tmp_path):
    """/srv/www must not reach /srv/www-private through a symlink (prefix confusion)."""
    root = tmp_path / "www"
    private = tmp_path / "www-private"
    root.mkdir()
    private.mkdir()
    (private / "key").write_text("k")
    (root / "sneaky").symlink_to(private / "key")
    real_root = os.path.realpath(root)
    assert resolve(real_root, "/sneaky") is None


def test_root_that_is_itself_a_symlink(tmp_path):
    """Only the realpath of the root is used: files under it still resolve."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "f.txt").write_text("f")
    link = tmp_path / "link"
    link.symlink_to(real)
    root = os.path.realpath(link)
    assert resolve(root, "/f.txt") == os.path.join(root, "f.txt")


def test_symlink_loop_is_refused_or_confined(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "loop").symlink_to(root / "loop")
    real_root = os.path.realpath(root)
    result = resolve(real_root, "/loop")
    assert result is None or is_within(result, real_root)


@pytest.mark.parametrize(("name", "shown"), [
    ("plain.txt", "plain.txt"),
    ("a\\b", "a\\\\b"),  # a literal backslash is doubled, so "\\x01" in a name never poses as byte 1
    ("a\x01", "a\\x01"),
    ("invoice\u202egnp.exe", "invoice\\u202egnp.exe"),  # RIGHT-TO-LEFT OVERRIDE: would show "exe.png"
    ("a\u2066b\u2069", "a\\u2066b\\u2069"),  # bidi isolates
    ("pay\u200bpal", "pay\\u200bpal"),  # zero-width space
    ("\ufeffbom", "\\ufeffbom"),
    ("soft\u00adhyphen", "soft\\xadhyphen"),
    ("nb\u00a0space", "nb\\xa0space"),  # a space other than U+0020 poses as one
    ("ideo\u3000space", "ideo\\u3000space"),
    ("line\u2028sep", "line\\u2028sep"),
    ("filler\u3164", "filler\\u3164"),
    ("tag\U000e0041", "tag\\U000e0041"),  # a TAG character (Cf) outside the BMP
    ("caf\u00e9 \u65e5\u672c", "caf\u00e9 \u65e5\u672c"),  # letters of every script stay as they are
    ("\U0001f468\u200d\U0001f469", "\U0001f468\u200d\U0001f469"),  # a ZWJ emoji sequence stays whole
    ("a\u200db", "a\\u200db"),  # a ZWJ between letters does not
])
def test_display_name_escapes_what_could_pose_as_another_name(name, shown):
    assert display_name(name) == shown
