"""What a refused connection says about TLS, turned into the one sentence a CLI user needs.

gRPC reports every handshake failure as UNAVAILABLE with OpenSSL's words (``CERTIFICATE_VERIFY_FAILED``,
``WRONG_VERSION_NUMBER``) or none at all: a server that requires TLS, or a client certificate, closes a
connection that does not bring one, and the client only sees "Socket closed". The hint names the flag to use.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientTls:
    """The TLS flags a command was given (``--tls``, ``--ca-file``, ``--client-cert``)."""

    tls: bool
    ca_file: str | None
    client_cert: str | None

    @property
    def on(self) -> bool:
        return bool(self.tls or self.ca_file or self.client_cert)


def tls_hint(message: str, flags: ClientTls) -> str | None:
    """A hint for a connection that failed with ``message``, or None when the failure is not about TLS."""
    if "CERTIFICATE_VERIFY_FAILED" in message:
        trusted = f"the CA bundle {flags.ca_file}" if flags.ca_file else "the system trust store"
        return (
            f"TLS: the server's certificate is not signed by a CA of {trusted}: "
            "pass --ca-file with the CA that signed it (env FACEREC_CA_FILE)"
        )
    if "Hostname Verification" in message:
        return "TLS: the server's certificate does not name the address dialled: use a name the certificate holds"
    if "WRONG_VERSION_NUMBER" in message:
        return "TLS: the server does not speak TLS: leave out --tls and --ca-file (env FACEREC_TLS, FACEREC_CA_FILE)"
    if "Socket closed" not in message:
        return None
    if not flags.on:
        return "the server closed the connection at once: if it serves TLS, pass --tls or --ca-file"
    if flags.client_cert is None:
        return (
            "TLS: the server closed the connection during the handshake: if it requires a client certificate "
            "(mutual TLS), pass --client-cert and --client-key"
        )
    return "TLS: the server closed the connection during the handshake: is --client-cert signed by a CA it trusts?"
