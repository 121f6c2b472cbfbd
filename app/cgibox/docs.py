"""README's flag table, written from config.SETTINGS: the same help text --help shows.

`make docs` (`python -m cgibox.docs README.md`) rewrites the table between the marker comments;
`--check` only says whether it is out of date. tests/unit/test_docs.py fails when it is.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from cgibox.config import SETTINGS, Setting

BEGIN = "<!-- flags: written by `make docs` from app/cgibox/config.py; edit the help text there -->"
END = "<!-- /flags -->"


def table_row(setting: Setting) -> str:
    shown = setting.shown_default  # what --help says too
    if shown is None:
        default = "none"
    else:  # a literal value as code, words as words
        default = shown if setting.default_text else f"`{shown}`"
    cells = (f"`{setting.flag}`", f"`{setting.env}`", default, setting.help)
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def flag_table(settings: Sequence[Setting] = SETTINGS) -> str:
    lines = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    return "\n".join(lines + [table_row(setting) for setting in settings]) + "\n"


def with_table(text: str, table: str) -> str:
    """`text` with the part between the markers replaced by `table`."""
    head, begin, rest = text.partition(BEGIN + "\n")
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the markers {BEGIN!r} and {END!r} are missing")
    return head + begin + table + end + tail


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [arg for arg in args if arg != "--check"] or ["README.md"]
    stale = []
    for path in map(Path, paths):
        text = path.read_text(encoding="utf-8")
        wanted = with_table(text, flag_table())
        if wanted != text:
            stale.append(path)
            if not check:
                path.write_text(wanted, encoding="utf-8")
                print(f"cgibox.docs: wrote the flag table of {path}")
    if check and stale:
        print(f"cgibox.docs: the flag table of {', '.join(map(str, stale))} is out of date; run `make docs`",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
