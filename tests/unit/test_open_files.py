"""Start-up's RLIMIT_NOFILE step (cli.raise_open_file_limit), run in a child interpreter so that
this process's own limits are left alone."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import resource, sys
from cgibox.cli import raise_open_file_limit
from cgibox.config import Config
resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))
raise_open_file_limit(Config(max_connections={max_connections}, threads=64))
print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def run(soft: int, hard: int, max_connections: int) -> subprocess.CompletedProcess:
    code = PROGRAM.format(soft=soft, hard=hard, max_connections=max_connections)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)


def test_the_soft_limit_is_raised_to_the_hard_one():
    result = run(256, 2048, 100)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2048" and result.stderr == ""


def test_one_line_when_max_connections_cannot_fit():
    result = run(256, 1024, 10000)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1024"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "--max-connections 10000" in lines[0] and "1024" in lines[0], lines
