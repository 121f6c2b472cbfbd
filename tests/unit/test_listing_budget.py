"""Huge folders (issue 18 point 7): HTML listings come PAGE_ROWS rows a page, JSON whole, and the
listing caches stay within LISTING_CACHE_BYTES however many sort orders and pages are asked for.
A folder of 100,000 entries is faked at os.scandir (making real files takes a minute here)."""

from __future__ import annotations

import json
import os
import re
import tracemalloc

import pytest

from cgibox.config import Config
from cgibox.core import listing
from cgibox.core.listing import LISTING_CACHE_BYTES, PAGE_ROWS, ListingEntry
from cgibox.core.request import Headers, Request
from cgibox.core.router import App
from cgibox.core.stats import Stats

HUGE = 100_000


class FakeEntry:
    """What os.scandir yields, for a file that does not exist."""

    def __init__(self, folder: str, name: str, number: int) -> None:
        self.name, self.path = name, os.path.join(folder, name)
        self._stat = os.stat_result((0o100644, number, 1, 1, 0, 0, number % 5000, 1_700_000_000 + number,
                                     1_700_000_000 + number, 1_700_000_000 + number))

    def is_symlink(self) -> bool:
        return False

    def stat(self) -> os.stat_result:
        return self._stat


class FakeScan:
    def __init__(self, entries: list[FakeEntry]) -> None:
        self.entries = entries

    def __enter__(self):
        return iter(self.entries)

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def huge(tmp_path, monkeypatch):
    root, cgi_dir = tmp_path / "www", tmp_path / "cgi-bin"
    (root / "huge").mkdir(parents=True)
    (root / "small").mkdir()
    cgi_dir.mkdir()
    folder = os.path.realpath(root / "huge")
    fakes = [FakeEntry(folder, f"file-{n:06d}.txt", n) for n in range(HUGE)]
    real_scandir = os.scandir

    def scandir(path):
        return FakeScan(fakes) if os.path.realpath(path) == folder else real_scandir(path)

    monkeypatch.setattr(listing.os, "scandir", scandir)
    app = App(Config(root=root, cgi_dir=cgi_dir), Stats.create(str(tmp_path / "stats")), "threading")
    return app


def get(app: App, target: str, **fields: str):
    response = app.handle(Request("GET", target, headers=Headers(
        [("Host", "localhost")] + [(k.replace("_", "-"), v) for k, v in fields.items()])))
    assert isinstance(response.body, bytes)
    return response, response.body


def row_names(html: str) -> list[str]:
    return re.findall(r'<a href="(file-\d+\.txt)">', html)


def test_a_huge_folder_is_listed_a_page_at_a_time(huge):
    response, body = get(huge, "/huge/")
    html = body.decode()
    assert response.status == 200 and len(body) < 200_000  # was 10.8 MB
    names = row_names(html)
    assert len(names) == PAGE_ROWS and names[0] == "file-000000.txt"
    assert "Rows 1–1,000 of 100,000, page 1 of 100" in html
    assert 'href="?sort=name&amp;order=asc&amp;page=2" rel="next"' in html and 'rel="prev"' not in html
    assert "100000 files" in html  # the summary counts the whole folder
    last = row_names(get(huge, "/huge/?sort=name&order=asc&page=100")[1].decode())
    assert len(last) == PAGE_ROWS and last[-1] == "file-099999.txt"
    beyond = get(huge, "/huge/?page=999")[1].decode()  # past the end: the last page
    assert "page 100 of 100" in beyond
    assert row_names(get(huge, "/huge/?page=x")[1].decode())[0] == "file-000000.txt"


def test_pages_follow_the_sort_order(huge):
    by_size = row_names(get(huge, "/huge/?sort=size&order=desc")[1].decode())
    sizes = [int(name[5:11]) % 5000 for name in by_size]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == 4999
    second = row_names(get(huge, "/huge/?sort=size&order=desc&page=2")[1].decode())
    assert not set(by_size) & set(second)
    newest = row_names(get(huge, "/huge/?sort=mtime&order=desc")[1].decode())
    assert newest[0] == "file-099999.txt"


def test_json_lists_every_entry(huge):
    document = json.loads(get(huge, "/huge/?format=json")[1])
    assert len(document["entries"]) == HUGE


def test_small_folders_have_no_pager(huge):
    html = get(huge, "/small/")[1].decode()
    assert 'class="pager"' not in html


def test_every_sort_order_and_page_stays_within_the_memory_budget(huge):
    for sort in ("name", "size", "mtime"):
        for order in ("asc", "desc"):
            for page in (1, 50, 100):
                get(huge, f"/huge/?sort={sort}&order={order}&page={page}", accept_encoding="gzip")
    get(huge, "/huge/?format=json", accept_encoding="gzip")
    listings = huge.static.listings
    held = listings._scans.bytes + listings._orders.bytes + listings._rendered.bytes
    assert held <= LISTING_CACHE_BYTES, held
    # one scan and the six orders of it are kept (before: ~180 MB for six orders)
    assert len(listings._orders._items) == 6


def test_the_scans_weight_is_not_less_than_what_it_holds(tmp_path):
    """ENTRY_BYTES, the estimate the budget counts a scanned entry by, is at least what Python
    allocates for one (measured with tracemalloc on 20,000 entries)."""
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        entries = [ListingEntry(f"file-{n:06d}.txt", False, n * 1000, 1_700_000_000.5 + n)
                   for n in range(20_000)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    allocated = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    estimate = sum(listing.ENTRY_BYTES + len(e.name) for e in entries)
    assert allocated <= estimate, (allocated, estimate)

