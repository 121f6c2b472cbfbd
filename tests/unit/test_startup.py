"""cgibox.startup, the one owner of start-up: the table of fronts, the state folder, the App, and
the paths of the files a server's processes share (core.stats names them)."""

from __future__ import annotations

import importlib
import os

from cgibox import config, startup
from cgibox.config import Config
from cgibox.core.stats import SHARED_FILES, Stats, shared_path


def test_every_front_is_in_the_table_and_importable():
    assert set(startup.FRONTS) == set(config.FRONTS)
    for module, function in startup.FRONTS.values():
        assert callable(getattr(importlib.import_module(module), function))


def test_http_server_classes_cover_their_fronts():
    from cgibox.fronts.httpserver import SERVERS

    assert {name for name, (module, _) in startup.FRONTS.items()
            if module == "cgibox.fronts.httpserver"} == set(SERVERS)


def test_state_folder_holds_the_stats_file_and_goes_away(tmp_path):
    with startup.state_folder() as stats:
        folder = os.path.dirname(stats.path)
        assert os.path.basename(stats.path) == startup.STATS_FILE
        assert os.path.isfile(stats.path)
        assert shared_path(stats, "slots") == stats.path + SHARED_FILES["slots"]
        app = startup.make_app(Config(root=tmp_path, cgi_dir=None), stats.path, "threading")
        assert app.stats.path == stats.path
    assert not os.path.exists(folder)


def test_shared_paths_without_a_stats_file_are_per_process():
    paths = {name: shared_path(object(), name) for name in SHARED_FILES}
    assert len(set(paths.values())) == len(SHARED_FILES)
    assert all(f"-{os.getpid()}" in path for path in paths.values())


def test_stats_path_is_the_file_it_maps(tmp_path):
    stats = Stats.create(str(tmp_path / "stats"))
    assert stats.path == str(tmp_path / "stats")
