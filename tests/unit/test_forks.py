"""fronts/forks.py: the stop signals are held in a child until it releases them, never in the parent;
fronts/processes.py: the accept rule among serving processes."""

from __future__ import annotations

import os
import signal

from cgibox.fronts.forks import STOP_SIGNALS, fork_holding, hold, release
from cgibox.fronts.processes import ABSENT, ACCEPT_SLACK, Siblings


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


def test_hold_keeps_a_stop_signal_pending_until_release():
    """The first process holds them from its start-up line until its handlers are set."""
    seen_r, seen_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            hold()
            signal.signal(signal.SIGTERM, lambda signum, frame: os.write(seen_w, b"T"))
            os.kill(os.getpid(), signal.SIGTERM)
            os.write(seen_w, b"H" if signal.SIGTERM in signal.sigpending() else b"-")
            release()
            code = 0
        finally:
            os._exit(code)
    os.close(seen_w)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(seen_r, "rb") as seen:
        assert seen.read() == b"HT"
    assert os.waitstatus_to_exitcode(status) == 0


def test_siblings_accept_only_while_not_ahead():
    siblings = Siblings(3)
    siblings.index = 0
    assert siblings.may_accept(5)  # no live sibling yet: nobody to leave it to
    siblings.put(1, 4)
    assert siblings.may_accept(5) and siblings.may_accept(4 + ACCEPT_SLACK)
    assert not siblings.may_accept(5 + ACCEPT_SLACK)
    siblings.put(2, 0)  # a fresh replacement: the others leave new connections to it
    assert not siblings.may_accept(3)
    siblings.put(2, ABSENT)  # a dead one is not waited for
    assert siblings.may_accept(6)
