"""Certificate authorities made at test time with the ``openssl`` command line (nothing is committed).

Every certificate is ECDSA P-256 (made in milliseconds) and valid for a day. A server certificate names
``localhost`` and ``127.0.0.1``, so clients verify it against the address they dial without any name override;
client certificates carry the ``clientAuth`` usage that mutual TLS checks.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

OPENSSL = shutil.which("openssl")


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


def _openssl(*args: str | Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *map(str, args)], check=True, capture_output=True, timeout=30)


class CertificateAuthority:
    """A self-signed CA in ``folder``, issuing server and client certificates next to it."""

    def __init__(self, folder: Path, name: str) -> None:
        if OPENSSL is None:
            pytest.skip("the openssl command line is not installed: the TLS tests make their certificates with it")
        self.folder = folder
        self.name = name
        folder.mkdir(parents=True, exist_ok=True)
        self.cert = folder / f"{name}-ca.pem"
        self.key = folder / f"{name}-ca.key"
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", self.key, "-out", self.cert, "-days", "1", "-subj", f"/CN=facerec test CA {name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    def issue(self, name: str, *, server: bool = True, client: bool = False) -> Issued:
        """A certificate for ``localhost`` / ``127.0.0.1`` with the usages asked for, signed by this CA."""
        cert, key = self.folder / f"{name}.pem", self.folder / f"{name}.key"
        request, extensions = self.folder / f"{name}.csr", self.folder / f"{name}.ext"
        usages = ",".join(u for u, wanted in (("serverAuth", server), ("clientAuth", client)) if wanted)
        extensions.write_text(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
            f"keyUsage=critical,digitalSignature\nextendedKeyUsage={usages}\n"
        )
        _openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", request, "-subj", f"/CN={name}",
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", request, "-CA", self.cert, "-CAkey", self.key, "-days", "1",
            "-set_serial", str(secrets.randbits(63)), "-extfile", extensions, "-out", cert,
        )  # fmt: skip
        return Issued(cert, key)


def serial_number(cert: Path) -> str:
    """The certificate's serial number as openssl prints it (hex), to tell two certificates apart."""
    assert OPENSSL is not None
    result = subprocess.run(
        [OPENSSL, "x509", "-in", str(cert), "-noout", "-serial"], check=True, capture_output=True, text=True
    )
    return result.stdout.strip().partition("=")[2]
