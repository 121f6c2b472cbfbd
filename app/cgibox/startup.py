"""Start-up, owned here once for every entry (the CLI, `gunicorn cgibox.wsgi:application`,
compat): the checks made before serving (the settings that need more than a parser: the
htpasswd file, the TLS pair, prlimit), refused with a one-line error (exit 2), and the warnings
an operator should see once; the state folder, its stats file and the App; the table of fronts."""

from __future__ import annotations

import importlib
import ipaddress
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from cgibox.config import Config

if TYPE_CHECKING:
    from cgibox.core.router import App
    from cgibox.core.stats import Stats


class StartupError(ValueError):
    """A one-line reason not to start."""


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check(config: Config) -> list[str]:
    """Raises StartupError; returns the warning lines to print."""
    from cgibox.core.auth import AuthFileError, load_htpasswd
    from cgibox.core.limits import find_prlimit, process_limit_holds, refusal
    from cgibox.tls import TLSError, server_context

    warnings = []
    if config.tls_cert is not None:
        try:
            server_context(config.tls_cert, config.tls_key)  # type: ignore[arg-type]
        except TLSError as error:
            raise StartupError(str(error)) from None
    if config.auth_file is not None:
        try:
            users = load_htpasswd(str(config.auth_file))
        except AuthFileError as error:
            raise StartupError(f"--auth-file: {error}") from None
        if not users:
            warnings.append(f"cgibox: warning: --auth-file {config.auth_file} has no users: "
                            "nobody can log in")
        if config.tls_cert is None and not _loopback(config.host):
            warnings.append(f"cgibox: warning: logins without TLS on {config.host}: passwords cross "
                            "the network readable; set --tls-cert/--tls-key or put a TLS proxy in front")
    else:
        if config.public or config.private or config.auth_scope != "all":
            warnings.append("cgibox: warning: --public, --private and --auth-scope do nothing "
                            "without --auth-file")
        named = [rule for rule in config.write if "=" in rule]
        if named:
            raise StartupError(f"--write {named[0]!r} names users, which needs --auth-file")
    warnings += _open_to_the_network(config)
    if os.path.isdir(config.root) and not os.access(config.root, os.R_OK | os.X_OK):
        warnings.append(f"cgibox: warning: {config.root} is not readable by this user (uid {os.getuid()}): "
                        "every page will be 403; make it readable (chmod -R o+rX) or run as its owner")
    limits = dict(config.cgi_limits)
    prlimit = find_prlimit() if limits else None
    if limits and prlimit is None:
        raise StartupError("--cgi-limits needs util-linux's prlimit, which is not installed")
    if prlimit is not None:
        problem = refusal(prlimit, config.cgi_limits)
        if problem is not None:
            raise StartupError(f"--cgi-limits: {problem}")
    if "processes" in limits and not process_limit_holds():
        warnings.append("cgibox: warning: --cgi-limits processes= does not hold for scripts run as "
                        "root (the kernel exempts uid 0); run cgibox as another user")
    return warnings


def _open_to_the_network(config: Config) -> list[str]:
    """One line when anyone on the network can read (or, with --write, change) the folder."""
    if config.auth_file is not None or _loopback(config.host):
        return []
    if config.write:
        return [f"cgibox: WARNING: --write without --auth-file on {config.host or 'every address'}: anyone "
                "who can reach this address may upload, overwrite, move and delete files there; "
                "add --auth-file"]
    scripts = " and run its scripts" if config.run_scripts and config.cgi_dir is not None \
        and os.path.isdir(config.cgi_dir) else ""
    from cgibox.announce import in_container

    if in_container():  # it listens on every address of its own network; the publish decides
        return [f"cgibox: warning: no --auth-file: whoever can reach the port this container is "
                f"published on can read the folder{scripts} (compose publishes on 127.0.0.1 unless "
                "CGIBOX_BIND says otherwise)"]
    return [f"cgibox: warning: open to the network on {config.host or 'every address'} without "
            f"--auth-file: anyone who can reach this machine can read the folder{scripts}"]


# -- making a server: its state folder, stats file and App, and the front that serves it --------

# --front NAME -> the module and function that serve with it (imported only when picked), each
# taking the checked Config and returning the exit status
FRONTS: dict[str, tuple[str, str]] = {
    "threading": ("cgibox.fronts.httpserver", "run"),
    "forking": ("cgibox.fronts.httpserver", "run"),
    "gunicorn": ("cgibox.fronts.gunicorn_app", "run_gunicorn"),
}
# the stats file's name in a server's state folder (the files SHARED_FILES names sit beside it)
STATS_FILE = "stats"


def run_front(config: Config) -> int:
    """Serve with the front --front names, until it stops; its exit status."""
    module, function = FRONTS[config.front]
    run: Callable[[Config], int] = getattr(importlib.import_module(module), function)
    return run(config)


@contextmanager
def state_folder(prefix: str = "cgibox-") -> Iterator[Stats]:
    """One server's state: a private temporary folder with a fresh stats file, which every process
    of the server shares (and the files core.stats.SHARED_FILES names, beside it); removed with
    all of them when the server stops. Yields the Stats of that file."""
    from cgibox.core.stats import Stats

    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield Stats.create(os.path.join(folder, STATS_FILE))


def make_app(config: Config, stats: Stats | str, front: str) -> App:
    """The App of one serving process, counting in `stats` (or the stats file at that path)."""
    from cgibox.core.router import App
    from cgibox.core.stats import Stats

    return App(config, Stats(stats) if isinstance(stats, str) else stats, front)
