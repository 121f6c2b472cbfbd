"""Why a script could not start, in words the operator can act on: a #! line ending in a carriage
return (Windows line ends), an interpreter that is missing, no #! line at all, no execute bit.
Read from the script's first line only after a start has failed, so a run costs nothing more."""

from __future__ import annotations

import errno
import os
import shutil

from cgibox.core.cgi_protocol import SAFE_PATH

# the kernel reads at most this much of a #! line (BINPRM_BUF_SIZE)
SHEBANG_MAX = 256


def not_executable(filename: str) -> str:
    return f"it is not executable: chmod +x {filename}"


def start_problem(filename: str, error: int | None) -> str | None:
    """What stopped `filename` from starting, given the errno its exec failed with (None when
    only an exit status of 126/127 and no output tell that it may not have started: exec'ed by
    the --cgi-limits wrapper, or by `env`). None: nothing more to say than the error itself."""
    try:
        with open(filename, "rb") as script:
            head = script.read(SHEBANG_MAX)
    except OSError as failure:
        return f"it cannot be read: {failure.strerror or failure}"
    if not head.startswith(b"#!"):
        if error == errno.ENOEXEC:
            return "it has no #! line naming its interpreter: add one as its first line (e.g. #!/bin/sh)"
        return None
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
    if os.path.basename(interpreter) == "env":
        program = next((os.fsdecode(word) for word in words[1:] if not word.startswith(b"-")), None)
        if program is not None and shutil.which(program, path=SAFE_PATH) is None:
            return (f"its interpreter {program} (from its #! line, looked up in {SAFE_PATH}) "
                    "does not exist: install it or correct the #! line")
    return None
