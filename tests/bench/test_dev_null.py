"""Guard: no bench server is given /dev/null as a file it could rename. twisted's LogFile rotates
its log by renaming it; the bench once gave it `--logfile /dev/null` and, run as root, replaced the
system's /dev/null with a regular file (every later reader of /dev/null got old log lines)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bench import certs, peers, servers


def commands(tmp_path: Path, kind: str) -> list[list[str]]:
    """Every command line the bench starts a server of `kind` with: plain, and over TLS when it runs TLS."""
    root = tmp_path / "www"
    specs = [spec for spec in servers.SERVERS if spec.kind == kind]
    pair = certs.TlsPair(tmp_path / "cert.pem", tmp_path / "key.pem")
    pairs = [None, pair] if kind in peers.TLS_PEERS or kind == "cgibox" else [None]
    return [servers.server_command(spec, root, 8125, 2, tmp_path / spec.key, frozenset(), tls)
            for spec in specs for tls in pairs]


def test_twisted_is_never_given_a_file_under_dev(tmp_path: Path):
    (command,) = commands(tmp_path, "twisted")
    assert not [arg for arg in command if arg.startswith("/dev/") or arg == os.devnull], command
    # both of its log files (twistd's own and the web access log) are files of the run
    logs = [Path(command[i + 1]) for i, arg in enumerate(command) if arg == "--logfile"]
    assert len(logs) == 2 and all(log.is_relative_to(tmp_path) for log in logs), command


def test_no_other_server_names_dev_null_but_as_an_access_log(tmp_path: Path):
    """nginx and lighttpd write their access logs to /dev/null (they reopen, never rename, them);
    nothing else in any generated command or config names it."""
    for kind in ("http.server", "cgibox", "nginx", "lighttpd"):
        for command in commands(tmp_path, kind):
            assert os.devnull not in command, command
    pair = certs.TlsPair(tmp_path / "cert.pem", tmp_path / "key.pem")
    for tls in (None, pair):
        nginx = peers.nginx_conf(tmp_path / "www", 8123, tmp_path / "nginx", 2, tls)
        assert [line.strip() for line in nginx.splitlines() if "/dev/" in line] == ["access_log /dev/null;"]
        (tmp_path / "lighttpd").mkdir(exist_ok=True)
        lighttpd = peers.lighttpd_conf(tmp_path / "www", 8124, tmp_path / "lighttpd", tls)
        named = [line for line in lighttpd.splitlines() if "/dev/" in line]
        assert named == ['accesslog.filename = "/dev/null"']


def test_dev_null_is_still_a_character_device_after_a_quick_run(quick_run):
    mode = os.stat(os.devnull).st_mode
    assert stat.S_ISCHR(mode), f"{os.devnull} is no longer a character device (mode {mode:o})"
    assert Path(os.devnull).read_bytes() == b""
