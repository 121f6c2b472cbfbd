"""Command line: parse flags over the environment, check them, print the start-up line, serve."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence

from cgibox import __version__
from cgibox.config import SETTINGS, Config, ConfigError, Setting, load


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}{self.suggestion(message)}\n")
        raise SystemExit(2)

    def suggestion(self, message: str) -> str:
        """" (did you mean --port?)" for a mistyped flag (a few letters off, swapped or `_` for
        `-`), else ""."""
        if not message.startswith("unrecognized arguments:"):
            return ""
        known = [flag for action in self._actions for flag in action.option_strings if flag.startswith("--")]
        for word in message.split(":", 1)[1].split():
            if word.startswith("-"):
                typed = "--" + word.split("=", 1)[0].lstrip("-").replace("_", "-").lower()
                distance, best = min((_edits(typed, flag), flag) for flag in known)
                if distance <= max(1, (len(typed) - 2) // 3):
                    return f" (did you mean {best}?)"
        return ""


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
    neighbouring letters each count 1 ("--prot" is one from "--port", two from "--root")."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, wrapped only at spaces: a flag named in a help text (`--auth-file`) is
    never split at its hyphen, so it reads (and can be searched for) whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cgibox",
        formatter_class=HelpFormatter,
        # "--por 80" is not a flag of the contract: an unknown flag, not a guess at --port
        allow_abbrev=False,
        usage="cgibox [DIR] [options]",
        description="Serve a folder (listings, files) and run the scripts of a cgi-bin folder.",
        epilog="Every flag can also be set by its CGIBOX_* environment variable; a flag wins.",
    )
    parser.add_argument("--version", action="version", version=f"cgibox {__version__}")
    parser.add_argument("folder", nargs="?", metavar="DIR", default=None,
                        help="folder served at / (the same as --root DIR)")
    for setting in SETTINGS:
        if setting.switch:
            parser.add_argument(setting.flag, dest=setting.name, action="store_const", const="1",
                                default=None, help=help_line(setting).replace("%", "%%"))
            continue
        parser.add_argument(setting.flag, dest=setting.name, metavar=setting.metavar or None,
                            default=None, help=help_line(setting).replace("%", "%%"),
                            action="append" if setting.repeat is not None else "store")
    return parser


def help_line(setting: Setting) -> str:
    """What --help says of a setting: its help text (the one README's table shows), default, variable."""
    shown = setting.shown_default
    default = "" if shown is None else f"default: {shown}; "
    return f"{setting.plain_help} [{default}env {setting.env}]"


def parse_config(argv: Sequence[str] | None, environ: dict[str, str] | os._Environ[str]) -> Config:
    parser = build_parser()
    args = parser.parse_args(argv)
    flags = vars(args)
    folder = flags.pop("folder")
    if folder is not None:
        if flags["root"] is not None:
            parser.error(f"the folder to serve is given twice: {folder!r} and --root {flags['root']!r}")
        flags["root"] = folder
    try:
        return load(flags, environ)
    except ConfigError as error:
        sys.stderr.write(f"cgibox: {error}\n")  # the message names the flag or variable to fix
        raise SystemExit(2) from None


def check_startup(config: Config) -> None:
    """Settings that need more than a parser (files, tools, the front's abilities): exit 2 or warn."""
    from cgibox.startup import StartupError, check

    try:
        warnings = check(config)
    except StartupError as error:
        sys.stderr.write(f"cgibox: error: {error}\n")
        raise SystemExit(2) from None
    for line in (*config.notes, *warnings):
        sys.stderr.write(line + "\n")


def url_for(host: str, port: int) -> str:
    from cgibox.announce import url_for as announced_url

    return announced_url(host, port)


def startup_line(config: Config, port: int) -> str:
    """The one start-up line (cgibox.announce says it, and what follows it)."""
    from cgibox.announce import startup_line as line

    return line(config, port)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv, os.environ)
    check_startup(config)
    raise_open_file_limit(config)
    from cgibox.startup import run_front

    return run_front(config)


# open files a process needs beside its connections: listener, logs, stats, templates, and
# the pipes and files of the requests in flight
FILES_BESIDE_CONNECTIONS = 64
FILES_PER_REQUEST = 8


def raise_open_file_limit(config: Config) -> None:
    """Raise the soft RLIMIT_NOFILE to the hard one; one line when --max-connections cannot fit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    needed = config.max_connections + FILES_BESIDE_CONNECTIONS + FILES_PER_REQUEST * config.threads
    if soft != resource.RLIM_INFINITY and soft < needed:
        sys.stderr.write(f"cgibox: --max-connections {config.max_connections} needs about {needed} "
                         f"open files, but this process may open {soft} (RLIMIT_NOFILE); "
                         "new connections wait in the backlog once that is reached\n")
