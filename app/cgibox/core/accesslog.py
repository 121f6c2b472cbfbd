"""Access-log lines (Combined Log Format or JSON), control characters escaped, one write each."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import time

_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f"\\]')


def _escape(text: str) -> str:
    """Like Apache: quotes and backslashes escaped, control characters as \\xHH."""
    def replace(match: re.Match[str]) -> str:
        char = match.group()
        if char in '"\\':
            return "\\" + char
        return f"\\x{ord(char):02x}"
    return _UNSAFE.sub(replace, text)


def _write(line: str) -> None:
    # one os.write per line: lines from threads and forked children never interleave
    data = line.encode("utf-8", "backslashreplace") + b"\n"
    try:
        os.write(sys.stdout.fileno(), data)
    except (OSError, ValueError):
        pass


@functools.lru_cache(maxsize=4)
def _clf_time(second: int) -> str:
    """[10/Oct/2000:13:55:36 -0700], formatted once per second rather than once per line."""
    return time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second))


class AccessLog:
    def __init__(self, log_format: str = "combined") -> None:
        self.format = log_format

    def log(self, *, remote_addr: str, request_line: str, status: int, bytes_sent: int,
            referer: str | None, user_agent: str | None, duration: float, method: str = "",
            path: str = "", user: str | None = None) -> None:
        if self.format == "json":
            record = {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "remote_addr": remote_addr,
                "request": request_line, "method": method, "path": path, "status": status,
                "bytes": bytes_sent, "referer": referer, "user_agent": user_agent,
                "duration_ms": round(duration * 1000, 3), "user": user,
            }
            # json.dumps escapes every control character itself
            _write(json.dumps(record, ensure_ascii=True))
            return
        stamp = _clf_time(int(time.time()))
        # the third field is the user a login proved (Combined Log Format's authuser)
        shown_user = _escape(user).replace(" ", "\\x20") if user else "-"
        _write(f'{_escape(remote_addr)} - {shown_user} [{stamp}] "{_escape(request_line)}" {status} '
               f'{bytes_sent if bytes_sent else "-"} "{_escape(referer or "-")}" '
               f'"{_escape(user_agent or "-")}"')


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def server_log(message: str) -> None:
    """A line for the operator (not an access line): stderr, control characters escaped."""
    safe = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", message)
    data = (safe + "\n").encode("utf-8", "backslashreplace")
    try:
        os.write(sys.stderr.fileno(), data)
    except (OSError, ValueError):
        pass
