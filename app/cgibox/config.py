"""Every setting once: its flag, environment variable, type, default and help text.

The CLI builds its parser from SETTINGS, and the WSGI front reads the same table from the
environment, so both fronts are configured identically (flag > environment > default).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message is one line meant for the user."""


def _port(text: str) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        raise ConfigError(f"port must be a number from 0 to 65535, not {text!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be a number from 0 to 65535, not {text!r}")
    return port


def _host(text: str) -> str:
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ConfigError("host must not be empty")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"host {text!r} is not a valid IPv6 address") from None
    return host


def _positive_int(name: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, not {text!r}") from None
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, not {text!r}")
        return value

    return parse


def _seconds(name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{name} must be a number of seconds, not {text!r}") from None
        if not 0 < value < 1e6:
            raise ConfigError(f"{name} must be more than 0 seconds, not {text!r}")
        return value

    return parse


def _choice(name: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {text!r}")
        return text

    return parse


def _directory(name: str) -> Callable[[str], Path]:
    def parse(text: str) -> Path:
        path = Path(text).expanduser()
        if not path.is_dir():
            raise ConfigError(f"{name} {text!r} is not a directory")
        return path.resolve()

    return parse


def _text(text: str) -> str:
    return text


def _switch(name: str) -> Callable[[str], bool]:
    """on/off for a flag that may stand alone (`--compress-files` means on)."""
    def parse(text: str) -> bool:
        value = text.strip().lower()
        if value in ("1", "on", "yes", "true"):
            return True
        if value in ("0", "off", "no", "false", ""):
            return False
        raise ConfigError(f"{name} must be on or off, not {text!r}")

    return parse


FRONTS = ("threading", "forking", "gunicorn")
WORKER_CLASSES = ("gthread", "sync")
LOG_FORMATS = ("combined", "json")


@dataclass(frozen=True)
class Setting:
    """One configuration knob: `--flag`, `CGIBOX_*` variable, parser and default."""

    name: str
    parse: Callable[[str], Any]
    default: str | None
    help: str
    metavar: str = ""
    # the value a flag given alone stands for (`--compress-files`); None: the flag needs a value
    alone: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "CGIBOX_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("host", _host, "127.0.0.1", "bind address; IPv6 literals allowed", "ADDR"),
    Setting("port", _port, "8000", "TCP port; 0 picks a free one", "PORT"),
    Setting("root", _directory("root"), "./static", "directory served at /", "DIR"),
    Setting("cgi_dir", _directory("cgi-dir"), "./cgi-bin", "scripts served at /cgi-bin/", "DIR"),
    Setting("front", _choice("front", FRONTS), "threading", "threading, forking or gunicorn", "NAME"),
    Setting("workers", _positive_int("workers"), None, "gunicorn worker processes (default: 2 x CPUs)", "N"),
    Setting("worker_class", _choice("worker-class", WORKER_CLASSES), "gthread",
            "gunicorn worker class: gthread (keep-alive) or sync", "NAME"),
    Setting("threads", _positive_int("threads"), "64",
            "handler threads per process (threading front, gunicorn gthread)", "N"),
    Setting("templates", _directory("templates"), None,
            "folder whose templates override the built-in ones by file name", "DIR"),
    Setting("cgi_timeout", _seconds("cgi-timeout"), "30",
            "seconds before a running script's process group is killed", "SECONDS"),
    Setting("cgi_max", _positive_int("cgi-max"), None, "scripts running at once (default: 4 x CPUs)", "N"),
    Setting("max_body", _positive_int("max-body"), "10485760", "largest request body in bytes", "BYTES"),
    Setting("header_timeout", _seconds("header-timeout"), "10",
            "seconds a client has to send its request head", "SECONDS"),
    Setting("graceful_timeout", _seconds("graceful-timeout"), "10",
            "seconds to finish requests in flight on SIGTERM", "SECONDS"),
    Setting("log_format", _choice("log-format", LOG_FORMATS), "combined", "combined or json", "NAME"),
    Setting("compress_files", _switch("compress-files"), "off",
            "gzip (br) text-like files up to 1 MiB for clients that accept it, cached by validator; "
            "generated pages are always compressed", "on|off", alone="on"),
)


@dataclass(frozen=True)
class Config:
    """The resolved settings one server runs with."""

    host: str = "127.0.0.1"
    port: int = 8000
    root: Path = Path("static")
    cgi_dir: Path = Path("cgi-bin")
    front: str = "threading"
    workers: int | None = None
    worker_class: str = "gthread"
    threads: int = 64
    templates: Path | None = None
    cgi_timeout: float = 30.0
    # 0 scripts at once would make every script a 503 (and no slot cells to map): use the default
    cgi_max: int = dataclasses.field(default_factory=lambda: default_cgi_max())
    max_body: int = 10485760
    header_timeout: float = 10.0
    graceful_timeout: float = 10.0
    log_format: str = "combined"
    compress_files: bool = False

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def default_cgi_max() -> int:
    return 4 * (os.cpu_count() or 1)


def load(flags: Mapping[str, str | None], environ: Mapping[str, str]) -> Config:
    """Resolve every setting: a flag given on the command line, else its variable, else the default.

    Raises ConfigError with a one-line message naming the bad value.
    """
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = flags.get(setting.name)
        if raw is None:
            raw = environ.get(setting.env) or None
        if raw is None:
            raw = setting.default
        values[setting.name] = None if raw is None else setting.parse(raw)
    if values["cgi_max"] is None:
        values["cgi_max"] = default_cgi_max()
    return Config(**values)
