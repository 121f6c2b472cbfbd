"""What start-up says about where the server is reachable: the one start-up line (stdout, the
format tests and scripts parse), then on stderr the machine's other URLs when it is bound to every
address, a QR code of the first with --qr, and in a container which port that is."""

from __future__ import annotations

import io
import ipaddress
import os
import socket
import struct
import sys

from cgibox import __version__
from cgibox.config import Config

WILDCARDS = ("0.0.0.0", "::", "")
SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address
# files whose presence says "inside a container" (Docker, Podman); systemd's `container` variable
CONTAINER_MARKS = ("/.dockerenv", "/run/.containerenv")


def url_for(host: str, port: int, tls: bool = False) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}/"


def ipv4_addresses() -> list[str]:
    """The machine's IPv4 addresses but loopback and link-local, the one with the default route first."""
    found: list[str] = []
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        names = []
    try:
        import fcntl

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            for name in names:
                try:
                    packed = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
                except OSError:
                    continue  # no IPv4 address on this interface
                found.append(socket.inet_ntoa(packed[20:24]))
    except (ImportError, OSError):
        pass
    usable = [a for a in found if not ipaddress.ip_address(a).is_loopback
              and not ipaddress.ip_address(a).is_link_local]
    primary = _default_route_address()
    if primary in usable:
        usable.remove(primary)
        usable.insert(0, primary)
    return list(dict.fromkeys(usable))


def _default_route_address() -> str | None:
    """The address this machine would send from to the wider network (a UDP connect sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never answered, only routed
            address: str = probe.getsockname()[0]
            return address
    except OSError:
        return None


def ipv6_addresses() -> list[str]:
    """Global IPv6 addresses (from /proc/net/if_inet6), for a server bound to `::`."""
    found = []
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as table:
            for line in table:
                fields = line.split()
                if len(fields) >= 4 and fields[3] == "00":  # scope: global
                    found.append(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    except (OSError, ValueError):
        pass
    return [a for a in found if not ipaddress.ip_address(a).is_loopback]


def reachable_urls(config: Config, port: int) -> list[str]:
    """Where people reach the server: its own address, or, bound to every address, the machine's
    LAN addresses (then this machine's loopback, last)."""
    tls = config.tls_cert is not None
    if config.host not in WILDCARDS:
        return [url_for(config.host, port, tls)]
    addresses = ipv4_addresses()
    if config.host == "::":
        addresses += ipv6_addresses()
    return [url_for(a, port, tls) for a in addresses] + [url_for("127.0.0.1", port, tls)]


def in_container() -> bool:
    return bool(os.environ.get("container")) or any(os.path.exists(mark) for mark in CONTAINER_MARKS)


def startup_line(config: Config, port: int) -> str:
    """The one start-up line: version, front, folder and the first URL people can use."""
    return f"cgibox {__version__} ({config.front}) serving {config.root} on {reachable_urls(config, port)[0]}"


def notes(config: Config, port: int) -> list[str]:
    """The lines after the start-up line: other URLs, the container's port."""
    container = in_container()
    lines = [f"  also on {url}" + (" (this machine only)" if "127.0.0.1" in url else "")
             for url in reachable_urls(config, port)[1:]
             if not (container and "127.0.0.1" in url)]  # a container's loopback is its own
    if container:
        lines.append(f"  (in a container: {port} is the container's port; from outside use the port it is "
                     "published on, e.g. compose's CGIBOX_PUBLISH_PORT, 8000 unless set)")
    return lines


def qr_code(url: str) -> str:
    """`url` as a QR code drawn with block characters (two rows per line), quiet zone included."""
    import segno

    drawn = io.StringIO()
    segno.make(url, error="l").terminal(out=drawn, compact=True, border=2)
    return drawn.getvalue()


def announce(config: Config, port: int) -> None:
    """Print the start-up line on stdout, then the notes (and the QR code with --qr) on stderr."""
    print(startup_line(config, port), flush=True)
    extra = notes(config, port)
    if config.qr:
        extra.append(qr_code(reachable_urls(config, port)[0]).rstrip("\n"))
    if extra:
        data = ("\n".join(extra) + "\n").encode("utf-8", "replace")
        try:
            os.write(sys.stderr.fileno(), data)
        except (OSError, ValueError):
            pass
