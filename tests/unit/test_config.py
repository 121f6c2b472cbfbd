"""config.py and cli.py without starting a server: flag > environment > default, bad values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cgibox import cli, config
from cgibox.config import SETTINGS, Config, ConfigError, load, usable_cpus


@pytest.fixture
def dirs(tmp_path) -> tuple[Path, Path]:
    root, cgi = tmp_path / "root", tmp_path / "cgi"
    root.mkdir()
    cgi.mkdir()
    return root, cgi


def base_flags(dirs) -> dict[str, str | None]:
    root, cgi = dirs
    return {"root": str(root), "cgi_dir": str(cgi)}


def test_defaults(dirs):
    resolved = load(base_flags(dirs), {})
    assert resolved.host == "127.0.0.1"
    assert resolved.port == 8000
    assert resolved.front == "threading"
    assert resolved.workers is None
    assert resolved.templates is None
    assert resolved.cgi_timeout == 30
    assert resolved.cgi_max == 4 * usable_cpus()
    assert resolved.max_body == 10485760
    assert resolved.header_timeout == 10
    assert resolved.graceful_timeout == 10
    assert resolved.log_format == "combined"
    assert resolved.root == dirs[0].resolve()


def test_every_contract_setting_has_flag_and_env():
    by_name = {s.name: s for s in SETTINGS}
    for name in ("host", "port", "root", "cgi_dir", "front", "workers", "templates", "cgi_timeout",
                 "cgi_max", "max_body", "header_timeout", "graceful_timeout", "log_format"):
        setting = by_name[name]
        assert setting.flag == "--" + name.replace("_", "-")
        assert setting.env == "CGIBOX_" + name.upper()
        assert setting.help
    assert set(by_name) <= {f.name for f in Config.__dataclass_fields__.values()}


def test_environment_beats_default(dirs):
    resolved = load(base_flags(dirs), {"CGIBOX_PORT": "9001", "CGIBOX_LOG_FORMAT": "json",
                                        "CGIBOX_CGI_TIMEOUT": "2.5", "CGIBOX_HOST": "::1"})
    assert resolved.port == 9001
    assert resolved.log_format == "json"
    assert resolved.cgi_timeout == 2.5
    assert resolved.host == "::1"


def test_flag_beats_environment(dirs, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    flags = {**base_flags(dirs), "port": "9002", "front": "forking"}
    resolved = load(flags, {"CGIBOX_PORT": "9001", "CGIBOX_FRONT": "threading",
                            "CGIBOX_ROOT": str(other)})
    assert resolved.port == 9002
    assert resolved.front == "forking"
    assert resolved.root == dirs[0].resolve()


def test_environment_root_and_empty_variables(dirs):
    root, cgi = dirs
    resolved = load({}, {"CGIBOX_ROOT": str(root), "CGIBOX_CGI_DIR": str(cgi), "CGIBOX_PORT": ""})
    assert resolved.root == root.resolve()
    assert resolved.port == 8000  # an empty variable counts as unset


BAD_VALUES = [
    ("port", "abc"), ("port", "-1"), ("port", "65536"), ("port", "80.5"), ("port", ""),
    ("host", ""), ("host", "::zz"), ("host", "[::1"),
    ("front", "twisted"), ("worker_class", "eventlet"),
    ("workers", "0"), ("workers", "two"), ("threads", "0"), ("cgi_max", "-3"), ("max_body", "1e6"),
    ("cgi_timeout", "0"), ("cgi_timeout", "-1"), ("cgi_timeout", "soon"), ("cgi_timeout", "nan"),
    ("cgi_timeout", "inf"), ("header_timeout", "0"), ("graceful_timeout", "x"),
    ("log_format", "apache"), ("log_format", "JSON"), ("port", "8000\nX"),
    ("root", "/no/such/folder"), ("cgi_dir", "/no/such/folder"), ("templates", "/no/such/folder"),
    ("fleet_url", "prometheus:9090"), ("fleet_url", "javascript:alert(1)"), ("fleet_url", "http://"),
    ("fleet_url", "http://a b/"),
]
BY_NAME = {setting.name: setting for setting in SETTINGS}


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_bad_flag_values_name_the_flag(dirs, name, value):
    flags = {**base_flags(dirs), name: value}
    with pytest.raises(ConfigError) as info:
        load(flags, {})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{BY_NAME[name].flag} {value!r}: ") and len(message) > len(value) + 20


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, v in BAD_VALUES if v])  # "" is unset
def test_bad_environment_values_name_the_variable(dirs, name, value):
    root, cgi = dirs
    environ = {"CGIBOX_ROOT": str(root), "CGIBOX_CGI_DIR": str(cgi), BY_NAME[name].env: value}
    with pytest.raises(ConfigError) as info:
        load({}, environ)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{BY_NAME[name].env}={value!r}: ")


def test_the_issue_examples(dirs):
    with pytest.raises(ConfigError) as info:
        load(base_flags(dirs), {"CGIBOX_CGI_TIMEOUT": "abc"})
    assert str(info.value) == "CGIBOX_CGI_TIMEOUT='abc': not a number of seconds"
    with pytest.raises(ConfigError) as info:
        load({**base_flags(dirs), "cgi_timeout": "abc"}, {"CGIBOX_CGI_TIMEOUT": "5"})
    assert str(info.value) == "--cgi-timeout 'abc': not a number of seconds"
    with pytest.raises(ConfigError) as info:
        load(base_flags(dirs), {"CGIBOX_PORT": "eighty"})
    assert str(info.value) == "CGIBOX_PORT='eighty': not a port number from 0 to 65535"


def test_default_folders(tmp_path, monkeypatch):
    """./static if it is there, else the current folder; ./cgi-bin if it is there, else no
    scripts and a note; `none` says so without one."""
    monkeypatch.chdir(tmp_path)
    config = load({}, {})
    assert config.root == tmp_path.resolve()
    assert config.cgi_dir is None
    assert config.notes == ("cgibox: no ./cgi-bin here: no scripts; --cgi-dir DIR runs some",)
    assert load({"cgi_dir": "none"}, {}).notes == ()
    assert load({}, {"CGIBOX_CGI_DIR": "none"}).cgi_dir is None
    (tmp_path / "static").mkdir()
    (tmp_path / "cgi-bin").mkdir()
    config = load({}, {})
    assert config.root == (tmp_path / "static").resolve()
    assert config.cgi_dir == (tmp_path / "cgi-bin").resolve()
    assert config.notes == ()


def test_asked_for_folders_must_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="--cgi-dir 'absent': no such folder"):
        load({"cgi_dir": "absent"}, {})
    with pytest.raises(ConfigError, match="CGIBOX_ROOT='absent': no such folder"):
        load({}, {"CGIBOX_ROOT": "absent"})
    with pytest.raises(ConfigError, match="--cgi-dir '': an empty path"):
        load({"cgi_dir": ""}, {})


def test_root_that_is_a_file(dirs, tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(ConfigError) as info:
        load({**base_flags(dirs), "root": str(file)}, {})
    assert str(info.value) == f"--root {str(file)!r}: not a folder"


@pytest.mark.parametrize(("text", "expected"), [
    ("::1", "::1"), ("[::1]", "::1"), ("::", "::"), ("0.0.0.0", "0.0.0.0"), ("localhost", "localhost"),
])
def test_hosts(dirs, text, expected):
    assert load({**base_flags(dirs), "host": text}, {}).host == expected


def test_port_zero_is_allowed(dirs):
    assert load({**base_flags(dirs), "port": "0"}, {}).port == 0


# -- cli --------------------------------------------------------------------------------------------

def run_cli_parse(argv, environ, capsys):
    with pytest.raises(SystemExit) as info:
        cli.parse_config(argv, environ)
    err = capsys.readouterr().err
    return info.value.code, err


@pytest.mark.parametrize("argv", [
    ["--no-such-flag"],
    ["--port"],
    ["--port", "x"],
    ["--root", "/no/such/folder"],
    ["--front", "nope"],
    ["stray-positional"],
    ["--por", "9000"],  # an abbreviation is not a flag of the contract
])
def test_cli_errors_are_one_line_and_status_2(argv, dirs, capsys):
    root, cgi = dirs
    code, err = run_cli_parse(["--root", str(root), "--cgi-dir", str(cgi), *argv], {}, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("cgibox: ")


def test_cli_names_the_flag_or_variable(dirs, capsys):
    root, cgi = dirs
    code, err = run_cli_parse(["--root", str(root), "--cgi-dir", str(cgi)], {"CGIBOX_THREADS": "0"}, capsys)
    assert code == 2 and err == "cgibox: CGIBOX_THREADS='0': must be 1 or more\n"
    code, err = run_cli_parse(["--root", str(root), "--cgi-dir", str(cgi), "--threads", "many"],
                              {"CGIBOX_THREADS": "0"}, capsys)
    assert code == 2 and err == "cgibox: --threads 'many': not a whole number\n"


def test_cli_flags_and_env(dirs):
    root, cgi = dirs
    resolved = cli.parse_config(["--root", str(root), "--cgi-dir", str(cgi), "--port", "0"],
                                {"CGIBOX_PORT": "1234", "CGIBOX_MAX_BODY": "77"})
    assert resolved.port == 0 and resolved.max_body == 77


def test_startup_line():
    resolved = Config(root=Path("/srv/www"), front="forking")
    assert cli.startup_line(resolved, 8123) == \
        f"cgibox {cli.__version__} (forking) serving /srv/www on http://127.0.0.1:8123/"
    assert cli.url_for("::1", 80) == "http://[::1]:80/"
    assert cli.url_for("0.0.0.0", 80) == "http://0.0.0.0:80/"


def test_help_shows_each_settings_one_description(capsys, monkeypatch):
    """--help says what README's table says (the same help text), with the default and variable."""
    monkeypatch.setenv("COLUMNS", "1000")  # one line per flag, so the text is not wrapped
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for setting in config.SETTINGS:
        assert setting.flag in out and setting.env in out
        assert cli.help_line(setting) in out
    assert "`" not in out  # README's Markdown code marks stay in README
    threads = next(line for line in out.splitlines() if line.lstrip().startswith("--threads"))
    assert "requests handled at once per process (handler threads, forked children, gthread threads)" \
        in threads
    assert "[default: 64; env CGIBOX_THREADS]" in threads


def test_no_readme_is_a_switch(dirs):
    root, cgi = dirs
    assert load(base_flags(dirs), {}).no_readme is False
    for value, expected in (("1", True), ("true", True), ("yes", True), ("0", False), ("off", False)):
        assert load(base_flags(dirs), {"CGIBOX_NO_README": value}).no_readme is expected
    with pytest.raises(ConfigError, match="NO_README"):
        load(base_flags(dirs), {"CGIBOX_NO_README": "maybe"})
    args = ["--root", str(root), "--cgi-dir", str(cgi)]
    assert cli.parse_config([*args, "--no-readme"], {}).no_readme is True
    assert cli.parse_config(args, {"CGIBOX_NO_README": "1"}).no_readme is True
    assert cli.parse_config([*args, "--no-readme"], {"CGIBOX_NO_README": "0"}).no_readme is True  # flag wins


def test_fleet_url_from_the_environment(dirs):
    assert load(base_flags(dirs), {}).fleet_url is None
    url = "https://grafana.example/d/cgibox?var-job=cgibox"
    assert load(base_flags(dirs), {"CGIBOX_FLEET_URL": url}).fleet_url == url


@pytest.mark.parametrize(("cpu_max", "cap"), [
    ("max 100000\n", None),  # no quota: the affinity mask alone
    ("100000 100000\n", 1),
    ("50000 100000\n", 1),  # half a CPU is still one to run on
    ("150000 100000\n", 2),
    ("not numbers\n", None),
    (None, None),  # no cgroup v2 file (cgroup v1, not Linux, not in a container)
])
def test_usable_cpus_honour_the_affinity_mask_and_the_cgroup_quota(tmp_path, cpu_max, cap):
    """Per-CPU defaults used os.cpu_count(): the node's CPUs, not the pod's limit."""
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    allowed = len(os.sched_getaffinity(0))
    assert usable_cpus(str(path)) == (allowed if cap is None else min(allowed, cap))


def test_usable_cpus_follow_the_affinity_mask():
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        pytest.skip("one CPU only: no smaller affinity mask to set")
    code = (f"import os; os.sched_setaffinity(0, {{{min(allowed)}}}); "
            "from cgibox.config import usable_cpus, default_cgi_max; print(usable_cpus(), default_cgi_max())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["1", "4"], done.stderr
