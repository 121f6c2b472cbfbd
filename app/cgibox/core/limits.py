"""--cgi-limits: resource limits every script runs under from its first instruction.

Scripts are started through util-linux `prlimit`, which sets the limits on itself and then
execs the script: core/cgi_spawn keeps its posix_spawn start (a `preexec_fn` would need a
fork, and is unsafe in a threaded server), and there is no window in which the script runs unlimited
(as with prlimit(2) on a running pid). After a failed run, `limit_reached` reads the evidence
(signal, CPU time, what the script wrote to stderr) to name the limit in the server log.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess

# name in --cgi-limits -> prlimit's option
OPTIONS = {"cpu": "--cpu", "memory": "--as", "processes": "--nproc", "file-size": "--fsize"}
# name in --cgi-limits -> the resource the kernel limits
RESOURCES = {"cpu": resource.RLIMIT_CPU, "memory": resource.RLIMIT_AS, "processes": resource.RLIMIT_NPROC,
             "file-size": resource.RLIMIT_FSIZE}
# the largest value the kernel takes as a limit (rlim_t is 64 bits and the kernel refuses
# RLIMIT_NPROC past 2**63 - 1; all ones means "unlimited", which a limit is not)
LARGEST = 2 ** 63 - 1
# what scripts (any language, through the C library's strerror or their runtime) write when a
# limit refuses them something
_STDERR_SIGNS = {
    "memory": re.compile(r"MemoryError|Cannot allocate memory|out of memory", re.I),
    "processes": re.compile(r"Resource temporarily unavailable|fork: retry", re.I),
    "file-size": re.compile(r"File too large", re.I),
}


def hard_value(name: str, value: int) -> int:
    """The hard limit the wrapper sets for `value` (see wrapper_argv)."""
    return value + 1 if name == "cpu" else value


def refusal(prlimit: str, limits: tuple[tuple[str, int], ...]) -> str | None:
    """Why scripts could not run under `limits` on this machine, or None: a value out of the
    kernel's range, a hard limit this unprivileged server cannot raise, or a trial start
    (the wrapper running `true`) that fails, as every script would."""
    for name, value in limits:
        if hard_value(name, value) > LARGEST:
            largest = LARGEST - hard_value(name, 0)
            return f"{name}={value} is larger than the kernel allows (at most {largest})"
        hard = resource.getrlimit(RESOURCES[name])[1]
        if hard != resource.RLIM_INFINITY and hard_value(name, value) > hard and os.geteuid() != 0:
            return (f"{name}={value} is above this server's hard limit ({hard}), which only root "
                    "can raise: give a lower value or raise the hard limit (ulimit -H)")
    true = shutil.which("true", path="/usr/bin:/bin")
    if true is None:
        return None
    try:
        trial = subprocess.run([*wrapper_argv(prlimit, limits), true], capture_output=True, timeout=10,
                               stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"a trial start under these limits failed: {error}"
    if trial.returncode == 0:
        return None
    said = trial.stderr.decode("utf-8", "replace").strip().splitlines()
    if said:
        return f"no script could start under these limits: {said[-1]}"
    if trial.returncode < 0:
        return (f"no script could start under these limits: a trial start was killed by "
                f"{signal.Signals(-trial.returncode).name} (memory= too small?)")
    return f"no script could start under these limits (a trial start exited with {trial.returncode})"


def find_prlimit() -> str | None:
    return shutil.which("prlimit", path="/usr/bin:/bin:/usr/sbin:/sbin")


def wrapper_argv(prlimit: str, limits: tuple[tuple[str, int], ...]) -> list[str]:
    """The command line that sets `limits` and then execs what follows it."""
    argv = [prlimit]
    for name, value in limits:
        if name == "cpu":
            # soft first: SIGXCPU at the limit, SIGKILL one second later for a script ignoring it
            argv.append(f"--cpu={value}:{value + 1}")
        else:
            argv.append(f"{OPTIONS[name]}={value}:{value}")
    argv.append("--")
    return argv


def limit_reached(limits: dict[str, int], returncode: int | None, cpu_seconds: float,
                  stderr_text: str) -> str | None:
    """Which configured limit most likely ended a failed run, or None."""
    if returncode is None or returncode == 0:
        return None
    if "cpu" in limits and (returncode == -signal.SIGXCPU or
                            (returncode == -signal.SIGKILL and cpu_seconds >= limits["cpu"] - 0.05)):
        return "cpu"
    if "file-size" in limits and returncode == -signal.SIGXFSZ:
        return "file-size"
    for name, sign in _STDERR_SIGNS.items():
        if name in limits and sign.search(stderr_text):
            return name
    return None


def describe(name: str, limits: dict[str, int]) -> str:
    return f"{name}={limits[name]}"


def process_limit_holds() -> bool:
    """RLIMIT_NPROC counts a user's processes, and the kernel does not apply it to root."""
    return os.geteuid() != 0
