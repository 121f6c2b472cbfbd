"""Why a script could not start, in words the operator can act on: a #! line ending in a carriage
return (Windows line ends), an interpreter that is missing, no #! line at all, no execute bit.
Read from the script's first line only after a start has failed, so a run costs nothing more."""

from __future__ import annotations

import errno
import os

# the kernel reads at most this much of a #! line (BINPRM_BUF_SIZE)
SHEBANG_MAX = 256


def not_executable(filename: str) -> str:
    return f"it is not executable: chmod +x {filename}"


def start_problem(filename: str, error: int | None) -> str:
    """What stopped `filename` from starting, given the errno its exec failed with (None when
    a wrapper exec'ed it and only its exit status 126/127 tells that it failed)."""
    try:
        with open(filename, "rb") as script:
            head = script.read(SHEBANG_MAX)
    except OSError as failure:
        return f"it cannot be read: {failure.strerror or failure}"
    if not head.startswith(b"#!"):
        if error in (errno.ENOEXEC, None):
            return "it has no #! line naming its interpreter: add one as its first line (e.g. #!/bin/sh)"
        return _generic(error)
    line = head[2:].split(b"\n", 1)[0]
    if line.endswith(b"\r"):
        return ("its #! line ends with a carriage return (Windows line ends): "
                "convert it to Unix line ends (e.g. dos2unix)")
    words = line.split()
    if not words:
        return "its #! line names no interpreter"
    interpreter = os.fsdecode(words[0])
    if not os.path.exists(interpreter):
        return (f"its interpreter {interpreter} (from its #! line) does not exist: "
                "install it or correct the #! line")
    if not os.access(interpreter, os.X_OK):
        return f"its interpreter {interpreter} (from its #! line) is not executable"
    return _generic(error)


def _generic(error: int | None) -> str:
    if error is None:
        return "it could not be started"
    return f"it could not be started: {os.strerror(error)}"
