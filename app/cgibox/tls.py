"""The TLS server context every front shares: the standard library's server defaults, TLS 1.2
or newer, ALPN http/1.1, the --tls-cert / --tls-key pair loaded (and so checked) at start-up."""

from __future__ import annotations

import ssl
from pathlib import Path

# a handshake that failed: nothing can be said in a TLS session that never started
HANDSHAKE_FAILED_LOG = "cgibox: TLS handshake with {peer} failed: {reason}"


class TLSError(ValueError):
    """The certificate or key cannot be used; the message is one line for the operator."""


def server_context(cert: Path | str, key: Path | str) -> ssl.SSLContext:
    """An SSLContext for serving HTTPS with `cert` (PEM, chain allowed) and its `key` (PEM)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except ssl.SSLError as error:
        raise TLSError(f"--tls-cert {cert} / --tls-key {key} cannot be used: "
                       f"{error.reason or error}") from None
    except OSError as error:
        raise TLSError(f"cannot read {error.filename or cert}: {error.strerror or error}") from None
    return context
