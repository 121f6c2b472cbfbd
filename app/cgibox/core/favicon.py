"""The built-in /favicon.ico: a folder on a rounded blue square, drawn here (no binary file in the
source) as a 32×32 PNG inside an ICO container, which every browser and crawler understands."""

from __future__ import annotations

import functools
import struct
import zlib

SIZE = 32
SUPERSAMPLE = 4  # samples per pixel along each axis, for smooth edges
BACKGROUND = (0x2F, 0x6F, 0xDE)
FOLDER = (0xFF, 0xFF, 0xFF)
TAB = (0xD6, 0xE4, 0xFA)


def _in_rounded_rect(x: float, y: float, left: float, top: float, right: float, bottom: float,
                     radius: float) -> bool:
    if not (left <= x <= right and top <= y <= bottom):
        return False
    cx = min(max(x, left + radius), right - radius)
    cy = min(max(y, top + radius), bottom - radius)
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2


def _colour_at(x: float, y: float) -> tuple[int, int, int, int]:
    """RGBA of one sample point in 32×32 icon coordinates."""
    if not _in_rounded_rect(x, y, 0.5, 0.5, 31.5, 31.5, 7):
        return (0, 0, 0, 0)
    if _in_rounded_rect(x, y, 7, 12, 25, 24, 1.5):  # the folder's body
        return (*FOLDER, 255)
    if _in_rounded_rect(x, y, 7, 9, 15, 13, 1.2) or _in_rounded_rect(x, y, 7, 10.5, 25, 13, 1.2):
        return (*TAB, 255)  # its tab and back
    return (*BACKGROUND, 255)


def _pixels() -> bytes:
    rows = []
    step = 1 / SUPERSAMPLE
    for py in range(SIZE):
        row = bytearray(b"\x00")  # PNG filter type 0 for this scanline
        for px in range(SIZE):
            total = [0, 0, 0, 0]
            for sy in range(SUPERSAMPLE):
                for sx in range(SUPERSAMPLE):
                    r, g, b, a = _colour_at(px + (sx + 0.5) * step, py + (sy + 0.5) * step)
                    total[0] += r * a
                    total[1] += g * a
                    total[2] += b * a
                    total[3] += a
            alpha = total[3]
            if alpha:
                row += bytes((total[0] // alpha, total[1] // alpha, total[2] // alpha,
                              alpha // SUPERSAMPLE ** 2))
            else:
                row += b"\x00\x00\x00\x00"
        rows.append(bytes(row))
    return b"".join(rows)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png() -> bytes:
    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(_pixels(), 9)) + _png_chunk(b"IEND", b""))


@functools.cache
def favicon_ico() -> bytes:
    """The ICO file: one directory entry holding a PNG (allowed since Windows Vista, read by all browsers)."""
    png = _png()
    directory = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", SIZE, SIZE, 0, 0, 1, 32, len(png), 6 + 16)
    return directory + entry + png
