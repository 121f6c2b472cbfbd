"""Command line: parse flags over the environment, check them, print the start-up line, serve."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence

from cgibox import __version__
from cgibox.config import SETTINGS, Config, ConfigError, load


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"cgibox: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cgibox",
        # "--por 80" is not a flag of the contract: an unknown flag, not a guess at --port
        allow_abbrev=False,
        description="Serve a folder (listings, files) and run the scripts of a cgi-bin folder.",
        epilog="Every flag can also be set by its CGIBOX_* environment variable; a flag wins.",
    )
    parser.add_argument("--version", action="version", version=f"cgibox {__version__}")
    for setting in SETTINGS:
        default = "" if setting.default is None else f" (default: {setting.default})"
        alone = {} if setting.alone is None else {"nargs": "?", "const": setting.alone}
        parser.add_argument(setting.flag, dest=setting.name, metavar=setting.metavar or None,
                            default=None, help=f"{setting.help}{default} [env {setting.env}]", **alone)
    return parser


def parse_config(argv: Sequence[str] | None, environ: dict[str, str] | os._Environ[str]) -> Config:
    args = build_parser().parse_args(argv)
    try:
        return load(vars(args), environ)
    except ConfigError as error:
        sys.stderr.write(f"cgibox: error: {error}\n")
        raise SystemExit(2) from None


def url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def startup_line(config: Config, port: int) -> str:
    return f"cgibox {__version__} ({config.front}) serving {config.root} on {url_for(config.host, port)}"


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv, os.environ)
    if config.front == "gunicorn":
        from cgibox.fronts.gunicorn_app import run_gunicorn
        return run_gunicorn(config)
    return run_httpserver(config)


def run_httpserver(config: Config) -> int:
    from cgibox.core.router import App
    from cgibox.core.stats import Stats
    from cgibox.fronts.httpserver import make_server, serve

    with tempfile.TemporaryDirectory(prefix="cgibox-") as state_dir:
        stats = Stats.create(os.path.join(state_dir, "stats"))
        app = App(config, stats, config.front)
        try:
            server = make_server(config, app)
        except OSError as error:
            sys.stderr.write(f"cgibox: error: cannot listen on {config.host}:{config.port}: "
                             f"{error.strerror or error}\n")
            return 2
        print(startup_line(config, server.server_port), flush=True)
        try:
            return serve(server, config)
        finally:
            server.server_close()
