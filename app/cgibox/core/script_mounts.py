"""The operator's script mounts, run by core.cgi's runner: --cgi-dir and --cgi-mount folders, where
a symlink to an executable regular file runs wherever it points (Debian's
/usr/lib/cgi-bin/gitweb.cgi -> /usr/share/gitweb), and --cgi-mount programs, one program for every
URL under a prefix (SCRIPT_NAME = the prefix, PATH_INFO = the rest), each mount with its own
environment, body limit and silence timeout (Apache's ScriptAlias to a file or a folder).

Files under the served root (--cgi-ext, cgibox.compat's folders) keep the root's confinement and
run through the plain CGIRunner.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

from cgibox.core.cgi import CGIRunner, Script
from cgibox.core.errors import HTTPError
from cgibox.core.paths import safe_segments

if TYPE_CHECKING:
    from cgibox.cgi_mounts import CgiMount


class OperatorRunner(CGIRunner):
    """A CGIRunner for folders the operator named: a symlink in them to an executable regular
    file runs, as lighttpd and Debian's Apache run it (the folder is the operator's, and so is
    what its links point at). Hidden names, `..`, and folders reached through a link stay 404."""

    def locate(self, decoded_path: str, mount: tuple[str, str] | None = None,
               script_command: Callable[[str], list[str] | None] | None = None) -> Script:
        try:
            return super().locate(decoded_path, mount, script_command)
        except HTTPError as error:
            if error.status != 404 or mount is None or script_command is not None:
                raise
            found = linked_script(decoded_path, mount)
            if found is None:
                raise
            return found


def linked_script(decoded_path: str, mount: tuple[str, str]) -> Script | None:
    """The script `decoded_path` names when it is a symlink in the mount's folder (reached
    through real folders only) to an executable regular file; None otherwise."""
    prefix, folder = mount
    rest = decoded_path[len(prefix):]
    segments = safe_segments(rest or "/")
    if not segments:
        return None
    for count in range(1, len(segments) + 1):
        entry = os.path.join(folder, *segments[:count])
        try:
            st = os.lstat(entry)
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode):
            continue
        if not stat.S_ISLNK(st.st_mode):
            return None  # a plain file: the runner's own answer stands
        try:
            target = os.stat(entry)
        except OSError:
            return None
        if not stat.S_ISREG(target.st_mode) or not os.access(entry, os.X_OK):
            return None
        name = prefix + "/" + "/".join(segments[:count])
        return Script(name, entry, decoded_path[len(name):], (entry,))
    return None


class ProgramRunner(OperatorRunner):
    """--cgi-mount URLPATH=PROGRAM: the one program answers every URL under the prefix."""

    program: str

    def locate(self, decoded_path: str, mount: tuple[str, str] | None = None,
               script_command: Callable[[str], list[str] | None] | None = None) -> Script:
        prefix = mount[0] if mount is not None else ""
        if any(segment in (".", "..") for segment in decoded_path[len(prefix):].split("/")):
            raise HTTPError(404)  # Apache and nginx resolve these before mapping; never passed on
        return Script(prefix, self.program, decoded_path[len(prefix):], (self.program,))


def mount_runner(base: CGIRunner, mount: CgiMount) -> CGIRunner:
    """A runner for `mount`, sharing `base`'s --cgi-max slots (one table for the server), with
    the mount's variables before the server's and its own --max-body and --cgi-timeout."""
    cls = ProgramRunner if mount.program is not None else OperatorRunner
    runner = cls.__new__(cls)
    runner.__dict__.update(base.__dict__)
    changes: dict[str, object] = {}
    if mount.max_body is not None:
        changes["max_body"] = mount.max_body
    if mount.timeout is not None:
        changes["cgi_timeout"] = mount.timeout
    runner.config = base.config.replace(**changes) if changes else base.config
    # the mount's own first: add_configured_environ keeps the first value of a name
    runner.configured_env = mount.env + base.configured_env
    if isinstance(runner, ProgramRunner):
        assert mount.program is not None
        runner.program = str(mount.program)
    return runner


def needs_own_runner(mount: CgiMount) -> bool:
    return mount.program is not None or bool(mount.env) or mount.max_body is not None \
        or mount.timeout is not None
