"""core/landing.py without sockets: the name rules, a folder opened and confined, a Landing that
puts a file in place whole or leaves nothing (unnamed O_TMPFILE and the hidden-name fallback)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cgibox.core import landing
from cgibox.core.errors import HTTPError
from cgibox.core.landing import Landing, href_of, name_problem, open_folder, split_path


@pytest.mark.parametrize("name", ["a.txt", "café ü.txt", "with space", 'quo"te', "x" * 255,
                                  "bytes\udcff.bin", "n2", "-dash"])
def test_names_that_may_be_written(name):
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "a/b", "a\\b", "nul\x00", "tab\t", "nl\n",
                                  "del\x7f", "c1\x85", "x" * 256, "lone\ud800"])
def test_names_that_may_not(name):
    assert name_problem(name) is not None


def test_split_path_checks_every_segment():
    assert split_path("/a/b.txt") == ("/a/", "b.txt")
    assert split_path("/a/b/") == ("/a/", "b")
    for bad in ("/.git/x", "/a//b", "/a/../b"):
        with pytest.raises(HTTPError) as caught:
            split_path(bad)
        assert caught.value.status == 400
    with pytest.raises(HTTPError) as caught:
        split_path("/")
    assert caught.value.status == 403


def test_href_of_spells_the_bytes():
    assert href_of("/a b/", "c\udcff.txt") == "/a%20b/c%FF.txt"
    assert href_of("/a/", "", is_dir=True) == "/a/"


@pytest.fixture
def tree(tmp_path: Path) -> tuple[str, Path]:
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "in" / "out").symlink_to(tmp_path / "outside")
    return str(root.resolve()), root


def test_open_folder_confines(tree):
    root, path = tree
    with open_folder(root, "/in/", ()) as fd:
        assert os.path.samestat(os.fstat(fd), os.stat(path / "in"))
    for folder, status in (("/in/out/", 403), ("/missing/", 409), ("/in/", 403)):
        exclude = (str(path / "in"),) if folder == "/in/" else ()
        with pytest.raises(HTTPError) as caught, open_folder(root, folder, exclude):
            pass
        assert caught.value.status == status


def names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.fixture(params=["unnamed", "hidden name"])
def mode(request, monkeypatch):
    if request.param == "hidden name":
        monkeypatch.setattr(landing, "_UNNAMED", False)
    return request.param


def test_a_landing_is_invisible_until_commit_and_leaves_nothing_on_discard(tree, mode):
    root, path = tree
    with open_folder(root, "/in/", ()) as fd:
        kept = Landing(fd, "kept.txt", 100)
        kept.write(b"whole")
        if mode == "unnamed":
            assert names(path / "in") == ["out"]  # nothing to see while it is written
        assert kept.commit() is False
        assert (path / "in" / "kept.txt").read_bytes() == b"whole"
        again = Landing(fd, "kept.txt", 100)
        again.write(b"second")
        assert (path / "in" / "kept.txt").read_bytes() == b"whole"  # readers see the old one
        assert again.commit() is True
        assert (path / "in" / "kept.txt").read_bytes() == b"second"
        dropped = Landing(fd, "dropped.txt", 100)
        dropped.write(b"half")
        dropped.discard()
        dropped.discard()
    assert names(path / "in") == ["kept.txt", "out"]


def test_limits_and_only_if_absent(tree, mode):
    root, path = tree
    with open_folder(root, "/in/", ()) as fd:
        big = Landing(fd, "big", 4)
        big.write(b"1234")
        with pytest.raises(HTTPError) as caught:
            big.write(b"5")
        assert caught.value.status == 413
        big.discard()
        first = Landing(fd, "once", 10)
        first.write(b"a")
        second = Landing(fd, "once", 10)
        second.write(b"b")
        assert first.commit(only_if_absent=True) is False
        with pytest.raises(HTTPError) as caught:
            second.commit(only_if_absent=True)
        assert caught.value.status == 412
        (path / "in" / "folder").mkdir()
        onto = Landing(fd, "folder", 10)
        with pytest.raises(HTTPError) as caught:
            onto.commit()
        assert caught.value.status == 409
    assert (path / "in" / "once").read_bytes() == b"a"
    assert names(path / "in") == ["folder", "once", "out"]


def test_a_full_disk_is_507(tree, monkeypatch):
    root, path = tree

    def full(fd, data):
        raise OSError(28, "No space left on device")

    with open_folder(root, "/in/", ()) as fd:
        filling = Landing(fd, "full", 100)
        monkeypatch.setattr(landing.os, "write", full)
        with pytest.raises(HTTPError) as caught:
            filling.write(b"x")
        assert caught.value.status == 507
        filling.discard()
    assert names(path / "in") == ["out"]
