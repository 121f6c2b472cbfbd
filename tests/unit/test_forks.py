"""fronts/forks.py: the stop signals are held in a child until it releases them, never in the parent."""

from __future__ import annotations

import os
import signal

from cgibox.fronts.forks import STOP_SIGNALS, fork_holding, release


def test_a_child_gets_a_held_signal_once_it_releases_it_and_the_parent_holds_none():
    seen_r, seen_w = os.pipe()
    pid = fork_holding()
    if pid == 0:  # the child: a SIGTERM to itself waits, pending, until release()
        code = 1
        try:
            signal.signal(signal.SIGTERM, lambda signum, frame: os.write(seen_w, b"T"))
            os.kill(os.getpid(), signal.SIGTERM)
            held = signal.SIGTERM in signal.sigpending()
            os.write(seen_w, b"H" if held else b"-")
            release()
            code = 0
        finally:
            os._exit(code)
    os.close(seen_w)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(seen_r, "rb") as seen:
        assert seen.read() == b"HT"
    assert os.waitstatus_to_exitcode(status) == 0
    assert not STOP_SIGNALS & signal.pthread_sigmask(signal.SIG_BLOCK, [])
