"""PEM files for TLS: read them and check that they can be used, with messages naming what set them.

Shared by the SDK (a client's CA bundle and certificate) and the services (``facerec.runtime.tls``). gRPC itself
reports a bad file late and vaguely: a certificate that does not match its key, or a CA file holding no
certificate, only shows as failed handshakes once calls are made. Python's ``ssl`` module parses the same PEM
files, so each file is checked when it is configured, and the error names the setting or parameter that points
at it (``FACEREC_GATEWAY_TLS_KEY_FILE``, ``client_key_file``).

:class:`TlsFileError` is an ``OSError``, as ``ssl.SSLError`` is: a local file that cannot be used.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path


class TlsFileError(OSError):
    """A TLS file is missing its pair, cannot be read, or does not hold what it should."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class PemFile:
    """A PEM file and the name of what points at it (a setting or a parameter), for messages."""

    name: str
    path: Path

    def describe(self) -> str:
        return f"{self.name} ({self.path})"

    def read(self) -> bytes:
        """The file's bytes; :class:`TlsFileError` naming the setting when it cannot be read."""
        try:
            return self.path.read_bytes()
        except OSError as error:
            raise TlsFileError(f"{self.describe()} cannot be read: {error.strerror or error}") from error


def optional_pem(name: str, path: str | os.PathLike[str] | None) -> PemFile | None:
    """A :class:`PemFile` for a setting that may be unset (None or empty)."""
    return PemFile(name, Path(path)) if path else None


def require_pair(first: PemFile | None, second: PemFile | None, first_name: str, second_name: str) -> None:
    """Both or neither: a certificate without its key (or the reverse) is a half-made configuration."""
    if (first is None) != (second is None):
        given, missing = (first_name, second_name) if first is not None else (second_name, first_name)
        raise TlsFileError(f"{given} is set but {missing} is not: a certificate and its private key go together")


def check_ca_bundle(bundle: PemFile) -> bytes:
    """The bundle's bytes, once they are known to hold at least one PEM certificate."""
    return _certificates(bundle, "CA certificate")


def check_key_pair(cert: PemFile, key: PemFile) -> tuple[bytes, bytes]:
    """The certificate chain's and the key's bytes, once the key is known to be the certificate's own."""
    cert_bytes, key_bytes = _certificates(cert, "certificate"), key.read()
    try:
        # No password: gRPC cannot use an encrypted key; an empty one makes OpenSSL fail instead of prompting.
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert.path, key.path, password=lambda: b"")
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            raise TlsFileError(f"{key.describe()} is not the private key of {cert.describe()}") from error
        raise TlsFileError(f"{key.describe()} holds no unencrypted PEM private key") from error
    return cert_bytes, key_bytes


def _certificates(pem: PemFile, what: str) -> bytes:
    data = pem.read()
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=data.decode("ascii"))
    except (ssl.SSLError, ValueError) as error:  # ValueError: empty, or not ASCII (UnicodeDecodeError)
        raise TlsFileError(f"{pem.describe()} holds no PEM {what}") from error
    return data
