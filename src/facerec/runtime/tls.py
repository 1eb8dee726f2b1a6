"""TLS for facerec's servers and for the calls between facerec services; plaintext when nothing is set.

Server side (every service): ``TLS_CERT_FILE`` and ``TLS_KEY_FILE`` make the server speak TLS only;
``TLS_CLIENT_CA_FILE`` adds mutual TLS (a client certificate signed by that CA is required). The three files are
watched, not read once: gRPC asks :class:`ServerCertificates` for its configuration at each new connection's
handshake, which answers "unchanged" until a file's identity (inode, size, modification time) changes, then
loads and checks the new files. So a rotated certificate (cert-manager renewing a Kubernetes Secret, whose files
are swapped by a symlink) is served by the next connection, without a restart; connections already open keep
the certificate they were made with, until the server's maximum connection age closes them. A half-written
rotation (the new certificate next to the old key) is checked before use and skipped: the server keeps serving
the previous pair until the files agree again.

Outbound (the gateway's channels to the embedder and the registry): ``TLS_CA_FILE`` makes them TLS, trusting
that bundle; ``TLS_CLIENT_CERT_FILE`` and ``TLS_CLIENT_KEY_FILE`` are the certificate presented for mutual TLS.
gRPC Python's channel credentials are fixed once made, so these files are read at start-up: a rotated client
certificate takes effect at the next (rolling) restart; the old one stays valid in the meantime.

Every setting is checked at start-up: a certificate without its key, a key that is not the certificate's, a
file that cannot be read or holds no PEM certificate fail with :class:`facerec.tls_files.TlsFileError` naming
the environment variable.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc

from facerec.runtime.settings import ServiceSettings, env_name
from facerec.tls_files import PemFile, TlsFileError, check_ca_bundle, check_key_pair, optional_pem, require_pair

log = logging.getLogger("facerec.tls")

# What identifies a version of a file: a replaced file (new inode) or a rewritten one (new size or time).
FileVersion = tuple[int, int, int, int]


def _pem(settings: ServiceSettings, field: str) -> PemFile | None:
    value: Path | None = getattr(settings, field)
    return optional_pem(env_name(type(settings), field), value)


def _version(pem: PemFile) -> FileVersion | None:
    try:
        stat = pem.path.stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class _Loaded:
    configuration: grpc.ServerCertificateConfiguration
    versions: tuple[FileVersion | None, ...]


class ServerCertificates:
    """The server's certificate, key and (for mutual TLS) client CA, re-read when one of the files changes.

    Calling the object is gRPC's certificate-configuration fetcher: a new configuration when the files changed
    (and are usable), ``None`` ("keep the current one") otherwise.
    """

    def __init__(self, cert: PemFile, key: PemFile, client_ca: PemFile | None) -> None:
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self._lock = threading.Lock()  # handshakes run on gRPC's threads
        loaded = None
        while loaded is None:  # a file replaced while it was read is read again
            loaded = self._load()
        self.initial = loaded.configuration
        self._seen = loaded.versions

    @property
    def files(self) -> tuple[PemFile, ...]:
        return (self.cert, self.key) if self.client_ca is None else (self.cert, self.key, self.client_ca)

    def _versions(self) -> tuple[FileVersion | None, ...]:
        return tuple(_version(pem) for pem in self.files)

    def _load(self) -> _Loaded | None:
        """The files' configuration, checked; None when a file changed while it was read (read it next time)."""
        before = self._versions()
        cert_chain, key = check_key_pair(self.cert, self.key)
        roots = check_ca_bundle(self.client_ca) if self.client_ca is not None else None
        if self._versions() != before:
            return None
        configuration = grpc.ssl_server_certificate_configuration([(key, cert_chain)], root_certificates=roots)
        return _Loaded(configuration, before)

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            versions = self._versions()
            if versions == self._seen:
                return None
            try:
                loaded = self._load()
            except TlsFileError as error:
                self._seen = versions  # said once per version of the files, not at every handshake
                log.warning("TLS files changed but cannot be used; still serving the previous ones: %s", error)
                return None
            if loaded is None:
                return None
            self._seen = loaded.versions
        log.info("TLS certificate reloaded from %s", self.cert.path)
        return loaded.configuration


def server_certificates(settings: ServiceSettings) -> ServerCertificates | None:
    """The server's certificates per the settings; None: serve plaintext. Raises :class:`TlsFileError`."""
    cert, key = _pem(settings, "tls_cert_file"), _pem(settings, "tls_key_file")
    client_ca = _pem(settings, "tls_client_ca_file")
    names = type(settings)
    require_pair(cert, key, env_name(names, "tls_cert_file"), env_name(names, "tls_key_file"))
    if cert is None or key is None:
        if client_ca is not None:
            raise TlsFileError(
                f"{env_name(names, 'tls_client_ca_file')} is set but {env_name(names, 'tls_cert_file')} and "
                f"{env_name(names, 'tls_key_file')} are not: mutual TLS needs the server's own certificate"
            )
        return None
    return ServerCertificates(cert, key, client_ca)


def server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    """Credentials for ``add_secure_port``, reloading the files as they change; None: serve plaintext."""
    certificates = server_certificates(settings)
    if certificates is None:
        return None
    # gRPC documents that the fetcher may return None ("unchanged"); its type stubs leave None out.
    fetcher = cast("Callable[[], grpc.ServerCertificateConfiguration]", certificates)
    return grpc.dynamic_ssl_server_credentials(
        certificates.initial, fetcher, require_client_authentication=certificates.client_ca is not None
    )


def channel_credentials(settings: ServiceSettings) -> grpc.ChannelCredentials | None:
    """Credentials of the channels to other facerec services; None: plaintext. Raises :class:`TlsFileError`."""
    names = type(settings)
    ca = _pem(settings, "tls_ca_file")
    cert, key = _pem(settings, "tls_client_cert_file"), _pem(settings, "tls_client_key_file")
    require_pair(cert, key, env_name(names, "tls_client_cert_file"), env_name(names, "tls_client_key_file"))
    if ca is None:
        if cert is not None:
            raise TlsFileError(
                f"{env_name(names, 'tls_client_cert_file')} is set but {env_name(names, 'tls_ca_file')} is not: "
                "outbound TLS needs the CA bundle that signed the other services' certificates"
            )
        return None
    roots = check_ca_bundle(ca)
    if cert is None or key is None:
        return grpc.ssl_channel_credentials(root_certificates=roots)
    cert_chain, private_key = check_key_pair(cert, key)
    return grpc.ssl_channel_credentials(root_certificates=roots, private_key=private_key, certificate_chain=cert_chain)


def describe(settings: ServiceSettings) -> str:
    """How the server speaks, for its start-up log line: plaintext, TLS or mutual TLS."""
    if not settings.tls_cert_file:
        return "plaintext"
    return "mutual TLS" if settings.tls_client_ca_file else "TLS"
