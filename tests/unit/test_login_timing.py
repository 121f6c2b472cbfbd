"""A login takes as long whatever the bcrypt costs in the htpasswd file (issue 18.9): a file that
mixes costs must not tell, by the time a failed login takes, which names exist or which cost a
user's hash has. bcrypt is replaced by a fake whose checks take 2**cost ticks of a fake clock, so
the test times nothing real. Each check at the highest cost is timed; cheaper ones sleep as long
as they fall short."""

from __future__ import annotations

import bcrypt
import pytest

from cgibox.core import auth


def entry(user: str, password: str, cost: int) -> str:
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()}"


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


@pytest.fixture
def fake(monkeypatch):
    clock = FakeTime()
    real_checkpw = bcrypt.checkpw

    def checkpw(password: bytes, hashed: bytes) -> bool:
        clock.now += 2 ** int(hashed[4:6]) / 1000  # cost 12: 4.1 s of fake time, cost 4: 16 ms
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", checkpw)
    monkeypatch.setattr(auth, "_clock", clock.clock, raising=False)
    monkeypatch.setattr(auth, "_sleep", clock.sleep, raising=False)
    return clock


def timed(clock: FakeTime, passwords: auth.Passwords, user: str, password: str) -> tuple[bool, float]:
    started = clock.now
    ok = passwords.verify(user, password)
    return ok, round(clock.now - started, 6)


def test_mixed_costs_take_one_time(fake, tmp_path):
    path = tmp_path / "htpasswd"
    # the cheap entry first: the old dummy hash took the first entry's cost
    path.write_text(entry("cheap", "a", 4) + "\n" + entry("dear", "b", 7) + "\n")
    passwords = auth.Passwords(str(path))
    # a process's first login (nothing timed at the highest cost yet) may take longer, for anyone
    timed(fake, passwords, "warm-up", "x")
    answers = {
        "cheap, wrong": timed(fake, passwords, "cheap", "x"),
        "dear, wrong": timed(fake, passwords, "dear", "x"),
        "nobody": timed(fake, passwords, "nobody", "x"),
        "cheap, right": timed(fake, passwords, "cheap", "a"),
        "dear, right": timed(fake, passwords, "dear", "b"),
    }
    assert [ok for ok, _ in answers.values()] == [False, False, False, True, True]
    durations = {name: took for name, (_, took) in answers.items()}
    assert len(set(durations.values())) == 1, durations


def test_a_changed_file_times_its_new_highest_cost(fake, tmp_path):
    import os
    import time

    path = tmp_path / "htpasswd"
    path.write_text(entry("a", "a", 4) + "\n")
    passwords = auth.Passwords(str(path))
    _, before = timed(fake, passwords, "nobody", "x")
    path.write_text(entry("a", "a", 4) + "\n" + entry("b", "b", 6) + "\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    passwords._checked_at = 0.0  # look at the file now
    timed(fake, passwords, "a", "x")  # the first after the change times the new highest cost
    _, cheap = timed(fake, passwords, "a", "x")
    _, nobody = timed(fake, passwords, "nobody", "x")
    assert cheap == nobody > before
