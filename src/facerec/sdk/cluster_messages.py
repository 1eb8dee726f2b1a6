"""The request stream of a clustering call (``ClusterFaces``), shared by :class:`Client` and :class:`AsyncClient`:
the options first, then one message per photo, each read (or encoded) only when the stream asks for it.

Photos are held back until the gateway has accepted the options (its first answer, sent before it reads any
photo): a call refused for its options (a threshold out of range, a collection the key may not use) then ends
before any upload, and its status is not lost to grpcio's asyncio client, which can report a write refused after
the server ended the call as INTERNAL instead of the server's status (grpc/grpc#36066).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from facerec.sdk.messages import photo_message
from facerec.sdk.types import ClusterPhotoInput, Photo
from facerec.v1 import facerec_pb2


class OptionsGate:
    """Opened by the call's first answer (the options are accepted), or closed when the call ends first."""

    def __init__(self) -> None:
        self._answered = threading.Event()
        self.accepted = False

    def accept(self) -> None:
        self.accepted = True
        self._answered.set()

    def close(self) -> None:
        self._answered.set()

    def wait(self) -> bool:
        """Waits for the call's first answer or its end; whether the photos may go."""
        self._answered.wait()
        return self.accepted


def photo_request(item: ClusterPhotoInput) -> facerec_pb2.ClusterRequest:
    """The message of one photo: an image (a path's name is its file name), a :class:`Photo`, or ``(name, image)``."""
    if isinstance(item, tuple):
        name, image = item
        item = Photo(image=image, name=name)
    return facerec_pb2.ClusterRequest(photo=photo_message(item))


def options_request(options: facerec_pb2.ClusterOptions) -> facerec_pb2.ClusterRequest:
    """The stream's first message."""
    return facerec_pb2.ClusterRequest(options=options)


def cluster_requests(
    photos: Iterable[ClusterPhotoInput], options: facerec_pb2.ClusterOptions, gate: OptionsGate
) -> Iterator[facerec_pb2.ClusterRequest]:
    """The options, then (once ``gate`` opens) each photo's message, lazily."""
    yield options_request(options)
    if not gate.wait():
        return
    for item in photos:
        yield photo_request(item)
