"""--cgi-mount and the config file's [[cgi_mount]] tables: a URL prefix that runs one program
(`/git=/usr/lib/git-core/git-http-backend`) or a folder of scripts (`/tools=/srv/tools`), with
its own environment, body limit and timeout. Parsed and checked here, run by core.cgi.

Like Apache's ScriptAlias, the operator names the program or folder: a symlink there runs (it is
followed once, here), unlike files under the served root.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cgibox.grammars import check_configured_name, env_value_problem

TABLE_KEYS = ("path", "program", "dir", "env", "max_body", "timeout")


class MountError(ValueError):
    """What is wrong with one mount; the caller names the flag or file and key."""


@dataclass(frozen=True)
class CgiMount:
    """A URL prefix (no trailing slash; "" is the whole site) and what runs there: `program` for
    every URL under it (SCRIPT_NAME = prefix, PATH_INFO = the rest), or the scripts of `dir`."""

    path: str
    program: Path | None = None
    dir: Path | None = None
    env: tuple[tuple[str, str], ...] = ()
    max_body: int | None = None  # None: --max-body
    timeout: float | None = None  # None: --cgi-timeout

    @property
    def folder(self) -> Path:
        """The folder that holds what runs: `dir`, or the program's own folder."""
        if self.dir is not None:
            return self.dir
        assert self.program is not None
        return self.program.parent


def url_prefix(text: str) -> str:
    if not text.startswith("/") or any(char in text for char in "?#\\\0") or not text.isprintable():
        raise MountError(f"a URL path starts with '/' and holds no '?', '#' or '\\', not {text!r}")
    segments = [segment for segment in text.split("/") if segment]
    if any(segment in (".", "..") for segment in segments):
        raise MountError(f"{text!r}: no '.' or '..' segments in a mount's path")
    return "".join("/" + segment for segment in segments)


def target(text: str, base: Path | None) -> tuple[Path | None, Path | None]:
    """(program, dir) for a path given by the operator: an executable regular file, or a folder
    (relative paths are taken from `base`, the config file's folder, else the working one)."""
    if not text:
        raise MountError("an empty path; name a program or a folder")
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if path.is_dir():
        return None, path.resolve()
    if not path.exists():
        raise MountError(f"{text}: no such program or folder")
    real = path.resolve()
    if not real.is_file():
        raise MountError(f"{text}: not a regular file or a folder")
    if not os.access(real, os.X_OK):
        raise MountError(f"{text}: not executable (chmod +x)")
    return path.absolute(), None


def parse_flag(text: str, base: Path | None = None) -> CgiMount:
    """`URLPATH=PROGRAM` or `URLPATH=DIR`."""
    path, sep, where = text.partition("=")
    if not sep:
        raise MountError(f"expected URLPATH=PROGRAM or URLPATH=DIR, not {text!r}")
    program, folder = target(where, base)
    return CgiMount(url_prefix(path), program, folder)


def parse_table(table: Mapping[str, Any], base: Path | None) -> CgiMount:
    """A [[cgi_mount]] table: path, program or dir, and env, max_body, timeout."""
    unknown = sorted(set(table) - set(TABLE_KEYS))
    if unknown:
        raise MountError(f"unknown key {unknown[0]!r} (a mount has {', '.join(TABLE_KEYS)})")
    if not isinstance(table.get("path"), str):
        raise MountError("needs path = \"/URL/PATH\"")
    given = [key for key in ("program", "dir") if key in table]
    if len(given) != 1 or not isinstance(table[given[0]], str):
        raise MountError("needs one of program = \"FILE\" or dir = \"FOLDER\"")
    program, folder = target(table[given[0]], base)
    if (given[0] == "program") != (program is not None):
        raise MountError(f"{given[0]} = {table[given[0]]!r} is a "
                         f"{'folder' if folder is not None else 'program'}")
    env = table.get("env", {})
    if not isinstance(env, dict):
        raise MountError("env is a table of NAME = \"VALUE\"")
    for name, value in env.items():
        if not isinstance(value, str):
            raise MountError(f"env.{name}: a value is a string")
        problem = check_configured_name(name) or env_value_problem(value)
        if problem:
            raise MountError(f"env.{name}: {problem}")
    max_body = table.get("max_body")
    if max_body is not None and (type(max_body) is not int or max_body < 1):
        raise MountError("max_body is a whole number of bytes, 1 or more")
    timeout = table.get("timeout")
    if timeout is not None and (type(timeout) not in (int, float) or not 0 < timeout < 1e6):
        raise MountError("timeout is a number of seconds, more than 0")
    return CgiMount(url_prefix(table["path"]), program, folder, tuple(env.items()),
                    max_body, None if timeout is None else float(timeout))


def merge(*layers: tuple[CgiMount, ...]) -> tuple[CgiMount, ...]:
    """Mounts by path, a later layer's mount replacing an earlier one's (flags over the file)."""
    by_path: dict[str, CgiMount] = {}
    for layer in layers:
        seen: set[str] = set()
        for mount in layer:
            if mount.path in seen:
                raise MountError(f"{mount.path or '/'} is mounted twice")
            seen.add(mount.path)
            by_path[mount.path] = mount
    return tuple(by_path.values())
