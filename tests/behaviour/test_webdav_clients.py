"""Stock WebDAV clients against --webdav on every front: litmus (basic, copymove, props, locks,
http: no failure, no warning), rclone's webdav backend (a tree up and down, byte-exact) and
cadaver (put, get, a property, a lock) and a davfs2 mount (root and FUSE). Each is skipped, with
the reason, where it is missing."""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.servers import start_server

LITMUS_SUITES = ("basic", "copymove", "props", "locks", "http")
SUMMARY = re.compile(r"summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed")


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} is not installed (Debian: apt-get install {program})")
    return path


@pytest.fixture(scope="module")
def dav(front, tmp_path_factory):
    root = tmp_path_factory.mktemp("davclients")
    (root / "dav-root").mkdir()
    server = start_server(front, root, tmp_path_factory.mktemp("no-scripts"), tmp_path_factory.mktemp("logs"),
                          ["--webdav", "--write", "/dav-root/*"])
    yield server
    server.stop()


def test_litmus_passes_every_suite_without_warnings(dav, tmp_path):
    litmus = need("litmus")
    run = subprocess.run([litmus, f"{dav.url}/dav-root/"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "TESTS": " ".join(LITMUS_SUITES)})
    output = run.stdout + run.stderr
    summaries = {match[0]: match[1:] for match in SUMMARY.findall(output)}
    assert set(summaries) == set(LITMUS_SUITES), output
    failed = [line for line in output.splitlines() if "FAIL" in line or "WARNING" in line]
    assert not failed, output
    assert all(fails == "0" for _, _, fails in summaries.values()), output
    assert run.returncode == 0, output


def make_tree(base: Path) -> Path:
    tree = base / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "big.bin").write_bytes(os.urandom(12 * 1024 * 1024 + 17))  # past the default --max-body
    (tree / "sub" / "spaced name \u00fc.txt").write_text("unicode and spaces\n", encoding="utf-8")
    (tree / "sub" / "deeper" / "empty").write_bytes(b"")
    return tree


def same_tree(left: Path, right: Path) -> bool:
    compare = filecmp.dircmp(left, right)
    if compare.left_only or compare.right_only or compare.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(left, right, compare.common_files, shallow=False)
    return not mismatch and not errors and all(
        same_tree(left / name, right / name) for name in compare.common_dirs)


def test_rclone_copies_a_tree_up_and_down_byte_exact(dav, tmp_path):
    rclone = need("rclone")
    tree = make_tree(tmp_path)
    env = {**os.environ, "RCLONE_WEBDAV_URL": f"{dav.url}/dav-root/", "RCLONE_WEBDAV_VENDOR": "other",
           "RCLONE_CONFIG": "/dev/null"}
    for args in (["copy", str(tree), ":webdav:rc"], ["copy", ":webdav:rc", str(tmp_path / "back")],
                 ["check", str(tree), ":webdav:rc"]):
        run = subprocess.run([rclone, *args], capture_output=True, text=True, timeout=120, env=env)
        assert run.returncode == 0, run.stderr
    assert same_tree(tree, tmp_path / "back")
    assert same_tree(tree, dav.root / "dav-root" / "rc")


def test_cadaver_puts_gets_sets_a_property_and_locks(dav, tmp_path):
    cadaver = need("cadaver")
    (tmp_path / "up.txt").write_bytes(b"cadaver's bytes\n")
    script = ("put up.txt\nget up.txt down.txt\npropset up.txt colour blue\npropget up.txt colour\n"
              "lock up.txt\nunlock up.txt\nquit\n")
    env = {**os.environ, "HOME": str(tmp_path)}  # no ~/.netrc or ~/.cadaverrc of the user's
    run = subprocess.run([cadaver, f"{dav.url}/dav-root/"], input=script, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, env=env)
    assert "Value of colour is: blue" in run.stdout, run.stdout + run.stderr
    assert "failed" not in run.stdout.lower(), run.stdout
    assert (tmp_path / "down.txt").read_bytes() == b"cadaver's bytes\n"


def test_davfs2_mount_writes_and_reads_byte_exact(dav, tmp_path):
    """davfs2 locks a name before it creates it (LOCK on an unmapped URL), uploads with the lock
    token on close and unlocks: what a fake LOCK breaks (dufs #354). Needs root and FUSE."""
    mount = need("mount.davfs")
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.skip("a davfs2 mount needs root and /dev/fuse")
    point = tmp_path / "mnt"
    point.mkdir()
    (dav.root / "dav-root" / "served.txt").write_bytes(b"from the server\n")
    blob = os.urandom(2 * 1024 * 1024 + 5)
    run = subprocess.run([mount, f"{dav.url}/dav-root/", str(point)], input="\n\n", capture_output=True,
                         text=True, timeout=60)
    if run.returncode != 0:
        pytest.skip(f"davfs2 cannot mount here: {run.stderr.strip()[-200:]}")
    try:
        (point / "d2").mkdir()
        (point / "d2" / "blob.bin").write_bytes(blob)
        assert (point / "served.txt").read_bytes() == b"from the server\n"
    finally:
        # unmounting flushes davfs2's cache: the uploads happen by the time umount returns
        subprocess.run(["umount", str(point)], capture_output=True, timeout=120)
    assert (dav.root / "dav-root" / "d2" / "blob.bin").read_bytes() == blob
    assert "LOCK /dav-root/d2/blob.bin" in dav.log() and "UNLOCK /dav-root/d2/blob.bin" in dav.log()
