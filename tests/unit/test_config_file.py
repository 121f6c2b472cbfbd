"""--config FILE (TOML) and --cgi-mount: every setting by its flag name, [[cgi_mount]] tables,
flags and variables over the file, relative paths from the file's folder, and errors that name
the file, the key and what is wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cgibox.cgi_mounts import CgiMount
from cgibox.config import ConfigError, load


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "www").mkdir()
    (tmp_path / "scripts").mkdir()
    program = tmp_path / "app.cgi"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    return tmp_path


def write(site: Path, text: str) -> str:
    (site / "conf").mkdir(exist_ok=True)
    path = site / "conf" / "cgibox.toml"
    path.write_text(text)
    return str(path)


def test_settings_by_flag_name(site):
    path = write(site, '''
cgi_timeout = 60
compress-files = true
max_body = 1048576
public = ["/pub/*", "/stats"]
root = "../www"
cgi_dir = "none"
''')
    config = load({"config": path}, {})
    assert config.cgi_timeout == 60.0 and config.compress_files and config.max_body == 1048576
    assert config.public == ("/pub/*", "/stats")
    assert config.root == (site / "www").resolve()  # from the file's folder
    assert config.cgi_dir is None and config.config == Path(path).resolve()


def test_flags_and_variables_win(site):
    path = write(site, 'cgi_timeout = 60\nport = 9000\npublic = ["/a/*"]\n')
    config = load({"config": path, "cgi_timeout": "5", "cgi_dir": "none"}, {"CGIBOX_PUBLIC": "/b/*"})
    assert config.cgi_timeout == 5.0 and config.port == 9000 and config.public == ("/b/*",)
    assert load({}, {"CGIBOX_CONFIG": path, "CGIBOX_PORT": "1"}).port == 1


def test_mount_tables(site):
    path = write(site, f'''
[[cgi_mount]]
path = "/git/"
program = "{site / "app.cgi"}"
env = {{ GIT_PROJECT_ROOT = "/srv/git", GIT_HTTP_EXPORT_ALL = "" }}
max_body = 1073741824
timeout = 120

[[cgi_mount]]
path = "/tools"
dir = "../scripts"
''')
    config = load({"config": path}, {})
    git, tools = config.cgi_mount
    assert git == CgiMount("/git", site / "app.cgi", None,
                           (("GIT_PROJECT_ROOT", "/srv/git"), ("GIT_HTTP_EXPORT_ALL", "")),
                           1073741824, 120.0)
    assert tools == CgiMount("/tools", None, (site / "scripts").resolve())
    # a flag's mount at the same path wins; others add to the file's
    config = load({"config": path, "cgi_mount": ["/tools=app.cgi", "/x=scripts"]}, {})
    assert [(m.path, m.program is not None) for m in config.cgi_mount] == [
        ("/git", True), ("/tools", True), ("/x", False)]


def test_mount_flags(site):
    (site / "link.cgi").symlink_to(site / "app.cgi")
    config = load({"cgi_mount": ["/app=link.cgi", "/s/=scripts"], "cgi_dir": "none"}, {})
    assert config.cgi_mount == (CgiMount("/app", site / "link.cgi"),
                                CgiMount("/s", None, (site / "scripts").resolve()))
    assert load({}, {"CGIBOX_CGI_MOUNT": "/a=app.cgi\n/b=scripts", "CGIBOX_CGI_DIR": "none"}) \
        .cgi_mount[1].path == "/b"


@pytest.mark.parametrize(("value", "message"), [
    ("app", "expected URLPATH=PROGRAM or URLPATH=DIR"),
    ("app=app.cgi", "a URL path starts with '/'"),
    ("/a/../b=app.cgi", "no '.' or '..'"),
    ("/a=", "an empty path"),
    ("/a=missing", "missing: no such program or folder"),
    ("/a=www/../conf-none", "no such program or folder"),
])
def test_bad_mount_flags(site, value, message):
    with pytest.raises(ConfigError) as info:
        load({"cgi_mount": [value], "cgi_dir": "none"}, {})
    assert str(info.value).startswith("--cgi-mount: ") and message in str(info.value)


def test_a_program_must_be_executable(site):
    (site / "plain").write_text("x")
    with pytest.raises(ConfigError, match=r"plain: not executable \(chmod \+x\)"):
        load({"cgi_mount": ["/a=plain"]}, {})
    with pytest.raises(ConfigError, match="mounted twice"):
        load({"cgi_mount": ["/a=app.cgi", "/a/=scripts"]}, {})


@pytest.mark.parametrize(("text", "message"), [
    ('cgi_timeout = "abc"', "cgibox.toml: cgi_timeout = 'abc': not a number of seconds"),
    ("cgi_timout = 5", "cgibox.toml: unknown key 'cgi_timout' (did you mean cgi_timeout?)"),
    ("port = [1, 2]", "cgibox.toml: port: one value, not a list"),
    ("port = true", "cgibox.toml: port = true: not a switch"),
    ("x = [", "cgibox.toml: not valid TOML"),
    ('config = "other.toml"', "cgibox.toml: config: a config file cannot name another"),
    ('public = "pub"', "cgibox.toml: public: a URL-path glob starts with '/'"),
    ('[[cgi_mount]]\npath = "/a"', "cgibox.toml: cgi_mount[1]: needs one of program"),
    ('[[cgi_mount]]\npath = "/a"\ndir = "../www"\nmax_body = "big"', "cgi_mount[1]: max_body is"),
    ('[[cgi_mount]]\npath = "/a"\ndir = "../www"\nenv = { PATH_INFO = "x" }', "env.PATH_INFO: "),
    ('[[cgi_mount]]\npath = "/a"\ndir = "../www"\ntimout = 5', "cgi_mount[1]: unknown key 'timout'"),
    ('[[cgi_mount]]\npath = "/a"\nprogram = "../www"', "program = '../www' is a folder"),
])
def test_errors_name_the_file_and_key(site, text, message):
    path = write(site, text)
    with pytest.raises(ConfigError) as info:
        load({"config": path}, {})
    assert message in str(info.value)
    assert str(info.value).startswith(path) or str(info.value).startswith(os.path.realpath(path))


def test_a_missing_config_file(site):
    with pytest.raises(ConfigError, match="--config 'nope.toml': no such file"):
        load({"config": "nope.toml"}, {})
