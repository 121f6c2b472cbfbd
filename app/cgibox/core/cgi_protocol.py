"""RFC 3875 without I/O: a script's environment and arguments built from a Request, and the head
a script writes (CGI header fields, or an nph- script's own status line) parsed into a status and
headers. core/cgi.py does the processes and the streaming around these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from cgibox.core.conditional import is_digits
from cgibox.core.errors import HTTPError
from cgibox.core.request import Request
from cgibox.core.wire import has_no_body, parse_header_line

# the environment grammar, which config checks the operator's variables by too
from cgibox.grammars import ENV_NAME, HOP_BY_HOP, env_value_problem

# the only variable a script inherits from no request: never the server's own environment
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
BASE_ENVIRON = {"PATH": SAFE_PATH}

# request headers that never become HTTP_* variables: credentials (RFC 3875 4.1.18), `Proxy`
# (httpoxy: HTTP_PROXY would pass for the proxy setting), the two the body has its own variables
# for, and the transfer framing the server has already removed
HIDDEN_HEADERS = frozenset({
    "authorization", "proxy-authorization", "proxy", "content-length", "content-type",
    "transfer-encoding",
})
# letters, digits and "-" only: a name with "_" (or any other token character) could pose as
# another header once "-" becomes "_" (X-Forwarded-For vs X_Forwarded_For)
# (every pattern here is used with fullmatch: "$" would also match before a final newline)
_HEADER_NAME_FOR_ENV = re.compile(r"[A-Za-z0-9-]+")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?")

# the head a script writes: at most this many bytes before its blank line
MAX_HEAD = 64 * 1024
_STATUS = re.compile(r"([1-5][0-9][0-9])(?:[ \t]+(.*))?")
_NPH_STATUS_LINE = re.compile(rb"HTTP/[0-9]\.[0-9] ([1-5][0-9][0-9])(?: .*)?")
_LOCAL_LOCATION = re.compile(r"/(?!/)[\x21-\x7e]*")
# a script's own reason phrase goes out only as plain visible ASCII of reasonable length
_REASON = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,62}[\x21-\x7e])?")


# -- the environment ---------------------------------------------------------------------------

def wire_text(value: str) -> str:
    """A header value as received (latin-1 text) re-spelled so that the OS gets the client's bytes.

    Environment strings are encoded with the filesystem encoding (UTF-8, surrogateescape) when
    the script starts, so the bytes are decoded that way here: the script sees exactly what came.
    """
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return value
    return raw.decode("utf-8", "surrogateescape")


def server_name(request: Request) -> str:
    """SERVER_NAME (RFC 3875 4.1.14): the host the client addressed (Host), else the bound address."""
    host = (request.headers.get("host") or "").strip()
    match = _HOST.fullmatch(host)
    if match:
        return match.group(1)
    name = request.server_name
    if ":" in name and not name.startswith("["):
        return f"[{name}]"
    return name


def build_environ(request: Request, *, script_name: str, path_info: str, script_filename: str,
                  document_root: str, path_translated: str | None, content_length: int | None,
                  server_software: str) -> dict[str, str]:
    """The script's whole environment: RFC 3875 meta-variables, HTTP_* and a safe PATH, nothing else.

    `content_length` is the body's length after de-chunking, None when the request has no body.
    """
    env = dict(BASE_ENVIRON)
    env.update({
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": server_software,
        "SERVER_NAME": server_name(request),
        "SERVER_PORT": str(request.server_port),
        "SERVER_PROTOCOL": request.protocol,
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.query,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "REMOTE_ADDR": request.remote_addr,
        # no reverse DNS lookups: RFC 3875 4.1.9 says to give the address instead
        "REMOTE_HOST": request.remote_addr,
        # widely used extensions (Apache, nginx)
        "REMOTE_PORT": str(request.remote_port),
        "REQUEST_URI": request.target,
        "REQUEST_SCHEME": request.scheme,
        "SCRIPT_FILENAME": script_filename,
        "DOCUMENT_ROOT": document_root,
    })
    if path_translated is not None:
        env["PATH_TRANSLATED"] = path_translated
    if request.scheme == "https":
        env["HTTPS"] = "on"
    if content_length is not None:
        env["CONTENT_LENGTH"] = str(content_length)
    content_type = request.headers.get("content-type")
    if content_type is not None:
        env["CONTENT_TYPE"] = wire_text(content_type)
    for name in request.headers.names():
        if name in HIDDEN_HEADERS or not _HEADER_NAME_FOR_ENV.fullmatch(name):
            continue
        values = request.headers.get_all(name)
        # repeated fields are joined with ", " (RFC 3875 4.1.18), cookies with "; " (RFC 6265 5.4)
        joined = ("; " if name == "cookie" else ", ").join(values)
        env["HTTP_" + name.upper().replace("-", "_")] = wire_text(joined)
    return env


def check_environ(env: dict[str, str]) -> dict[str, str]:
    """`env` when every name is a plain variable name and every value can reach a script intact;
    else HTTPError 400 (the request asks for what a script cannot be given, e.g. a PATH_INFO
    with an encoded CR, LF or NUL), before a process or a --cgi-max slot is taken.

    The last word on every script environment, whatever built it: values must hold no NUL, CR
    or LF and be encodable as the OS encodes environment strings (a lone surrogate is not).
    """
    names, values = _PASSED_NAMES, _PASSED_VALUES
    if len(values) > _PASSED_MAX or len(names) > _PASSED_MAX:
        names.clear()
        values.clear()
    for name, value in env.items():
        if name in names and value in values:
            continue  # both seen to pass before: most of a run's variables are the last run's
        if not ENV_NAME.fullmatch(name):
            raise HTTPError(400, "a request field cannot be passed to a script")
        problem = env_value_problem(value)
        if problem:
            raise HTTPError(400, f"{name} would hold {problem}")
        names.add(name)
        if len(value) <= _PASSED_VALUE_LENGTH:
            values.add(value)
    return env


# names and values check_environ has let pass (each check is of the string alone), bounded in
# count and, for values (a request's fields may be kilobytes each), in length: at most ~1 MiB
_PASSED_NAMES: set[str] = set()
_PASSED_VALUES: set[str] = set()
_PASSED_MAX = 4096
_PASSED_VALUE_LENGTH = 256


def query_argv(query: str) -> list[str]:
    """The script's arguments (RFC 3875 4.4): a query without an unencoded "=" is a search string,
    "+"-separated and percent-decoded; anything else, or any word that cannot be an argument,
    gives no arguments at all."""
    if not query or "=" in query:
        return []
    args = []
    for word in query.split("+"):
        if not word:
            return []
        arg = unquote_to_bytes(word).decode("utf-8", "surrogateescape")
        if "\x00" in arg:
            return []
        args.append(arg)
    return args


# -- the script's head ---------------------------------------------------------------------------

class MalformedHead(ValueError):
    """The script's output does not start with a valid CGI head (answered with 502)."""


def head_end(buffer: bytes) -> int | None:
    """The index just past the blank line that ends the head in `buffer`, None if not there yet.

    Lines may end with LF or CRLF (RFC 3875 6.3); a buffer starting with a blank line has an empty head.
    """
    if buffer.startswith(b"\n"):
        return 1
    if buffer.startswith(b"\r\n"):
        return 2
    ends = [index + len(mark) for mark in (b"\n\n", b"\n\r\n") if (index := buffer.find(mark)) >= 0]
    return min(ends) if ends else None


def _header_lines(head: bytes) -> list[bytes]:
    lines = head.split(b"\n")
    while lines and lines[-1].rstrip(b"\r") == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _field(line: bytes) -> tuple[str, str]:
    """One header line of the script's head, by the same rules as a request's header lines."""
    try:
        return parse_header_line(line)
    except HTTPError as error:
        raise MalformedHead(f"{error.detail}: {line[:80]!r}") from None


@dataclass(slots=True)
class ScriptHead:
    """What a script's head asks for: status, headers to send, and where it redirects."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    location: str | None = None
    status_given: bool = False
    content_length: int | None = None
    reason: str | None = None

    @property
    def local_redirect(self) -> bool:
        """`Location: /path` without a Status: served by the server itself as a GET (RFC 3875 6.2.2)."""
        return self.location is not None and not self.status_given and \
            bool(_LOCAL_LOCATION.fullmatch(self.location))


def parse_head(head: bytes) -> ScriptHead:
    """Parse a CGI head (the bytes before and including its blank line); raises MalformedHead.

    `Status: NNN reason` sets the status; `Location` without Status is 302 (RFC 3875 6.2.3);
    at least one of Content-Type, Location and Status must be present (6.3); hop-by-hop fields
    are dropped; Content-Length must be a number.
    """
    result = ScriptHead(200)
    seen_cgi_field = False
    for line in _header_lines(head):
        name, value = _field(line)
        lname = name.lower()
        if lname == "status":
            match = _STATUS.fullmatch(value)
            if result.status_given or not match or int(match.group(1)) < 200:
                raise MalformedHead(f"bad Status field: {value[:80]!r}")
            result.status = int(match.group(1))
            result.status_given = True
            result.reason = script_reason(match.group(2))
            seen_cgi_field = True
            continue
        if lname in HOP_BY_HOP:  # the server's business, not the script's (RFC 3875 6.3.4)
            continue
        if lname == "location":
            if result.location is not None or not value:
                raise MalformedHead("bad or repeated Location field")
            result.location = value
            seen_cgi_field = True
        elif lname == "content-type":
            seen_cgi_field = True
        elif lname == "content-length":
            if not is_digits(value) or (result.content_length is not None
                                       and result.content_length != int(value)):
                raise MalformedHead(f"bad Content-Length field: {value[:80]!r}")
            if result.content_length is not None:
                continue
            result.content_length = int(value)
        result.headers.append((name, value))
    if not seen_cgi_field:
        raise MalformedHead("no Content-Type, Location or Status field")
    if result.location is not None and not result.status_given:
        result.status = 302
    if has_no_body(result.status):
        result.content_length = None
        result.headers = [(k, v) for k, v in result.headers if k.lower() != "content-length"]
    return result


def script_reason(text: str | None) -> str | None:
    """The reason phrase as the script wrote it, or None (the standard one) when it is not plain
    visible ASCII of at most 64 characters."""
    if text is None:
        return None
    text = text.strip()
    return text if _REASON.fullmatch(text) else None


def parse_nph_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    """An nph- script's status line and header fields (sent on untouched; parsed for the access log
    and for fronts that cannot write raw bytes). Lines that are not fields are skipped."""
    lines = _header_lines(head)
    match = _NPH_STATUS_LINE.fullmatch(lines[0]) if lines else None
    if match is None:
        raise MalformedHead("an nph- script must start with an HTTP status line")
    headers = []
    for line in lines[1:]:
        try:
            headers.append(_field(line))
        except MalformedHead:
            continue
    return int(match.group(1)), headers


# -- variables the operator configures (--cgi-env, --cgi-pass-env) and the login -----------------

def add_configured_environ(env: dict[str, str], configured: tuple[tuple[str, str], ...]) -> None:
    """The operator's variables, under the request's: one never replaces a meta-variable."""
    for name, value in configured:
        env.setdefault(name, value)


def add_login_environ(env: dict[str, str], request: Request) -> None:
    """AUTH_TYPE and REMOTE_USER (RFC 3875 4.1.1, 4.1.11) after a login; never the password."""
    if request.remote_user is not None:
        env["AUTH_TYPE"] = "Basic"
        env["REMOTE_USER"] = request.remote_user
