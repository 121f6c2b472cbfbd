"""Folders as archives (CONTRACT: `GET /folder/?download=zip` or `tar`): streamed, the listing's
rules (hidden names, links out of the root, script folders left out), a Content-Disposition name,
a link on every listing; a folder of 10,000 files compared entry by entry; a client that stops
reading costs only its connection."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.servers import read_from, serving

FILES = 10_000


def build_tree(base: Path) -> tuple[Path, Path]:
    root, cgi_dir, outside = base / "root", base / "cgi-bin", base / "outside"
    for folder in (root, cgi_dir, outside):
        folder.mkdir()
    (outside / "secret.txt").write_text("outside the root\n")
    share = root / "share"
    (share / "sub" / "deeper").mkdir(parents=True)
    (share / "empty").mkdir()
    (share / "a.txt").write_text("alpha\n")
    (share / "café ü.txt").write_text("utf-8 name\n")
    (share / "sub" / "b.bin").write_bytes(bytes(range(256)) * 1000)
    (share / "sub" / "deeper" / "c.txt").write_text("deep\n")
    (share / ".hidden.txt").write_text("hidden\n")
    (share / ".git").mkdir()
    (share / ".git" / "config").write_text("hidden folder\n")
    (share / "out.txt").symlink_to(outside / "secret.txt")
    (share / "outdir").symlink_to(outside)
    (share / "in.txt").symlink_to(share / "a.txt")
    (share / "loop").symlink_to(share)  # a link to a folder above it: entered once
    many = root / "many"
    for index in range(FILES):
        folder = many / f"d{index % 20:02d}"
        if index < 20:
            folder.mkdir(parents=True)
        (folder / f"f{index:05d}.txt").write_bytes(f"file {index}\n".encode() * (index % 7))
    big = root / "big"
    big.mkdir()
    for index in range(8):  # 64 MiB: more than any socket buffer holds
        with open(big / f"part{index}.bin", "wb") as out:
            out.truncate(8 * 1024 * 1024)
    (root / "file.txt").write_text("a file\n")
    os.chmod(base, 0o755)
    return root, cgi_dir


@pytest.fixture(scope="session")
def archive_tree(tmp_path_factory) -> tuple[Path, Path]:
    """Built once for every front (10,000 files take a while to make)."""
    return build_tree(tmp_path_factory.mktemp("archives"))


@pytest.fixture(scope="module")
def archive_server(front, archive_tree, tmp_path_factory):
    yield from serving(front, archive_tree, tmp_path_factory.mktemp("logs"))


def expected_members(folder: Path, top: str) -> dict[str, bytes | None]:
    """What an archive of `folder` must hold: name -> bytes (None for a folder), by the listing's
    rules, walked here independently of the server."""
    members: dict[str, bytes | None] = {top + "/": None}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        relative = os.path.relpath(dirpath, folder)
        prefix = top + "/" + ("" if relative == "." else relative + "/")
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in dirnames:
            if not os.path.islink(os.path.join(dirpath, name)):
                members[prefix + name + "/"] = None
        for name in filenames:
            path = os.path.join(dirpath, name)
            if name.startswith(".") or os.path.islink(path):
                continue
            members[prefix + name] = Path(path).read_bytes()
    return members


def zip_members(data: bytes) -> dict[str, bytes | None]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {info.filename: None if info.is_dir() else archive.read(info) for info in archive.infolist()}


def tar_members(data: bytes) -> dict[str, bytes | None]:
    members: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for member in archive.getmembers():
            if member.isdir():
                members[member.name.rstrip("/") + "/"] = None
            else:
                extracted = archive.extractfile(member)
                assert extracted is not None
                members[member.name] = extracted.read()
    return members


READERS = {"zip": zip_members, "tar": tar_members}


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_folder_streams_as_an_archive_with_the_listing_rules(archive_server, kind):
    reply = archive_server.get(f"/share/?download={kind}")
    assert reply.status == 200
    assert reply.header("Content-Type") == {"zip": "application/zip", "tar": "application/x-tar"}[kind]
    assert reply.header("Content-Disposition") == f'attachment; filename="share.{kind}"'
    assert reply.header("Content-Length") is None  # streamed as it is made
    members = READERS[kind](reply.body)
    wanted = expected_members(archive_server.root / "share", "share")
    # a link inside the root is archived as what it names; links out of the root are not
    wanted["share/in.txt"] = b"alpha\n"
    assert members == wanted
    names = "\n".join(members)
    assert "hidden" not in names and ".git" not in names and "secret" not in names
    assert "out" not in names and "loop" not in names


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_ten_thousand_files_compared_entry_by_entry(archive_server, kind):
    reply = archive_server.request("GET", f"/many/?download={kind}", timeout=120)
    assert reply.status == 200
    members = READERS[kind](reply.body)
    wanted = expected_members(archive_server.root / "many", "many")
    assert sum(1 for value in wanted.values() if value is not None) == FILES
    assert members.keys() == wanted.keys()
    for name, content in wanted.items():
        assert members[name] == content, name


def test_every_listing_links_its_archives(archive_server):
    page = archive_server.get("/share/").text
    assert 'href="?download=zip"' in page and 'href="?download=tar"' in page


def test_the_root_and_odd_requests(archive_server):
    reply = archive_server.request("HEAD", "/share/?download=zip")
    assert reply.status == 200 and reply.body == b""
    assert archive_server.get("/missing/?download=zip").status == 404
    assert archive_server.get("/.git/?download=zip").status == 404
    # a file ignores the query; an unknown format is the listing
    assert archive_server.get("/file.txt?download=zip").body == b"a file\n"
    assert b"<table" in archive_server.get("/share/?download=rar").body
    # the root is named after its folder; the start of its zip is enough here
    conn = archive_server.connection()
    try:
        conn.request("GET", "/?download=zip")
        root = conn.getresponse()
        assert root.status == 200 and root.headers["Content-Disposition"] == 'attachment; filename="root.zip"'
        assert root.read(4) == b"PK\x03\x04"
    finally:
        conn.close()


def test_a_client_that_stops_reading_costs_only_its_connection(archive_server):
    """64 MiB of archive, one byte read, then the connection is held open: the server answers
    others meanwhile, and after the reader goes, it is as before."""
    stalled = socket.create_connection((archive_server.host, archive_server.port), timeout=10)
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET /big/?download=zip HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = read_from(stalled, until=b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        for _ in range(3):
            assert archive_server.get("/file.txt").status == 200
            assert archive_server.get("/share/?download=tar").status == 200
    finally:
        stalled.close()
    for _ in range(3):
        assert archive_server.get("/healthz").status == 200
    digest = hashlib.sha256(archive_server.get("/share/?download=zip").body).hexdigest()
    assert digest == hashlib.sha256(archive_server.get("/share/?download=zip").body).hexdigest()
    assert archive_server.alive()


def test_an_archive_holds_only_what_the_reader_may_read(make_server, archive_tree, tmp_path):
    """A --private folder inside a public one stays out of the public one's archive."""
    from tests.behaviour.test_auth import basic, write_htpasswd

    passwd = tmp_path / "htpasswd"
    write_htpasswd(passwd, {"alice": "alice-pw"})
    root, cgi_dir = archive_tree
    server = make_server(["--auth-file", str(passwd), "--auth-scope", "none", "--private", "/share/sub/*"],
                         root=root, cgi_dir=cgi_dir)
    assert server.get("/share/sub/deeper/c.txt").status == 401
    names = zip_members(server.get("/share/?download=zip").body)
    assert "share/a.txt" in names
    assert not any(name.startswith("share/sub") for name in names), sorted(names)
    private = server.get("/share/sub/?download=tar", Authorization=basic("alice", "alice-pw"))
    assert private.status == 200
    assert "sub/deeper/c.txt" in tar_members(private.body)
