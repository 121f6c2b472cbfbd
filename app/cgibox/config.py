"""Every setting once: its flag, environment variable, type, default and help text.

The CLI builds its parser from SETTINGS, and the WSGI front reads the same table from the
environment, so both fronts are configured identically (flag > environment > default). A bad value
names the flag or variable it came from. Each help text is the one description of its setting:
--help shows it, and `make docs` (cgibox.docs) writes README's flag table from it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cgibox.grammars import (
    check_configured_name,
    env_value_problem,
    parse_extra_header,
    parse_limits,
    parse_write_rule,
)

if TYPE_CHECKING:
    from cgibox.cgi_mounts import CgiMount
    from cgibox.config_file import ConfigFile


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message is one line meant for the user."""


# A parser says what is wrong with the value alone ("not a number of seconds"); load() puts the
# flag or variable and the value in front of it.

def _port(text: str) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ConfigError("not a port number from 0 to 65535")
    return port


def _host(text: str) -> str:
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ConfigError("no address given")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError("not an IPv6 address") from None
    return host


def _positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise ConfigError("not a whole number") from None
    if value < 1:
        raise ConfigError("must be 1 or more")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError("not a number of seconds") from None
    if not 0 < value < 1e6:
        raise ConfigError("must be more than 0 and less than 1000000 seconds")
    return value


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ConfigError(f"must be {', '.join(choices[:-1])} or {choices[-1]}")
        return text

    return parse


_SIZE_SUFFIXES = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}


def _size(text: str) -> int:
    """A byte count with an optional k, m, g or t suffix (powers of 1024): "1g", "512m", "100"."""
    value = text.strip().lower().removesuffix("b")
    number, suffix = (value[:-1], value[-1]) if value[-1:] in ("k", "m", "g", "t") else (value, "")
    if not number.isascii() or not number.isdigit() or int(number) < 1:
        raise ConfigError("not a size in bytes (a whole number, with k, m or g after it)")
    return int(number) * _SIZE_SUFFIXES[suffix]


def _directory(text: str) -> Path:
    if not text.strip():
        raise ConfigError("an empty path; name a folder")
    path = Path(text).expanduser()
    try:
        path.stat()
    except PermissionError:
        raise ConfigError("cannot be reached by this user (permission denied on a folder above it)") from None
    except OSError:
        pass
    if not path.is_dir():
        raise ConfigError("not a folder" if path.exists() else "no such folder")
    return path.resolve()


NO_SCRIPTS = "none"


def _cgi_dir(text: str) -> Path | None:
    """A folder of scripts, or `none`: no scripts at all."""
    if text.strip() == NO_SCRIPTS:
        return None
    return _directory(text)


def _web_url(text: str) -> str:
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or not text.isprintable() \
            or " " in text:
        raise ConfigError("not an http:// or https:// URL")
    return text


def _text(text: str) -> str:
    return text


def _switch(text: str) -> bool:
    """An on/off setting: the bare flag turns it on; its variable takes 1/0, true/false, yes/no, on/off."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError("must be 1 or 0 (true/false, yes/no, on/off)")


def _existing_file(text: str) -> Path:
    if not text.strip():
        raise ConfigError("an empty path; name a file")
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError("no such file" if not path.exists() else "not a file")
    return path.resolve()


# -- the settings of issue 12 (logins, script environment and limits, extra headers, TLS) --------

def _globs(values: list[str]) -> tuple[str, ...]:
    for glob in values:
        if not glob.startswith("/"):
            raise ConfigError(f"a URL-path glob starts with '/', not {glob!r}")
    return tuple(values)


def _private(values: list[str]) -> tuple[str, ...]:
    """--private GLOB[?QUERYGLOB]: the path part is checked like --public's."""
    _globs([value.partition("?")[0] for value in values])
    return tuple(values)


def _writes(values: list[str]) -> tuple[str, ...]:
    """--write GLOB[=USER,USER], checked now by the grammar the rule table parses it with."""
    for value in values:
        try:
            parse_write_rule(value)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    return tuple(values)


def _cgi_mount(values: list[str]) -> tuple[CgiMount, ...]:
    """--cgi-mount URLPATH=PROGRAM|DIR (repeatable)."""
    from cgibox.cgi_mounts import MountError, parse_flag

    try:
        return tuple(parse_flag(value) for value in values)
    except MountError as error:
        raise ConfigError(str(error)) from None


def _cgi_ext(values: list[str]) -> tuple[str, ...]:
    """--cgi-ext .cgi (repeatable): a file-name ending, dot first."""
    for ext in values:
        if not ext.startswith(".") or len(ext) < 2 or "/" in ext or not ext.isprintable():
            raise ConfigError(f"an extension starts with '.', like .cgi, not {ext!r}")
    return tuple(values)


def _cgi_env(values: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"expected NAME=VALUE, not {item!r}")
        problem = check_configured_name(name) or _env_value_problem(value)
        if problem:
            raise ConfigError(f"{name!r}: {problem}")
        pairs.append((name, value))
    return tuple(pairs)


def _env_value_problem(value: str) -> str | None:
    """check_environ's rule, so that a value it would refuse on every request is refused here."""
    problem = env_value_problem(value)
    return f"the value would hold {problem}" if problem else None


def _cgi_pass_env(values: list[str]) -> tuple[str, ...]:
    for name in values:
        problem = check_configured_name(name)
        if problem:
            raise ConfigError(f"{name!r}: {problem}")
    return tuple(values)


def _cgi_limits(text: str) -> tuple[tuple[str, int], ...]:
    try:
        return parse_limits(text)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _headers(values: list[str]) -> tuple[tuple[str, str], ...]:
    try:
        return tuple(parse_extra_header(item) for item in values)
    except ValueError as error:
        raise ConfigError(str(error)) from None


FRONTS = ("threading", "forking", "gunicorn")
WORKER_CLASSES = ("gthread", "sync")
LOG_FORMATS = ("combined", "json")
AUTH_SCOPES = ("all", "scripts", "writes", "none")


@dataclass(frozen=True)
class Setting:
    """One configuration knob: `--flag`, `CGIBOX_*` variable, parser and default."""

    name: str
    parse: Callable[[Any], Any]  # text, or a repeatable flag's list of texts
    default: str | None
    help: str  # the one description, shown by --help and in README's table (`code` in backticks)
    metavar: str = ""
    default_text: str = ""  # what a default of None means, for people ("2 per CPU", "built-in")
    switch: bool = False  # a flag without a value (`--no-readme`); its variable takes 1 or 0
    # a repeatable flag: its parser takes the list of values; the variable holds them joined by this
    repeat: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "CGIBOX_" + self.name.upper()

    @property
    def shown_default(self) -> str | None:
        """The default as --help and README's table say it (one rule for both): the words of
        `default_text` when given ("off", "2 per CPU"), else the literal default, else None."""
        return self.default_text or self.default

    @property
    def plain_help(self) -> str:
        """The help text for a terminal: the same words without Markdown's backticks."""
        return self.help.replace("`", "")


SETTINGS: tuple[Setting, ...] = (
    Setting("host", _host, "127.0.0.1", "bind address; IPv6 literals allowed (`--host ::` for every address)",
            "ADDR"),
    Setting("port", _port, "8000", "TCP port; `0` picks a free one, shown in the start-up line", "PORT"),
    Setting("root", _directory, None,
            "folder served at `/` (or the first argument: `cgibox DIR`)", "DIR",
            default_text="./static if it exists, else the current folder"),
    Setting("cgi_dir", _cgi_dir, None,
            "folder of the scripts run at `/cgi-bin/NAME`; `none` serves files only", "DIR",
            default_text="./cgi-bin if it exists, else none"),
    Setting("cgi_mount", _cgi_mount, None,
            "`URLPATH=PROGRAM` runs one program for every URL under URLPATH (`SCRIPT_NAME` is "
            "URLPATH, the rest `PATH_INFO`); `URLPATH=DIR` runs DIR's scripts as `/cgi-bin/` does "
            "(repeatable; the variable: one per line)", "URLPATH=TARGET", repeat="\n"),
    Setting("cgi_ext", _cgi_ext, None,
            "files with this extension (e.g. `.cgi`) under the root run as scripts in place when "
            "executable (repeatable; the variable: comma-separated)", "EXT", repeat=","),
    Setting("config", _existing_file, None,
            "a TOML file: every setting by its flag name (`cgi_timeout = 60`) and `[[cgi_mount]]` "
            "tables (`path`, `program` or `dir`, `env`, `max_body`, `timeout`); a flag or variable "
            "wins over the file", "FILE"),
    Setting("front", _choice(FRONTS), "threading", "`threading`, `forking` or `gunicorn`", "NAME"),
    Setting("workers", _positive_int, None, "gunicorn worker processes", "N",
            default_text="2 per CPU"),
    Setting("worker_class", _choice(WORKER_CLASSES), "gthread",
            "gunicorn worker class: `gthread` (keep-alive) or `sync`", "NAME"),
    Setting("threads", _positive_int, "64",
            "requests handled at once per process (handler threads, forked children, gthread threads); "
            "waiting connections take none", "N"),
    Setting("templates", _directory, None,
            "folder whose `listing.html`, `404.html`, `error.html`, `stats.html` replace the built-in ones",
            "DIR", default_text="built-in"),
    Setting("cgi_timeout", _seconds, "30",
            "seconds a running script may stay silent (no output) before its process group is killed",
            "SECONDS"),
    Setting("cgi_max_time", _seconds, None,
            "seconds a script may run in all, however much it writes", "SECONDS"),
    Setting("cgi_max", _positive_int, None,
            "scripts running at once; more get `503` with `Retry-After`", "N", default_text="4 per CPU"),
    Setting("max_body", _positive_int, "10485760", "largest request body in bytes (`413` above)",
            "BYTES"),
    Setting("max_upload", _size, "1g",
            "largest uploaded file (`PUT`, each file of a form upload; `k`, `m`, `g` suffixes): `413` "
            "above, and nothing is left behind", "SIZE"),
    Setting("header_timeout", _seconds, "10",
            "seconds a client has to send its request head (`408`)", "SECONDS"),
    Setting("body_timeout", _seconds, "30",
            "seconds a client may stay silent while sending a request body; then `408` and the "
            "connection is closed", "SECONDS"),
    Setting("graceful_timeout", _seconds, "10",
            "seconds to finish requests in flight on `SIGTERM`", "SECONDS"),
    Setting("log_format", _choice(LOG_FORMATS), "combined",
            "access-log lines: `combined` (Combined Log Format) or `json`", "NAME"),
    Setting("compress_files", _switch, "0",
            "gzip (br) text-like files up to 1 MiB for clients that accept it, cached by validator; "
            "generated pages are always compressed", switch=True, default_text="off"),
    Setting("no_readme", _switch, "0", "do not show a folder's README under its listing",
            switch=True, default_text="off"),
    Setting("qr", _switch, "0",
            "print a QR code of the first URL in the terminal at start-up (for a phone on the same network)",
            switch=True, default_text="off"),
    Setting("log_probes", _switch, "0",
            "log and count health-check probes (`/healthz` asked by the image's HEALTHCHECK or a "
            "Kubernetes probe), which are otherwise kept out of the access log and `/stats`",
            switch=True, default_text="off"),
    Setting("keepalive_timeout", _seconds, None,
            "seconds an idle keep-alive connection is kept between requests", "SECONDS",
            default_text="15 (gunicorn: its own, 2)"),
    Setting("max_connections", _positive_int, "10000",
            "open connections per process; past it the server stops accepting until one closes", "N"),
    # a child's leak or fragmentation cannot grow past this many requests, and a fresh child
    # forked ahead from the small template process costs ~2 ms per thousand requests
    Setting("max_requests", _positive_int, "1000",
            "requests a forking-front child answers before it exits and a fresh one, forked ahead, "
            "takes its place", "N"),
    Setting("processes", _positive_int, None,
            "serving processes of the threading front, sharing one listening socket", "N",
            default_text="1 per CPU"),
    Setting("fleet_url", _web_url, None,
            "where `/stats` links for the whole fleet's view (e.g. a Prometheus or Grafana page)", "URL"),
    Setting("auth_file", _existing_file, None,
            "htpasswd file of bcrypt entries (`htpasswd -B`): every path needs a login but `/healthz` "
            "and `--public` ones", "FILE"),
    Setting("public", _globs, None,
            "URL-path glob served without a login, e.g. `/pub/*` (repeatable; the variable: comma-separated)",
            "GLOB", repeat=","),
    Setting("private", _private, None,
            "URL-path glob that needs a login whatever `--auth-scope` says; `GLOB?QUERYGLOB` also "
            "matches the query, e.g. `/git/*/info/refs?service=git-receive-pack` (repeatable; the "
            "variable: comma-separated)", "GLOB[?QUERY]", repeat=","),
    Setting("auth_scope", _choice(AUTH_SCOPES), "all",
            "what needs a login beyond `--private`: `all` (but `--public` paths), `scripts` (script "
            "URLs), `writes` (every write) or `none`", "SCOPE"),
    Setting("write", _writes, None,
            "`GLOB` or `GLOB=USER,USER`: where uploads, new folders, moves and deletes are allowed, "
            "and for whom (repeatable; the variable: one per line); with `--auth-file` only "
            "logged-in users, without it anyone; never in a script folder", "GLOB[=USERS]",
            repeat="\n"),
    Setting("cgi_env", _cgi_env, None,
            "`NAME=VALUE` added to every script's environment (repeatable; the variable: one per line)",
            "NAME=VALUE", repeat="\n"),
    Setting("cgi_pass_env", _cgi_pass_env, None,
            "a variable of the server's environment passed to scripts (repeatable; the variable: "
            "comma-separated)", "NAME", repeat=","),
    Setting("cgi_limits", _cgi_limits, None,
            "`cpu=SECONDS,memory=BYTES,processes=N,file-size=BYTES`, resource limits of every script "
            "(each optional; `k`, `m`, `g` for bytes)", "LIMITS"),
    Setting("header", _headers, None,
            "`NAME: VALUE` added to every response (repeatable; the variable: one per line)",
            "'NAME: VALUE'", repeat="\n"),
    Setting("webdav", _switch, "0",
            "WebDAV (RFC 4918 class 1 and 2) on the served tree, under the same read and `--write` rules",
            switch=True, default_text="off"),
    Setting("tls_cert", _existing_file, None,
            "PEM certificate (chain): HTTPS on the same port", "FILE"),
    Setting("tls_key", _existing_file, None, "PEM private key of `--tls-cert`", "FILE"),
)

SETTINGS_BY_NAME = {setting.name: setting for setting in SETTINGS}


DEFAULT_ROOT = "static"
DEFAULT_CGI_DIR = "cgi-bin"
# settings without a default whose unset value is none of them, not None
_EMPTY_WHEN_UNSET = frozenset({"cgi_limits"})


def default(name: str) -> Any:
    """A setting's default value, as load() resolves it when nothing sets it: the one place a
    default is written is its Setting (Config's fields and compat's handlers take it from here).
    The "per CPU" defaults (cgi_max) and the folders (root, cgi_dir) are resolved by load()."""
    setting = SETTINGS_BY_NAME[name]
    if setting.default is not None:
        return setting.parse(setting.default)
    return () if setting.repeat is not None or name in _EMPTY_WHEN_UNSET else None


@dataclass(frozen=True)
class Config:
    """The resolved settings one server runs with."""

    host: str = default("host")
    port: int = default("port")
    # load() makes these ./static (else the current folder) and ./cgi-bin when there (else None)
    root: Path = Path(DEFAULT_ROOT)
    cgi_dir: Path | None = Path(DEFAULT_CGI_DIR)  # None: no scripts at /cgi-bin
    cgi_mount: tuple[CgiMount, ...] = default("cgi_mount")  # --cgi-mount and the file's [[cgi_mount]]
    # --cgi-ext: executable files with these endings run in place
    cgi_ext: tuple[str, ...] = default("cgi_ext")
    config: Path | None = default("config")  # the --config file the settings were read from
    front: str = default("front")
    workers: int | None = default("workers")
    worker_class: str = default("worker_class")
    threads: int = default("threads")
    templates: Path | None = default("templates")
    cgi_timeout: float = default("cgi_timeout")
    cgi_max_time: float | None = default("cgi_max_time")  # None: no cap on a script's whole run
    # 0 scripts at once would make every script a 503 (and no slot cells to map): use the default
    cgi_max: int = dataclasses.field(default_factory=lambda: default_cgi_max())
    max_body: int = default("max_body")
    max_upload: int = default("max_upload")
    header_timeout: float = default("header_timeout")
    body_timeout: float = default("body_timeout")
    graceful_timeout: float = default("graceful_timeout")
    log_format: str = default("log_format")
    # Not command-line settings: cgibox.compat sets these to serve http.server's URL space.
    # cgi_mounts: URL prefixes ("/cgi-bin", "/sub/dir/cgi-bin") and the folders whose scripts
    # they run; None is the one cgi_dir at /cgi-bin. run_scripts=False serves no script (paths
    # under a mount are 404). service_routes=False leaves /healthz, /stats, /metrics to files.
    cgi_mounts: tuple[tuple[str, Path], ...] | None = None
    run_scripts: bool = True
    service_routes: bool = True
    # /favicon.ico: the root's own, else the built-in icon (the pages link it); a switch apart
    # from service_routes, since compat serves the icon but leaves /stats and the rest to files
    builtin_favicon: bool = True
    index_pages: tuple[str, ...] = ("index.html",)
    # file extension -> Content-Type, consulted before the mimetypes table (".gz": "application/gzip")
    content_types: tuple[tuple[str, str], ...] = ()
    # template folders searched after --templates and before the built-in pages, which an
    # override can extend as "builtin/NAME"
    extra_templates: tuple[Path, ...] = ()
    no_readme: bool = default("no_readme")
    fleet_url: str | None = default("fleet_url")
    auth_file: Path | None = default("auth_file")
    public: tuple[str, ...] = default("public")
    private: tuple[str, ...] = default("private")  # GLOB or GLOB?QUERYGLOB (core.access.PrivateRule)
    auth_scope: str = default("auth_scope")
    write: tuple[str, ...] = default("write")  # GLOB or GLOB=USER,USER (core.access.WriteRule)
    cgi_env: tuple[tuple[str, str], ...] = default("cgi_env")
    # (name, value) copied from the server's environment when the settings were loaded
    cgi_pass_env: tuple[tuple[str, str], ...] = ()
    cgi_limits: tuple[tuple[str, int], ...] = default("cgi_limits")
    header: tuple[tuple[str, str], ...] = default("header")
    tls_cert: Path | None = default("tls_cert")
    tls_key: Path | None = default("tls_key")
    # None: the front's own (15 s; gunicorn's 2 s)
    keepalive_timeout: float | None = default("keepalive_timeout")
    max_connections: int = default("max_connections")
    max_requests: int = default("max_requests")
    processes: int | None = default("processes")  # None: one per CPU (threading front)
    compress_files: bool = default("compress_files")
    webdav: bool = default("webdav")
    qr: bool = default("qr")
    log_probes: bool = default("log_probes")
    # what the loader found worth one line at start-up ("no ./cgi-bin here: ..."), not a setting
    notes: tuple[str, ...] = ()

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


# cgroup v2's CPU bandwidth limit of this process's cgroup as a container sees it: "max 100000"
# (none), or "150000 100000" (1.5 CPUs: a quota of microseconds per period)
CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"


def usable_cpus(cpu_max: str = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may use, for every "per CPU" default (--cgi-max, --processes,
    --workers): those its affinity allows, at most its cgroup's CPU quota rounded up. A pod
    limited to 1 CPU on a 64-CPU node gets 1, where os.cpu_count() says 64."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        count = os.cpu_count() or 1
    try:
        with open(cpu_max, encoding="ascii") as file:
            quota, period = file.read().split()[:2]
        if quota != "max":
            count = min(count, -(-int(quota) // int(period)))
    except (OSError, ValueError, ZeroDivisionError):  # no cgroup v2 file, or not "QUOTA PERIOD"
        pass
    return max(1, count)


def default_cgi_max() -> int:
    return 4 * usable_cpus()


def load(flags: Mapping[str, Any], environ: Mapping[str, str]) -> Config:
    """Resolve every setting: a flag given on the command line, else its variable, else the
    --config file's value, else the default.

    Raises ConfigError with a one-line message that names the flag, variable or file and key.
    """
    file = _config_file(flags, environ)
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.repeat is not None:
            values[setting.name] = _load_repeated(setting, flags, environ, file)
            continue
        raw, origin = _raw_value(setting, flags, environ, file)
        try:
            values[setting.name] = None if raw is None else setting.parse(raw)
        except ConfigError as problem:
            raise ConfigError(_blame(setting, raw, origin, problem, file)) from None
    values["cgi_mount"] = _mounts(values["cgi_mount"], file)
    notes = _default_folders(values, flags, environ, file)
    if values["cgi_max"] is None:
        values["cgi_max"] = default_cgi_max()
    for name in ("cgi_limits", "header"):
        if values[name] is None:
            values[name] = ()
    pass_env = SETTINGS_BY_NAME["cgi_pass_env"]
    pass_env_source = _origin_name(pass_env, _repeated_origin(pass_env, flags, environ, file), file)
    values["cgi_pass_env"] = _passed_values(values["cgi_pass_env"], environ, pass_env_source)
    _check_tls_pair(values)
    return Config(**values, notes=notes)


# settings whose relative paths a config file gives from its own folder
PATH_SETTINGS = frozenset({"root", "cgi_dir", "templates", "auth_file", "tls_cert", "tls_key"})


def _config_file(flags: Mapping[str, Any], environ: Mapping[str, str]) -> ConfigFile | None:
    """The --config file (CGIBOX_CONFIG), read; None without one."""
    setting = SETTINGS_BY_NAME["config"]
    raw, origin = _raw_value(setting, flags, environ, None)
    if raw is None:
        return None
    try:
        path = setting.parse(raw)
    except ConfigError as problem:
        raise ConfigError(_blame(setting, raw, origin, problem, None)) from None
    from cgibox.config_file import ConfigFileError, read

    try:
        return read(path, SETTINGS_BY_NAME, PATH_SETTINGS)
    except ConfigFileError as error:
        raise ConfigError(str(error)) from None


def _mounts(given: tuple[CgiMount, ...], file: ConfigFile | None) -> tuple[CgiMount, ...]:
    """The file's [[cgi_mount]] entries, then the flag's or variable's: by path, those win."""
    from cgibox.cgi_mounts import MountError, merge, parse_flag, parse_table

    from_file = []
    for index, entry in enumerate(file.mounts if file is not None else []):
        where = f"{file.path}: cgi_mount[{index + 1}]" if file is not None else ""
        try:
            if isinstance(entry, str):
                from_file.append(parse_flag(entry, file.folder if file is not None else None))
            elif isinstance(entry, dict):
                from_file.append(parse_table(entry, file.folder if file is not None else None))
            else:
                raise MountError("expected a [[cgi_mount]] table or \"URLPATH=TARGET\"")
        except MountError as error:
            raise ConfigError(f"{where}: {error}") from None
    try:
        return merge(tuple(from_file), given)
    except MountError as error:
        raise ConfigError(f"--cgi-mount: {error}") from None


def _default_folders(values: dict[str, Any], flags: Mapping[str, Any], environ: Mapping[str, str],
                     file: ConfigFile | None) -> tuple[str, ...]:
    """The folders nobody named: ./static if it is there, else the current folder; ./cgi-bin if
    it is there, else no scripts (said in one start-up line). Returns the notes to print."""
    if values["root"] is None:
        values["root"] = Path(DEFAULT_ROOT if os.path.isdir(DEFAULT_ROOT) else ".").resolve()
    setting = SETTINGS_BY_NAME["cgi_dir"]
    if values["cgi_dir"] is None and _raw_value(setting, flags, environ, file)[1] == "default":
        if os.path.isdir(DEFAULT_CGI_DIR):
            values["cgi_dir"] = Path(DEFAULT_CGI_DIR).resolve()
        elif not values["cgi_mount"] and not values["cgi_ext"]:
            return (f"cgibox: no ./{DEFAULT_CGI_DIR} here: no scripts; --cgi-dir DIR runs some",)
    return ()


def _raw_value(setting: Setting, flags: Mapping[str, Any], environ: Mapping[str, str],
               file: ConfigFile | None) -> tuple[str | None, str]:
    """The text a setting gets and where it came from: "flag", "env", "file" or "default"."""
    if flags.get(setting.name) is not None:
        return flags[setting.name], "flag"
    if environ.get(setting.env):  # an empty variable counts as unset
        return environ[setting.env], "env"
    if file is not None and setting.name in file.values:
        return file.values[setting.name], "file"
    return setting.default, "default"


def _blame(setting: Setting, raw: Any, origin: str, problem: ConfigError,
           file: ConfigFile | None) -> str:
    """`--port 'x': ...`, `CGIBOX_PORT='x': ...` or `FILE: port = 'x': ...`, so the user knows
    which one to fix."""
    if origin == "flag":
        return f"{setting.flag} {raw!r}: {problem}"
    if origin == "env":
        return f"{setting.env}={raw!r}: {problem}"
    if origin == "file" and file is not None:
        return f"{file.path}: {setting.name} = {raw!r}: {problem}"
    return f"{setting.flag} (default {raw!r}): {problem}"


def _repeated_origin(setting: Setting, flags: Mapping[str, Any], environ: Mapping[str, str],
                     file: ConfigFile | None) -> str:
    if flags.get(setting.name):
        return "flag"
    if environ.get(setting.env, "").strip():
        return "env"
    if file is not None and setting.name in file.values:
        return "file"
    return "default"


def _origin_name(setting: Setting, origin: str, file: ConfigFile | None) -> str:
    if origin == "file" and file is not None:
        return f"{file.path}: {setting.name}"
    return setting.env if origin == "env" else setting.flag


def _load_repeated(setting: Setting, flags: Mapping[str, Any], environ: Mapping[str, str],
                   file: ConfigFile | None) -> tuple[Any, ...]:
    """A repeatable flag's values (a list from argparse, or one string), else its variable's,
    else the file's."""
    origin = _repeated_origin(setting, flags, environ, file)
    given: Any = flags.get(setting.name)
    if origin == "flag":
        given = [given] if isinstance(given, str) else given
    elif origin == "env":
        given = [item.strip() for item in environ[setting.env].split(setting.repeat)]
    elif origin == "file" and file is not None:
        given = file.values[setting.name]
    else:
        given = []
    try:
        values: tuple[Any, ...] = setting.parse([item for item in given if item])
    except ConfigError as problem:
        raise ConfigError(f"{_origin_name(setting, origin, file)}: {problem}") from None
    return values


def _passed_values(names: tuple[str, ...], environ: Mapping[str, str],
                   source: str) -> tuple[tuple[str, str], ...]:
    """The passed variables' values now; `source` is the flag or variable that named them."""
    for name in names:
        if name not in environ:
            raise ConfigError(f"{source} {name}: the server's environment has no such variable")
        problem = _env_value_problem(environ[name])
        if problem:
            raise ConfigError(f"{source}: {name!r}: {problem}")
    return tuple((name, environ[name]) for name in names)


def _check_tls_pair(values: dict[str, Any]) -> None:
    if (values["tls_cert"] is None) != (values["tls_key"] is None):
        raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
