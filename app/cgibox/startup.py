"""Checks every front makes before it serves: the settings of issue 12 that need more than a
parser (the htpasswd file, the TLS pair, prlimit, what this front can do), refused with a
one-line error (exit 2), and the warnings an operator should see once."""

from __future__ import annotations

import ipaddress

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
        if config.write and not _loopback(config.host):
            warnings.append(f"cgibox: warning: --write without --auth-file on {config.host}: anyone "
                            "who can reach this address may upload, move and delete files there")
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
