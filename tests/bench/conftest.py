"""The one `make bench QUICK=1` run that the tests of tests/bench share (about a minute)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# 11 servers x 5 cells x ~1 s, the connection cells on one front, the TLS cells on four servers,
# start-up and shut-down of each server, and the first run's pip install of the Python-hosted peers
# into bench/.peers-venv (~25 s)
TIME_LIMIT = 400


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk); `make bench` installs it")
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = tmp_path_factory.mktemp("bench")
    # exactly what a developer types, so the Makefile target is proven too
    outputs = f"--output {out / 'quick.md'} --json {out / 'quick.json'} --chart {out / 'quick.png'}"
    command = ["make", "-s", "bench", "QUICK=1", f"BENCH_ARGS={outputs}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIME_LIMIT, cwd=REPO,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, done.stdout


