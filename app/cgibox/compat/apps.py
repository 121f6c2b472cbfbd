"""One core App per compat configuration (served folder, script folders, cgibox settings),
built on first use and shared by every request and thread that has the same configuration."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cgibox.compat import urlpath
from cgibox.config import Config, default_cgi_max
from cgibox.core.router import App
from cgibox.startup import make_app, state_folder

# configurations kept at once (least recently used dropped first); a handler whose
# cgi_directories change on every request must not grow this without bound
MAX_APPS = 32
# the compat pages (http.server's listing title), between a user's templates and the built-ins
PAGES = Path(__file__).resolve().parent / "templates"
_apps: OrderedDict[Config, App] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class Site:
    """What one compat handler serves, as a core Config."""

    config: Config

    @classmethod
    def of(cls, handler: Any, scripts: tuple[str, ...], run_scripts: bool) -> Site:
        """The handler's directory and settings; `scripts` are URL paths (cgi_directories) of
        script folders under the directory: never served as files, run when `run_scripts`."""
        root = Path(os.path.realpath(handler.directory))
        mounts = []
        for url_path in scripts:
            segments = urlpath.mount_segments(url_path)
            if segments is not None:
                mounts.append(("/" + "/".join(segments), root.joinpath(*segments)))
        templates = handler.templates
        config = Config(
            root=root, cgi_dir=root / "cgi-bin",
            templates=Path(templates) if templates is not None else None,
            cgi_timeout=float(handler.cgi_timeout), cgi_max=int(handler.cgi_max or default_cgi_max()),
            max_body=int(handler.max_body), cgi_mounts=tuple(sorted(set(mounts))),
            run_scripts=run_scripts, service_routes=False, index_pages=tuple(handler.index_pages),
            content_types=tuple(sorted((str(k), str(v)) for k, v in handler.extensions_map.items())),
            extra_templates=(PAGES,), no_readme=not handler.show_readme,
        )
        return cls(config)

    def app(self) -> App:
        return app_for(self.config)


def app_for(config: Config) -> App:
    """The App for `config`, built once and kept while it is among the MAX_APPS most recently
    used: least recently used goes first, so a busy App (its counters and its --cgi-max slots)
    is never dropped and rebuilt fresh while rarely used configurations come and go."""
    with _lock:
        app = _apps.get(config)
        if app is None:
            app = _build(config)
            _apps[config] = app
            while len(_apps) > MAX_APPS:
                _apps.popitem(last=False)
        else:
            _apps.move_to_end(config)
        return app


def _build(config: Config) -> App:
    """An App whose counters and script slots live in files mapped and then unlinked: they go
    away with the process, even a forked child that ends with os._exit()."""
    with state_folder(prefix="cgibox-compat-") as stats:
        return make_app(config, stats, "compat")
