"""--config FILE: a TOML file (tomllib) holding settings by their flag names (`cgi_timeout = 60`,
`cgi-timeout` too) and [[cgi_mount]] tables. config.load puts its values under the flags and the
variables (they win) and above the defaults. Relative paths in the file are taken from the
file's folder. Every error names the file and the key.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigFileError(ValueError):
    """One line: the file, the key, what is wrong."""


@dataclass(frozen=True)
class ConfigFile:
    """The file's settings as the texts the flags would give (a list for a repeatable one),
    and its [[cgi_mount]] entries (tables or `URLPATH=TARGET` strings) as written."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    mounts: list[Any] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.path.parent


def _text(value: Any, key: str, source: Path, switch: bool) -> str:
    """A scalar as the flag's text: booleans as 1/0, numbers as written."""
    if isinstance(value, bool):
        if not switch:
            raise ConfigFileError(f"{source}: {key} = {str(value).lower()}: not a switch; give a value")
        return "1" if value else "0"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ConfigFileError(f"{source}: {key}: expected a string or a number, not a {type(value).__name__}")


def read(path: Path, settings: Mapping[str, Any], path_settings: frozenset[str]) -> ConfigFile:
    """Read `path`. `settings`: name -> Setting (its .repeat and .switch are used);
    `path_settings`: the names whose relative values are taken from the file's folder."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise ConfigFileError(f"--config {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigFileError(f"{path}: not valid TOML: {error}") from None
    result = ConfigFile(path.resolve())
    for key, value in document.items():
        name = key.replace("-", "_")
        if name == "cgi_mount":
            result.mounts.extend(value if isinstance(value, list) else [value])
            continue
        if name == "config":
            raise ConfigFileError(f"{path}: config: a config file cannot name another")
        setting = settings.get(name)
        if setting is None:
            close = difflib.get_close_matches(name, [*settings, "cgi_mount"], n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigFileError(f"{path}: unknown key {key!r}{hint}")
        if setting.repeat is not None:
            items = value if isinstance(value, list) else [value]
            texts = [_text(item, key, path, False) for item in items]
            result.values[name] = texts
        elif isinstance(value, list):
            raise ConfigFileError(f"{path}: {key}: one value, not a list")
        else:
            text = _text(value, key, path, setting.switch)
            if name in path_settings and text and text != "none":
                text = str(result.folder / Path(text).expanduser())
            result.values[name] = text
    return result
