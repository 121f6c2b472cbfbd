"""Forking a serving process without losing a stop signal, for every front that forks.

Between fork() and the moment the child sets its own handlers, a signal runs the parent's handler
in the child's copy of the parent and is lost: the child serves on until it is killed (seen: a
SIGINT just after start-up took gunicorn's graceful timeout, 10 s, to stop an idle server). Forked
with the signals blocked, the child receives them once it has said it is ready (`release`).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


@contextmanager
def signals_held(signals: Iterable[int] = STOP_SIGNALS) -> Iterator[None]:
    """Block `signals` for a fork inside the block; the parent's mask is restored after it, the
    child's stays blocked until it calls `release` (a signal meanwhile waits, pending)."""
    parent = os.getpid()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        if os.getpid() == parent:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


def fork_holding(signals: Iterable[int] = STOP_SIGNALS) -> int:
    """os.fork() with `signals` held in the child until it calls `release`."""
    with signals_held(signals):
        return os.fork()


def hold(signals: Iterable[int] = STOP_SIGNALS) -> None:
    """Block `signals` in this process until `release`: a signal meanwhile waits, pending (the
    first process, between its start-up line and its handlers)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)


def release(signals: Iterable[int] = STOP_SIGNALS) -> None:
    """Once this process's own handlers are set: a signal held since the fork is handled now.
    Before any thread starts or any script runs, both of which would inherit the blocked mask.
    Harmless in a process that was not forked holding them."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
