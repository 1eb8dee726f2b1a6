"""A tiny authoritative DNS server on loopback UDP, so that one gRPC target name can stand for several replicas.

gRPC's c-ares resolver honours a target's authority as the DNS server to ask
(``dns://127.0.0.1:<port>/replicas.test:50052``), and Linux routes all of 127.0.0.0/8 to the loopback
interface, so replicas can listen on 127.0.0.1, 127.0.0.2, ... on one port: this server answers A queries for
its names with a list of those addresses that the test changes while clients run (a Kubernetes headless
Service's DNS record as pods come and go). Every other question gets an empty answer (AAAA, TXT) or NXDOMAIN
(other names). Standard library only; answers have TTL 0.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterable
from types import TracebackType

_A, _IN = 1, 1
_RESPONSE, _AUTHORITATIVE, _RECURSION_WANTED = 0x8000, 0x0400, 0x0100
_NXDOMAIN = 3
_NAME_POINTER = 0xC00C  # the answer's name: the question's, 12 bytes into the message


class LoopbackDns:
    """Answers A queries for the names it holds with their current addresses, on ``127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self._records: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port = int(self._socket.getsockname()[1])
        self.queries: list[tuple[str, int]] = []
        self._running = True
        self._thread = threading.Thread(target=self._serve, name="loopback-dns", daemon=True)
        self._thread.start()

    def target(self, name: str, port: int) -> str:
        """The gRPC target that resolves ``name`` through this server."""
        return f"dns://127.0.0.1:{self.port}/{name}:{port}"

    def set(self, name: str, addresses: Iterable[str]) -> None:
        """From now on, ``name`` resolves to ``addresses`` (IPv4, in this order)."""
        with self._lock:
            self._records[name.lower().rstrip(".")] = tuple(addresses)

    def addresses(self, name: str) -> tuple[str, ...]:
        with self._lock:
            return self._records.get(name.lower().rstrip("."), ())

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2)
        self._socket.close()

    def __enter__(self) -> LoopbackDns:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _serve(self) -> None:
        while self._running:
            try:
                query, client = self._socket.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            answer = self._answer(query)
            if answer is not None:
                self._socket.sendto(answer, client)

    def _answer(self, query: bytes) -> bytes | None:
        if len(query) < 12:
            return None
        ident, flags, questions = struct.unpack("!HHH", query[:6])
        if questions != 1:
            return None
        name, end = _read_name(query, 12)
        if name is None or end + 4 > len(query):
            return None
        qtype, qclass = struct.unpack("!HH", query[end : end + 4])
        question = query[12 : end + 4]
        with self._lock:
            self.queries.append((name, qtype))
            known = name in self._records
            addresses = self._records.get(name, ()) if qtype == _A and qclass == _IN else ()
        reply_flags = _RESPONSE | _AUTHORITATIVE | (flags & _RECURSION_WANTED) | (0 if known else _NXDOMAIN)
        header = struct.pack("!HHHHHH", ident, reply_flags, 1, len(addresses), 0, 0)
        records = b"".join(
            struct.pack("!HHHIH", _NAME_POINTER, _A, _IN, 0, 4) + socket.inet_aton(address) for address in addresses
        )
        return header + question + records


def _read_name(message: bytes, offset: int) -> tuple[str | None, int]:
    """The question's name (lower case, no trailing dot) and the offset after it; ``None`` when malformed."""
    labels: list[str] = []
    while offset < len(message):
        length = message[offset]
        offset += 1
        if length == 0:
            return ".".join(labels).lower(), offset
        if length > 63 or offset + length > len(message):
            return None, offset
        labels.append(message[offset : offset + length].decode("ascii", errors="replace"))
        offset += length
    return None, offset
