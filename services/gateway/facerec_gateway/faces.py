"""The faces of a person: listed as enrolled, and corrected one at a time (deleted, or moved to another person).

A person is more than their latest enrollment: a wrong photo enrolled under their name (someone else's face, a
poster behind them) makes every later identification of that other face come out as them. Erasing the whole
person (``people``) is too much; here one face is deleted, or given to the person it really shows. A face keeps
its id and descriptor when moved, so the correction takes effect at the next search.

A listed face shows what enrollment stored beside it (``face_metadata``: the photo's name, its quality measures
and its box) and when the registry stored it; never its descriptor. Deleting or moving a face changes the
collection's counts (a person can appear or disappear): the collection cache is told, so a threshold that
follows the gallery's size follows at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from facerec import limits
from facerec.runtime import errors
from facerec.runtime.deadlines import Deadline
from facerec_gateway import face_metadata, validation
from facerec_gateway.auth import Tenant
from facerec_gateway.clients import Registry
from facerec_gateway.collections import Collections
from facerec_gateway.domain import Box, FaceQuality, FaceRecord
from facerec_gateway.errors import InvalidRequest


@dataclass(frozen=True)
class EnrolledFace:
    """One stored face as enrollment left it; ``quality`` and ``box`` are None for faces enrolled before the
    gateway stored them, ``enrolled_at`` when the registry did not say."""

    face_id: str
    person_id: str
    photo_name: str
    enrolled_at: datetime | None
    quality: FaceQuality | None
    box: Box | None


@dataclass(frozen=True)
class EnrolledFacesPage:
    """One page of a person's faces, ordered by face id; ``next_page_token`` is empty on the last page."""

    faces: tuple[EnrolledFace, ...]
    next_page_token: str


@dataclass(frozen=True)
class FaceDeletion:
    """Whose face was deleted, and how many faces they have left (0: the person is gone)."""

    person_id: str
    faces_left: int


@dataclass(frozen=True)
class FaceMove:
    """The face as stored after the move, and the person it was taken from."""

    face: EnrolledFace
    from_person_id: str


def enrolled_face(record: FaceRecord) -> EnrolledFace:
    """The public view of a stored face: its metadata read back (``face_metadata``), no descriptor."""
    return EnrolledFace(
        face_id=record.face_id,
        person_id=record.person_id,
        photo_name=face_metadata.photo_name(record.metadata),
        enrolled_at=record.enrolled_at,
        quality=face_metadata.quality(record.metadata),
        box=face_metadata.box(record.metadata),
    )


def checked_face_id(face_id: str) -> str:
    """A face id a request names: required (its form is the registry's; an unknown one is NOT_FOUND)."""
    if not face_id:
        raise InvalidRequest("face_id is required")
    return face_id


class Faces:
    """The faces of the people of the tenant's collections."""

    def __init__(self, registry: Registry, collections: Collections) -> None:
        self.registry = registry
        self.collections = collections

    async def list_page(
        self, tenant: Tenant, collection: str, person_id: str, page_size: int, page_token: str, deadline: Deadline
    ) -> EnrolledFacesPage:
        """One page of the person's faces (one page of the registry's listing of that person).

        NOT_FOUND when the collection holds no face of the person (asked on the first page: a later page of a
        person whose faces were deleted meanwhile is just empty).
        """
        person_id = validation.person_id(person_id)
        size, token = validation.page_size(page_size), validation.page_token(page_token)
        stored = await self.collections.resolve(tenant, collection, deadline, create_default=False, check_model=False)
        page = await self.registry.list_faces(
            stored.name, deadline, page_size=size, page_token=token, include_embeddings=False, person_id=person_id
        )
        faces = tuple(enrolled_face(f) for f in page.faces if f.person_id == person_id)
        if not faces and not token:
            raise errors.NotFound(
                f"person {limits.quoted(person_id)} has no face in collection {self.collections.named(collection)!r}"
            )
        return EnrolledFacesPage(faces, page.next_page_token)

    async def delete(self, tenant: Tenant, collection: str, face_id: str, deadline: Deadline) -> FaceDeletion:
        """Delete one face; whose it was and how many faces they have left."""
        face_id = checked_face_id(face_id)
        stored = await self.collections.resolve(tenant, collection, deadline, create_default=False, check_model=False)
        person_id = await self.registry.delete_face(stored.name, face_id, deadline)
        if person_id is None:
            raise self._no_face(face_id, collection)
        self.collections.cache.size_changed(stored.name)
        try:
            left = (await self.registry.get_person(stored.name, person_id, deadline)).face_count
        except errors.NotFound:
            left = 0  # that was the person's last face
        return FaceDeletion(person_id=person_id, faces_left=left)

    async def move(
        self, tenant: Tenant, collection: str, face_id: str, to_person_id: str, deadline: Deadline
    ) -> FaceMove:
        """Give one face to ``to_person_id`` (enrolled already, or new); moving it to its own person changes
        nothing."""
        face_id = checked_face_id(face_id)
        to_person_id = validation.person_id(to_person_id)
        stored = await self.collections.resolve(tenant, collection, deadline, create_default=False, check_model=False)
        try:
            moved = await self.registry.move_face(stored.name, face_id, to_person_id, deadline)
        except errors.NotFound:
            raise self._no_face(face_id, collection) from None
        self.collections.cache.size_changed(stored.name)
        return FaceMove(face=enrolled_face(moved.face), from_person_id=moved.from_person_id)

    def _no_face(self, face_id: str, collection: str) -> errors.NotFound:
        return errors.NotFound(f"no face {limits.quoted(face_id)} in collection {self.collections.named(collection)!r}")
