"""The grammars of values an operator configures and the core then applies: environment names
and values for scripts, `--cgi-limits`, `--header` fields (and the hop-by-hop fields none may
name), `--write` rules. Stdlib only and importing nothing of cgibox, so that config checks a
setting at start-up by the very rule the core applies per request, without reaching into the core.
"""

from __future__ import annotations

import os
import re

# -- response fields -------------------------------------------------------------------------

# hop-by-hop fields belong to one connection, never to an application's or a script's answer
# (RFC 9110 7.6.1, PEP 3333)
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
})
# what frames or encodes the body, or what the server must decide for each response itself
FRAMING = frozenset({"content-length", "content-range", "content-encoding", "date", "status"})
_FIELD_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VISIBLE_ASCII = re.compile(r"^[\x20-\x7e]*$")


def parse_extra_header(text: str) -> tuple[str, str]:
    """--header 'Name: value' -> (name, value); ValueError (one line) for anything that cannot
    be sent as is, or that would change how a response is framed."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _FIELD_NAME.match(name):
        raise ValueError(f"expected 'NAME: VALUE', not {text!r}")
    if not _VISIBLE_ASCII.match(value):
        raise ValueError(f"{name}: the value must be visible ASCII text")
    if name.lower() in HOP_BY_HOP or name.lower() in FRAMING:
        raise ValueError(f"{name} is a hop-by-hop or framing field the server sets itself")
    return name, value


# -- a script's environment (--cgi-env, --cgi-pass-env, a mount's env, each request's) ---------

# an environment variable's name as a shell and execve take it (used with fullmatch: "$" would
# also match before a final newline)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# what no environment value may hold: NUL ends it early (execve), CR and LF split lines in
# scripts that write variables out into headers or logs
_ENV_VALUE_FORBIDDEN = re.compile(r"[\x00\r\n]")
# RFC 3875's meta-variables, and the names cgibox itself sets for every script (extensions most
# servers give, and PATH: the safe one, so that scripts never run what a setting put first)
RFC3875_NAMES = frozenset({
    "AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE", "GATEWAY_INTERFACE", "PATH_INFO",
    "PATH_TRANSLATED", "QUERY_STRING", "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_IDENT", "REMOTE_USER",
    "REQUEST_METHOD", "SCRIPT_NAME", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE",
})
SERVER_SET_NAMES = frozenset({
    "PATH", "REMOTE_PORT", "REQUEST_URI", "REQUEST_SCHEME", "SCRIPT_FILENAME", "DOCUMENT_ROOT", "HTTPS",
})
# whole families a request (HTTP_*) or a server (SERVER_*, REQUEST_*, ...) fills in
RESERVED_PREFIXES = ("HTTP_", "SERVER_", "REQUEST_", "REMOTE_", "SCRIPT_", "CONTENT_", "GATEWAY_")


def env_value_problem(value: str) -> str | None:
    """What keeps `value` from reaching a script intact ("a control character"), None if nothing.

    The one rule for every environment value: core.cgi_protocol.check_environ applies it to each
    request's, and config to the operator's (--cgi-env, --cgi-pass-env) once at start-up, so a
    configured value no script can get stops the server instead of making every request a 400.
    """
    if _ENV_VALUE_FORBIDDEN.search(value):
        return "a control character (NUL, CR or LF)"
    try:
        os.fsencode(value)
    except UnicodeEncodeError:
        return "characters with no bytes"
    return None


def check_configured_name(name: str) -> str | None:
    """Why `name` cannot be set from the configuration, or None when it can."""
    if not ENV_NAME.fullmatch(name):
        return "a variable name is letters, digits and '_', not starting with a digit"
    upper = name.upper()
    if upper in RFC3875_NAMES or upper.startswith(RESERVED_PREFIXES):
        return "a CGI meta-variable (RFC 3875) or HTTP_* name is the request's, not the configuration's"
    if upper in SERVER_SET_NAMES:
        return "the server sets this variable itself for every script"
    return None


# -- --cgi-limits ------------------------------------------------------------------------------

# the limits a script can be given (core.limits maps each to the kernel's resource)
LIMIT_NAMES = ("cpu", "memory", "processes", "file-size")
_COUNTED_LIMITS = ("cpu", "processes")
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
_AMOUNT = re.compile(r"^([0-9]+)([kmg]?)$", re.I)


def parse_limits(text: str) -> tuple[tuple[str, int], ...]:
    """'cpu=2,memory=256m' -> (('cpu', 2), ('memory', 268435456)); ValueError names the problem."""
    limits: dict[str, int] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, amount = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in LIMIT_NAMES:
            raise ValueError(f"expected NAME=NUMBER with NAME one of {', '.join(LIMIT_NAMES)}, not {item!r}")
        match = _AMOUNT.match(amount.strip())
        counted = name in _COUNTED_LIMITS
        if not match or (counted and match.group(2)):
            units = "" if counted else " (k, m, g allowed)"
            raise ValueError(f"{name} must be a whole number{units}, not {amount!r}")
        value = int(match.group(1)) * _UNITS[match.group(2).lower()]
        if value < 1:
            raise ValueError(f"{name} must be at least 1")
        limits[name] = value
    return tuple(limits.items())


# -- --write -----------------------------------------------------------------------------------

def parse_write_rule(text: str) -> tuple[str, tuple[str, ...] | None]:
    """`GLOB` or `GLOB=USER,USER` (the first `=` ends the glob) -> (glob, users or None for
    anyone). Raises ValueError."""
    glob, sep, names = text.partition("=")
    if not glob.startswith("/"):
        raise ValueError(f"a URL-path glob starts with '/', not {glob!r}")
    if not sep:
        return glob, None
    users = tuple(name.strip() for name in names.split(","))
    if not users or any(not user or ":" in user for user in users):
        raise ValueError(f"expected GLOB=USER,USER with user names (no ':'), not {text!r}")
    return glob, users
