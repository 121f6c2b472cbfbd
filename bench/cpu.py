"""Who used the CPUs while a cell ran: the server under test, wrk, this driver, and everything else.

Figures from a shared machine are only as good as its quietness, so every cell records the share of
the machine's CPU time that went to other processes (from /proc/stat minus what the server's process
group, its reaped children, wrk and this driver used). Linux only; elsewhere nothing is recorded.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

try:
    CORES = len(os.sched_getaffinity(0))  # the CPUs this run may use (the server's and wrk's)
except AttributeError:
    CORES = os.cpu_count() or 1
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_busy() -> tuple[float, float] | None:
    """(seconds of user+nice+system time, seconds of steal) over all CPUs since boot."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system = (int(v) for v in fields[1:4])
    steal = int(fields[8]) if len(fields) > 8 else 0
    return (user + nice + system) / TICK, steal / TICK


def group_cpu(pgid: int) -> float:
    """CPU seconds of every live process in the group, with their reaped children's."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        rest = text.rpartition(")")[2].split()
        # rest[0] is the state; pgrp is rest[2]; utime, stime, cutime, cstime are rest[11:15]
        if int(rest[2]) == pgid:
            total += sum(int(value) for value in rest[11:15])
    return total / TICK


@dataclass
class Sample:
    wall: float
    busy: float
    steal: float
    server: float
    mine: float  # this driver and its reaped children (wrk)


def sample(pgid: int) -> Sample | None:
    busy = machine_busy()
    if busy is None:
        return None
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    return Sample(time.monotonic(), busy[0], busy[1], group_cpu(pgid), mine)


def shares(before: Sample | None, after: Sample | None, cores: int) -> dict[str, float]:
    """Fractions of the machine (all cores) each party used between two samples."""
    if before is None or after is None or after.wall <= before.wall:
        return {}
    capacity = (after.wall - before.wall) * cores
    server = after.server - before.server
    client = after.mine - before.mine
    other = max(0.0, (after.busy - before.busy) - server - client)
    return {"server": server / capacity, "client": client / capacity, "other": other / capacity,
            "steal": (after.steal - before.steal) / capacity}
