"""The servers people would pick instead of cgibox, as `make bench` runs them: nginx and lighttpd
(Debian packages) and twisted (`twistd web`, from the `bench` extra), plus `python -m http.server`;
uvicorn + Starlette, aiohttp and granian come from bench/python_peers.py (their own venv).

Each gets a configuration generated here in the run's temporary folder, listens on 127.0.0.1 only,
writes its access log to /dev/null (as every cgibox front does in the bench; twisted, which
rotates its log by renaming it, to a file of the run's own) and serves the same
corpus (nginx and lighttpd also over TLS, for the TLS cells). What a peer cannot serve
(nginx and twistd web run no CGI) is named in CANNOT_SERVE, so the
table says so instead of measuring a wrong answer.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench import python_peers

if TYPE_CHECKING:
    from bench.certs import TlsPair

# the kinds of server, for "best C server" and "best Python server" of a run
C_PEERS = ("nginx", "lighttpd")
# Python-hosted: the server's own code runs in CPython (granian's static mount is Rust behind a
# Python process, as its users run it)
PYTHON_PEERS = ("twisted", "http.server", *python_peers.KINDS)
# the Python-hosted peers whose files and 404s pass through Python code (granian's come from Rust)
PYTHON_SERVED = tuple(kind for kind in PYTHON_PEERS if kind not in python_peers.SERVED_FROM_RUST)
# the peers the TLS cells run (on the run's certificate); nginx is the one the cgibox fronts compare to
TLS_PEERS = ("nginx", "lighttpd")
LIGHTTPD_OPENSSL = Path("/usr/lib/lighttpd/mod_openssl.so")

CANNOT_SERVE = {
    ("nginx", "cgi"): "nginx has no CGI (it needs fcgiwrap behind FastCGI)",
    ("twisted", "cgi"): "twistd web serves no CGI without a resource script of one's own",
    **python_peers.CANNOT_SERVE,
}


def has_stdlib_cgi() -> bool:
    """CGIHTTPRequestHandler (and `http.server --cgi`) exist up to Python 3.14."""
    import http.server

    return hasattr(http.server, "CGIHTTPRequestHandler")


def missing(kind: str, tls: bool = False) -> str | None:
    """Why a peer cannot run here (its program, or for `tls` its TLS module, is not installed), or None."""
    program = {"nginx": "nginx", "lighttpd": "lighttpd"}.get(kind)
    if program is not None and _which(program) is None:
        return f"{program} is not installed (apt-get install {'nginx-light' if kind == 'nginx' else kind})"
    if tls and kind == "lighttpd" and not LIGHTTPD_OPENSSL.exists():
        return f"lighttpd has no {LIGHTTPD_OPENSSL} (apt-get install lighttpd-mod-openssl)"
    if kind == "twisted" and _twistd() is None:
        return "twisted is not installed (pip install -e '.[bench]')"
    if kind in python_peers.KINDS:
        return python_peers.missing(kind)
    return None


def _which(program: str) -> str | None:
    # Debian puts nginx and lighttpd in /usr/sbin, which a non-root PATH may lack
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin:/usr/local/sbin")


def _twistd() -> str | None:
    beside = Path(sys.executable).with_name("twistd")
    return str(beside) if beside.exists() else shutil.which("twistd")


def command(kind: str, root: Path, port: int, work: Path, workers: int,
            tls: TlsPair | None = None) -> list[str]:
    """The command line that starts peer `kind` in the foreground (configs are written to `work`);
    with `tls` (nginx and lighttpd only) it serves HTTPS on that pair."""
    work.mkdir(parents=True, exist_ok=True)
    if tls is not None and kind not in TLS_PEERS:
        raise ValueError(f"the bench runs no TLS on {kind}")
    if kind == "http.server":
        cgi = ["--cgi"] if has_stdlib_cgi() else []
        return [sys.executable, "-m", "http.server", *cgi, "--bind", "127.0.0.1", "--directory", str(root),
                str(port)]
    if kind == "nginx":
        conf = work / "nginx.conf"
        conf.write_text(nginx_conf(root, port, work, workers, tls))
        return [_which("nginx") or "nginx", "-p", str(work), "-c", str(conf), "-e", str(work / "error.log")]
    if kind == "lighttpd":
        conf = work / "lighttpd.conf"
        conf.write_text(lighttpd_conf(root, port, work, tls))
        return [_which("lighttpd") or "lighttpd", "-D", "-f", str(conf)]
    if kind == "twisted":
        # `twistd web`'s own --logfile is the access log; twistd's (the daemon's) log is kept for errors.
        # The access log is a file of the run's own, never /dev/null: twisted's LogFile rotates its
        # file by renaming it every megabyte, and as root that would replace the system's /dev/null
        # with a regular file (every later reader of /dev/null then gets old log lines).
        return [_twistd() or "twistd", "-n", "--pidfile", "", "--logfile", str(work / "twistd.log"), "web",
                "--listen", f"tcp:{port}:interface=127.0.0.1", "--path", str(root),
                "--logfile", str(work / "access.log")]
    if kind in python_peers.KINDS:
        return python_peers.command(kind, root, port, workers)
    raise ValueError(f"unknown peer {kind!r}")


def describe(kind: str, workers: int) -> str:
    if kind == "http.server":
        cgi = " --cgi" if has_stdlib_cgi() else ""
        return f"python -m http.server{cgi} --bind 127.0.0.1 --directory ROOT PORT"
    if kind == "nginx":
        return (f"nginx (worker_processes {workers}, sendfile on, autoindex on, access_log /dev/null; "
                "no CGI)")
    if kind == "lighttpd":
        return ("lighttpd -D (one process, mod_dirlisting with its cache, mod_cgi for /cgi-bin/, "
                "accesslog /dev/null)")
    if kind == "twisted":
        return ("twistd -n web --listen tcp:PORT:interface=127.0.0.1 --path ROOT --logfile WORK/access.log "
                "(a file: twisted rotates its access log by renaming it)")
    if kind in python_peers.KINDS:
        return python_peers.describe(kind, workers)
    raise ValueError(kind)


def nginx_conf(root: Path, port: int, work: Path, workers: int, tls: TlsPair | None = None) -> str:
    """nginx as a user would set it up for static files: Debian's mime types, sendfile, autoindex;
    with `tls`, `listen … ssl` on that pair and nginx's default protocols and ciphers."""
    temp = work / "temp"
    temp.mkdir(parents=True, exist_ok=True)
    mime = "/etc/nginx/mime.types"
    include = f"include {mime};" if os.path.exists(mime) else ""
    tls_lines = (f"\n        ssl_certificate {tls.cert};\n        ssl_certificate_key {tls.key};" if tls
                 else "")
    return f"""daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 16384;
pid {work / 'nginx.pid'};
error_log {work / 'error.log'} warn;
events {{ worker_connections 16384; }}
http {{
    {include}
    default_type application/octet-stream;
    access_log /dev/null;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        listen 127.0.0.1:{port}{" ssl" if tls else ""};{tls_lines}
        root {root};
        autoindex on;
    }}
}}
"""


def lighttpd_conf(root: Path, port: int, work: Path, tls: TlsPair | None = None) -> str:
    """lighttpd with listings and mod_cgi running the same `sh` script as everyone else. Its
    listing cache is on (as cgibox's is): without it lighttpd 1.4.69 answers 503 to most of 16
    concurrent requests for one large folder. With `tls`, mod_openssl's `ssl.engine` on that pair."""
    cache = work / "dircache"
    cache.mkdir(parents=True, exist_ok=True)
    tls_lines = (f'server.modules += ("mod_openssl")\nssl.engine = "enable"\nssl.pemfile = "{tls.cert}"\n'
                 f'ssl.privkey = "{tls.key}"\n' if tls else "")
    return f"""server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{work / 'error.log'}"
server.max-fds = 16384
server.modules = ("mod_access", "mod_accesslog", "mod_dirlisting", "mod_cgi")
accesslog.filename = "/dev/null"
dir-listing.activate = "enable"
dir-listing.cache = ("max-age" => 15, "path" => "{cache}")
mimetype.assign = (".txt" => "text/plain; charset=utf-8", ".html" => "text/html; charset=utf-8",
                   ".bin" => "application/octet-stream", "" => "application/octet-stream")
$HTTP["url"] =~ "^/cgi-bin/" {{
    dir-listing.activate = "disable"
    cgi.assign = ("" => "")
}}
{tls_lines}"""
