"""A folder too big for one page (issue 18 point 7), on every front: PAGE_ROWS rows a page with
links to the others, every entry in JSON."""

from __future__ import annotations

import os
import re

import pytest

from cgibox.core.listing import PAGE_ROWS
from tests.servers import serving

COUNT = 2 * PAGE_ROWS + 100


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("big-site")
    root, cgi_dir = base / "www", base / "cgi-bin"
    (root / "big").mkdir(parents=True)
    cgi_dir.mkdir()
    for number in range(COUNT):
        os.close(os.open(root / "big" / f"f{number:05d}.txt", os.O_CREAT | os.O_WRONLY, 0o644))
    base.chmod(0o755)
    return root, cgi_dir


@pytest.fixture(scope="module")
def big_server(front, site, tmp_path_factory):
    yield from serving(front, site, tmp_path_factory.mktemp("logs"))


def names(html: str) -> list[str]:
    return re.findall(r'<a href="(f\d{5}\.txt)">', html)


def test_a_big_folder_is_listed_a_page_at_a_time(big_server):
    first = big_server.get("/big/").text
    assert len(names(first)) == PAGE_ROWS and names(first)[0] == "f00000.txt"
    assert f"of {COUNT:,}, page 1 of 3" in first
    link = re.search(r'href="([^"]*page=2)" rel="next"', first).group(1).replace("&amp;", "&")
    second = big_server.get("/big/" + link).text
    assert names(second)[0] == f"f{PAGE_ROWS:05d}.txt" and 'rel="prev"' in second
    last = big_server.get("/big/?sort=name&order=asc&page=3").text
    assert len(names(last)) == COUNT - 2 * PAGE_ROWS and 'rel="next"' not in last
    assert len(big_server.get("/big/?format=json").json()["entries"]) == COUNT
