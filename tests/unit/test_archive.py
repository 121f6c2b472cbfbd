"""core/archive.py without sockets: ZIP64 past 4 GiB (a sparse file of 4 GiB and a little, its
zip streamed through and read back by zipfile without holding it), the Content-Disposition name,
and the chunks coalesced."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from cgibox.core.archive import Archives, coalesce, content_disposition, zip_chunks

FOUR_GIB = 4 * 1024 ** 3


class SparseStream(io.RawIOBase):
    """A read-only file of `size` bytes: the stored pieces where given, zeros elsewhere."""

    def __init__(self, pieces: dict[int, bytes], size: int) -> None:
        self.pieces, self.size, self.position = pieces, size, 0
        self.starts = sorted(pieces)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = {0: offset, 1: self.position + offset, 2: self.size + offset}[whence]
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:  # type: ignore[override]
        want = min(len(buffer), self.size - self.position)
        data = bytearray(want)
        for start in self.starts:
            piece = self.pieces[start]
            lo, hi = max(start, self.position), min(start + len(piece), self.position + want)
            if lo < hi:
                data[lo - self.position:hi - self.position] = piece[lo - start:hi - start]
        buffer[:want] = data
        self.position += want
        return want


def test_zip64_past_four_gib_in_constant_memory(tmp_path: Path):
    folder = tmp_path / "big"
    folder.mkdir()
    with open(folder / "huge.bin", "wb") as out:
        out.truncate(FOUR_GIB + 123)  # sparse: nothing on disk, 4 GiB of zeros to read
    (folder / "zz-after.txt").write_bytes(b"placed after 4 GiB")
    archives = Archives(str(tmp_path), ())
    pieces: dict[int, bytes] = {}
    offset = 0
    largest = 0
    for chunk in coalesce(zip_chunks(archives.walk(str(folder), "big"))):
        largest = max(largest, len(chunk))
        if chunk.count(0) != len(chunk):  # keep only what is not zeros (headers, the small file)
            pieces[offset] = chunk
        offset += len(chunk)
    assert offset > FOUR_GIB and largest < 2 * 1024 * 1024  # streamed, never one big piece
    with zipfile.ZipFile(SparseStream(pieces, offset)) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        assert infos["big/huge.bin"].file_size == FOUR_GIB + 123
        assert infos["big/zz-after.txt"].header_offset > FOUR_GIB  # only ZIP64 can say where it is
        assert archive.read("big/zz-after.txt") == b"placed after 4 GiB"


@pytest.mark.parametrize(("name", "header"), [
    ("share.zip", 'attachment; filename="share.zip"'),
    ("café ü.tar", "attachment; filename=\"caf_ _.tar\"; filename*=UTF-8''caf%C3%A9%20%C3%BC.tar"),
    ('a"b\\c%.zip', "attachment; filename=\"a_b_c_.zip\"; filename*=UTF-8''a%22b%5Cc%25.zip"),
])
def test_content_disposition(name, header):
    assert content_disposition(name) == header


def test_coalesce_keeps_the_bytes_and_closes_the_source():
    closed = []

    def source():
        try:
            for index in range(1000):
                yield bytes([index % 256]) * 1000
        finally:
            closed.append(True)

    joined = b"".join(coalesce(source()))
    assert joined == b"".join(bytes([i % 256]) * 1000 for i in range(1000))
    pieces = coalesce(source())
    next(pieces)
    pieces.close()  # a client gone: the source is closed at once
    assert closed == [True, True]
    assert os.path.exists(__file__)
