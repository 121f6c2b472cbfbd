"""Checks every front makes before it serves: the settings of issue 12 that need more than a
parser (the htpasswd file, the TLS pair, prlimit, what this front can do), refused with a
one-line error (exit 2), and the warnings an operator should see once."""

from __future__ import annotations

import ipaddress
import os

from cgibox.config import Config


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
