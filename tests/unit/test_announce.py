"""What start-up says (cgibox.announce, startup warnings, the CLI's "did you mean"): issue 24 A2,
A3 and A6, without binding anything but loopback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cgibox import announce, cli
from cgibox.config import Config
from cgibox.startup import check
from tests.servers import STARTUP

LAN = ["192.168.1.20", "10.8.0.3"]


@pytest.fixture
def lan(monkeypatch):
    monkeypatch.setattr(announce, "ipv4_addresses", lambda: list(LAN))
    monkeypatch.setattr(announce, "ipv6_addresses", lambda: ["2001:db8::5"])
    monkeypatch.setattr(announce, "in_container", lambda: False)


def test_bound_to_every_address_the_line_shows_a_lan_url_not_0_0_0_0(lan):
    config = Config(host="0.0.0.0", root=Path("/srv/www"))
    line = announce.startup_line(config, 8000)
    assert line == f"cgibox {cli.__version__} (threading) serving /srv/www on http://192.168.1.20:8000/"
    assert STARTUP.match(line) and "0.0.0.0" not in line  # the format scripts parse is kept
    assert announce.notes(config, 8000) == ["  also on http://10.8.0.3:8000/",
                                            "  also on http://127.0.0.1:8000/ (this machine only)"]


def test_ipv6_wildcard_adds_global_ipv6_urls_and_tls_says_https(lan, tmp_path):
    config = Config(host="::", tls_cert=tmp_path / "c.pem")
    assert announce.reachable_urls(config, 443) == [
        "https://192.168.1.20:443/", "https://10.8.0.3:443/", "https://[2001:db8::5]:443/",
        "https://127.0.0.1:443/"]


def test_a_machine_without_a_lan_shows_loopback(monkeypatch):
    monkeypatch.setattr(announce, "ipv4_addresses", lambda: [])
    monkeypatch.setattr(announce, "in_container", lambda: False)
    config = Config(host="0.0.0.0")
    assert announce.startup_line(config, 80).endswith(" on http://127.0.0.1:80/")
    assert announce.notes(config, 80) == []


def test_one_address_is_shown_as_it_is(lan):
    config = Config(host="127.0.0.1")
    assert announce.startup_line(config, 8123).endswith(" on http://127.0.0.1:8123/")
    assert announce.notes(config, 8123) == []
    assert announce.url_for("::1", 80) == "http://[::1]:80/"


def test_in_a_container_the_port_is_said_to_be_the_containers(lan, monkeypatch):
    monkeypatch.setattr(announce, "in_container", lambda: True)
    notes = announce.notes(Config(host="0.0.0.0"), 8000)
    assert "8000 is the container's port" in notes[-1] and "CGIBOX_PUBLISH_PORT" in notes[-1]
    assert not any("127.0.0.1" in line for line in notes)  # the container's own loopback: no use
    (warning,) = [line for line in check(Config(host="0.0.0.0")) if "auth-file" in line]
    assert "the port this container is published on" in warning


def test_the_machines_own_addresses_are_found_without_loopback():
    for address in announce.ipv4_addresses():
        assert not address.startswith("127.") and re.fullmatch(r"\d+\.\d+\.\d+\.\d+", address)


def test_qr_prints_a_code_of_the_first_url(lan, capfd):
    announce.announce(Config(host="0.0.0.0", qr=True), 8000)
    out, err = capfd.readouterr()
    assert out == f"cgibox {cli.__version__} (threading) serving static on http://192.168.1.20:8000/\n"
    code = [line for line in err.splitlines() if "█" in line or "▀" in line]
    assert len(code) >= 10 and len({len(line) for line in code}) == 1  # a square of block characters
    announce.announce(Config(host="0.0.0.0"), 8000)
    assert "█" not in capfd.readouterr().err  # only with --qr


def test_qr_is_a_switch():
    assert cli.parse_config(["--qr"], {}).qr is True
    assert cli.parse_config([], {"CGIBOX_QR": "1"}).qr is True
    assert cli.parse_config([], {}).qr is False


# -- A3: open to the network without logins ------------------------------------------------------

def test_open_to_the_network_without_logins_is_one_warning_line(monkeypatch):
    monkeypatch.setattr(announce, "in_container", lambda: False)
    assert [line for line in check(Config()) if "open to the network" in line] == []
    exposed = [line for line in check(Config(host="0.0.0.0")) if "open to the network" in line]
    assert len(exposed) == 1 and "without --auth-file" in exposed[0]


def test_writes_open_to_the_network_get_the_stronger_warning(monkeypatch):
    monkeypatch.setattr(announce, "in_container", lambda: False)
    lines = [line for line in check(Config(host="0.0.0.0", write=("/up/*",))) if "auth-file" in line]
    assert len(lines) == 1 and lines[0].startswith("cgibox: WARNING: --write without --auth-file")
    assert not [line for line in check(Config(write=("/up/*",))) if "auth-file" in line]  # loopback


def test_an_unreadable_root_is_warned_at_start(tmp_path, monkeypatch):
    import os

    monkeypatch.setattr(os, "access", lambda path, mode: False)
    lines = check(Config(root=tmp_path))
    assert any("is not readable by this user" in line for line in lines)


# -- A6: a mistyped flag -------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "meant"), [
    (["--prot", "80"], "--port"), (["--compress-file"], "--compress-files"),
    (["--cgi_dir", "x"], "--cgi-dir"),
    (["--hots", "::"], "--host"), (["--tls-crt", "x"], "--tls-cert"),
])
def test_a_mistyped_flag_gets_did_you_mean(capsys, typed, meant):
    with pytest.raises(SystemExit) as stopped:
        cli.parse_config(typed, {})
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith(f"(did you mean {meant}?)\n")


def test_nothing_close_gets_no_guess(capsys):
    with pytest.raises(SystemExit):
        cli.parse_config(["--zzz"], {})
    assert "did you mean" not in capsys.readouterr().err


def test_a_root_behind_a_folder_the_user_cannot_enter_is_one_line(capsys, monkeypatch, tmp_path):
    """Was a PermissionError traceback from the config loader (a 0700 folder above the root)."""
    real_stat = Path.stat

    def stat(self, *args, **kwargs):
        if self == tmp_path / "locked" / "www":
            raise PermissionError(13, "Permission denied")
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    with pytest.raises(SystemExit) as stopped:
        cli.parse_config([str(tmp_path / "locked" / "www")], {})
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "permission denied" in err
