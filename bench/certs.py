"""The TLS cells' certificate: a self-signed pair made for the run with openssl, as `make cert`
makes it (P-256, localhost and 127.0.0.1), and the client context that trusts it (for the probes;
wrk does not verify certificates)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsPair:
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


def make_pair(folder: Path) -> TlsPair:
    """Write cert.pem and key.pem into `folder`; OSError with the reason when openssl cannot."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise OSError("openssl is not installed (apt-get install openssl)")
    folder.mkdir(parents=True, exist_ok=True)
    pair = TlsPair(folder / "cert.pem", folder / "key.pem")
    command = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
               "-nodes", "-days", "2", "-subj", "/CN=localhost",
               "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
               "-keyout", str(pair.key), "-out", str(pair.cert)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise OSError("openssl did not make the certificate within 30 s") from None
    if done.returncode != 0:
        raise OSError(f"openssl exited {done.returncode}: {done.stderr.strip()[-200:]}")
    # the servers read it whoever they run as (http.server-style privilege drops, nginx workers)
    pair.key.chmod(0o644)
    pair.cert.chmod(0o644)
    return pair
