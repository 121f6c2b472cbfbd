"""README's flag table is written from config.SETTINGS (cgibox.docs); it must not drift from it."""

from __future__ import annotations

import re

import pytest

from cgibox import docs
from cgibox.config import SETTINGS, Setting
from tests.servers import REPO


def test_readme_flag_table_is_the_generated_one():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert docs.with_table(readme, docs.flag_table()) == readme, (
        "README.md's flag table differs from app/cgibox/config.py's SETTINGS: run `make docs` "
        "(python -m cgibox.docs README.md) and commit README.md")


def test_every_setting_is_one_row_with_its_help_text():
    table = docs.flag_table()
    rows = table.splitlines()[2:]
    assert len(rows) == len(SETTINGS)
    for setting, row in zip(SETTINGS, rows, strict=True):
        assert row.startswith(f"| `{setting.flag}` | `{setting.env}` | ")
        assert row.endswith(f" | {setting.help} |")


def test_defaults_are_code_or_words():
    by_name = {setting.name: docs.table_row(setting) for setting in SETTINGS}
    assert "| `8000` |" in by_name["port"]
    assert "| 2 per CPU |" in by_name["workers"]
    unset = Setting("example", str, None, "an example", "X")
    assert docs.table_row(unset) == "| `--example` | `CGIBOX_EXAMPLE` | none | an example |"


def test_table_and_help_say_the_same_default():
    # --no-readme's row said `0` while --help said "off": one rule for both now
    from cgibox.cli import help_line

    for setting in SETTINGS:
        shown = docs.table_row(setting).split(" | ")[2].strip("`").replace("\\|", "|")
        if shown == "none":
            assert "default:" not in help_line(setting)
        else:
            assert f"[default: {shown}; " in help_line(setting), setting.name
    by_name = {setting.name: docs.table_row(setting) for setting in SETTINGS}
    assert "| off |" in by_name["no_readme"] and "| off |" in by_name["compress_files"]


def test_a_pipe_in_help_does_not_split_the_row():
    row = docs.table_row(Setting("example", str, "a|b", "`x|y` or z", "X"))
    assert row == "| `--example` | `CGIBOX_EXAMPLE` | `a\\|b` | `x\\|y` or z |"


def test_only_the_part_between_the_markers_is_rewritten():
    text = f"intro\n{docs.BEGIN}\nold table\n{docs.END}\noutro\n"
    assert docs.with_table(text, "new\n") == f"intro\n{docs.BEGIN}\nnew\n{docs.END}\noutro\n"
    with pytest.raises(ValueError, match="markers"):
        docs.with_table("no markers here\n", "new\n")


def test_main_writes_then_checks(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{docs.BEGIN}\nstale\n{docs.END}\n", encoding="utf-8")
    assert docs.main(["--check", str(readme)]) == 1
    assert "run `make docs`" in capsys.readouterr().err
    assert docs.main([str(readme)]) == 0
    assert docs.flag_table() in readme.read_text(encoding="utf-8")
    assert docs.main(["--check", str(readme)]) == 0


def test_help_never_splits_a_flag_at_its_hyphen():
    # "--auth-" at a line's end and "file" on the next: a flag nobody can read or search for
    from cgibox.cli import build_parser

    text = build_parser().format_help()
    named = set(re.findall(r"--[a-z][a-z-]*[a-z]", text))
    known = {setting.flag for setting in SETTINGS} | {"--help", "--version"}
    assert named <= known, named - known
    assert not re.search(r"--[a-z-]*-\n", text)
