"""Clustering: the faces of a stream of photos grouped into people who are not enrolled (ClusterFaces).

A call goes through four stages, each reported as it goes (:class:`ClusterProgress`):

1. **Embedding.** Photos are embedded as they arrive, ``PHOTOS_IN_FLIGHT`` at a time, each as enrollment embeds
   its photos (waiting out the embedder's overload refusals). Every face of a photo counts, except faces under
   the enrollment's minimum face size (recognition degrades below it). The sharpness and frontality gates are not
   applied: on LFW A-J they left out 89 labelled faces and lowered recall from 0.989 to 0.962 for no precision
   (0.920 against 0.916). The descriptors go straight into a *working collection* of the registry, named for the
   call, in batches of ``UPSERT_BATCH``: the gateway does not hold them.
2. **Linking.** The working collection is read back a page at a time with its descriptors, and each page's
   faces are searched in it (``SEARCH_BATCH`` queries per Search, every face counting separately): each face is
   linked to its ``NEIGHBOURS`` nearest faces at most ``threshold`` away. This is identification's search,
   so the call scales as the registry does (its HNSW index, built once enough faces wait), never an all-pairs
   matrix.
3. **Grouping.** The links are cut into groups by Chinese whispers, each link weighted by how far under the
   threshold it is (``cluster_graph``); groups smaller than ``min_faces`` are noise. Largest group first, faces
   in photo order.
4. **Enrolling** (with ``enroll``). Each group becomes a new person of the target collection, its faces stored
   as enrollment stores them (the same deterministic face ids, the photo's name and measures as metadata), their
   descriptors read back from the working collection.

The working collection is ``transient`` (the registry leaves it out of listings and the audit record, and deletes
it when it starts, so a crash leaves none behind), owned by no tenant and named ``<tenant>___cluster-<hex>``:
no public collection name starts with ``_``, so no public call can reach it. It is deleted when the call ends,
however it ends (an error, the caller cancelling).

What grows with the call, N faces of P photos: in the gateway, one small record per face (photo and face index,
box, quality: 40 bytes in arrays), each photo's name (and, with ``enroll``, its SHA-256), the links (at most
N x ``NEIGHBOURS``: 20 bytes each, about 50 while they are cut) and the result itself (about 86 bytes per face in
its message); in the registry, the working collection (N descriptors).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import enum
import hashlib
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from facerec import limits
from facerec.runtime import errors
from facerec.runtime.deadlines import Deadline
from facerec_gateway import cluster_graph, validation
from facerec_gateway.auth import Tenant
from facerec_gateway.clients import Registry
from facerec_gateway.collections import Collections
from facerec_gateway.decisions import DecisionSettings
from facerec_gateway.domain import (
    Box,
    EmbeddedPhoto,
    Face,
    FaceQuality,
    FaceRecord,
    Rejection,
    RejectionReason,
    SearchQuery,
    StoredCollection,
    Vector,
)
from facerec_gateway.enrollment import Photo, PhotoResult, digest_face_id
from facerec_gateway.errors import DependencyUnavailable, InvalidRequest
from facerec_gateway.face_metadata import face_metadata
from facerec_gateway.policy import RecognitionPolicy

DEFAULT_THRESHOLD = 0.5
"""Links faces at most this far apart: dlib's own face clustering example runs Chinese whispers at 0.5, the middle
of its same-person range (0.32-0.44 on average; different people 0.77-0.91)."""
DEFAULT_MIN_FACES = 2
NEIGHBOURS = 32
"""Links searched per face: enough for every face of a person to reach the others through a few links (a person
with more faces still holds together through shared neighbours), few enough that the links stay N x 32."""
PHOTOS_IN_FLIGHT = 16
"""Photos being embedded at once, as a bulk enrollment keeps them (the embedder's detection threads stay busy)."""
UPSERT_BATCH = 256
SEARCH_BATCH = limits.MAX_QUERIES_PER_SEARCH
PAGE_SIZE = limits.MAX_PAGE_SIZE
PROGRESS_INTERVAL_S = 0.5
"""At most one progress event per stage this often (and always the stage's last), whatever the call's size."""
MAX_PREFIX_LENGTH = limits.MAX_PERSON_ID_LENGTH - 12
"""A person id prefix leaves room for any group number."""
CLEANUP_TIMEOUT_S = 30.0
"""The deletion of the working collection has its own deadline: the call's may be spent, or the caller gone."""

EmbedPhoto = Callable[[bytes, Deadline], Awaitable[EmbeddedPhoto]]
"""How a photo is embedded: as enrollment embeds its photos (``Enroller.embed_waiting``: waiting out the embedder's
overload refusals within the photo's deadline)."""


@dataclass(frozen=True)
class ClusterOptions:
    """The options of a call, as the stream's first message gives them (0 and "" mean the defaults)."""

    collection: str = ""
    threshold: float = 0.0
    min_faces: int = 0
    enroll: bool = False
    person_id_prefix: str = ""


ClusterItem = ClusterOptions | Photo
"""One message of the request stream: the options (first, if at all), then photos."""


class ClusterStage(enum.IntEnum):
    """What a call is doing (the values are those of facerec.v1.ClusterStage)."""

    EMBEDDING = 1
    LINKING = 2
    GROUPING = 3
    ENROLLING = 4


@dataclass(frozen=True)
class ClusterProgress:
    """How far a stage is: ``done`` of ``total`` (photos received, faces, faces, groups), and the faces found."""

    stage: ClusterStage
    done: int
    total: int
    faces: int


@dataclass(frozen=True)
class ClusteredFace:
    """One face of a clustered photo; ``face_id`` is its enrolled face's id (with ``enroll``)."""

    photo_index: int
    photo_name: str
    face_index: int
    box: Box
    quality: FaceQuality
    face_id: str = ""


@dataclass(frozen=True)
class FaceCluster:
    """The faces of one person, in photo order; ``person_id`` is the new person's (with ``enroll``)."""

    faces: tuple[ClusteredFace, ...]
    person_id: str = ""


@dataclass(frozen=True)
class ClusterResult:
    """The groups (largest first), the faces in none, and the photos that gave no face (with their reasons)."""

    clusters: tuple[FaceCluster, ...]
    noise: tuple[ClusteredFace, ...]
    photos: int
    faces: int
    skipped: tuple[PhotoResult, ...]
    threshold: float
    min_faces: int


ClusterEvent = ClusterProgress | ClusterResult


@dataclass(frozen=True)
class _Settings:
    """The options once checked, with their defaults applied."""

    threshold: float
    min_faces: int
    target: StoredCollection | None  # with enroll
    prefix: str


def default_prefix() -> str:
    """A fresh person id prefix: two calls never put their groups in the same person."""
    return f"cluster-{secrets.token_hex(4)}-"


WORKING_COLLECTION_MARK = f"{limits.TENANT_SEPARATOR}_cluster-"
"""What the registry name of every working collection holds after its tenant: a name beginning with ``_``, which
no public collection name can have."""


def working_collection_name(tenant: Tenant) -> str:
    """The registry name of a call's working collection: the tenant's namespace, then ``_cluster-`` and a random
    suffix."""
    return f"{tenant.id}{WORKING_COLLECTION_MARK}{secrets.token_hex(8)}"


class _FaceTable:
    """The small per-face records of a call, in compact arrays, indexed by the order faces were embedded."""

    def __init__(self) -> None:
        self.photo = array.array("i")
        self.index = array.array("i")
        self.box = array.array("i")  # x, y, width, height
        self.quality = array.array("f")  # face_size_px, interocular_px, sharpness, frontality

    def __len__(self) -> int:
        return len(self.photo)

    def add(self, photo_index: int, face: Face) -> int:
        """Records ``face`` of photo ``photo_index``; its number."""
        number = len(self.photo)
        self.photo.append(photo_index)
        self.index.append(face.index)
        box, quality = face.box, face.quality
        self.box.extend((box.x, box.y, box.width, box.height))
        self.quality.extend((quality.face_size_px, quality.interocular_px, quality.sharpness, quality.frontality))
        return number

    def photo_order(self) -> npt.NDArray[np.int64]:
        """Face numbers by photo, then face index."""
        return np.lexsort((np.asarray(self.index), np.asarray(self.photo))).astype(np.int64)

    def face(self, number: int) -> tuple[int, int, Box, FaceQuality]:
        """Photo index, face index, box and quality of face ``number``."""
        b, q = self.box[4 * number : 4 * number + 4], self.quality[4 * number : 4 * number + 4]
        return self.photo[number], self.index[number], Box(*b), FaceQuality(*q)


@dataclass
class _Call:
    """What one call knows while it runs (the faces' descriptors are in the working collection, not here)."""

    settings: _Settings
    working: StoredCollection
    call_deadline: Deadline
    faces: _FaceTable = field(default_factory=_FaceTable)
    names: list[str] = field(default_factory=list)  # by photo index
    digests: dict[int, bytes] = field(default_factory=dict)  # with enroll: photo index -> SHA-256
    skipped: list[PhotoResult] = field(default_factory=list)
    embedded: int = 0
    unsaved: list[FaceRecord] = field(default_factory=list)


class _Throttle:
    """Says when a progress event is due: at most every ``interval_s``, and always for the stage's last."""

    def __init__(self, interval_s: float = PROGRESS_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._last = -float("inf")

    def due(self, *, last: bool = False) -> bool:
        now = time.monotonic()
        if last or now - self._last >= self.interval_s:
            self._last = now
            return True
        return False


class Clusterer:
    """Groups the faces of streamed photos into people (see the module's docstring)."""

    def __init__(
        self, embed: EmbedPhoto, registry: Registry, collections: Collections, policy: RecognitionPolicy
    ) -> None:
        self.embed = embed
        self.registry = registry
        self.collections = collections
        self.policy = policy

    async def cluster(
        self, tenant: Tenant, requests: AsyncIterable[ClusterItem], call_deadline: Deadline
    ) -> AsyncGenerator[ClusterEvent, None]:
        """Progress events while the call works, then its :class:`ClusterResult`.

        The first event (EMBEDDING, 0 of 0) comes as soon as the options are checked and the working collection
        made, before any photo is read. INVALID_ARGUMENT for options out of range or not first in the stream, or
        an invalid photo name (NOT_FOUND, PERMISSION_DENIED for the target collection, with ``enroll``); an
        unreadable photo, or one without a face, is listed in the result's ``skipped``.
        """
        stream = aiter(requests)
        first = await anext(stream, None)
        options = first if isinstance(first, ClusterOptions) else ClusterOptions()
        photos = _photos(stream, None if isinstance(first, ClusterOptions) else first)
        settings = await self._settings(tenant, options, self.policy.message_deadline(call_deadline))
        working = await self._create_working(tenant, settings, self.policy.message_deadline(call_deadline))
        call = _Call(settings, working, call_deadline)
        try:
            # The options are accepted: a client may wait for this before it sends photos, so that a refusal
            # of its options never races its uploads.
            yield ClusterProgress(ClusterStage.EMBEDDING, 0, 0, 0)
            async for event in self._embed_all(call, photos):
                yield event
            links: list[cluster_graph.Edges] = []
            async for progress in self._link(call, links):
                yield progress
            edges = cluster_graph.Edges.concatenated(links)
            faces = len(call.faces)
            yield ClusterProgress(ClusterStage.GROUPING, 0, faces, faces)
            labels = await asyncio.to_thread(cluster_graph.chinese_whispers, faces, edges, settings.threshold)
            clustered, noise = cluster_graph.groups(labels, settings.min_faces)
            yield ClusterProgress(ClusterStage.GROUPING, faces, faces, faces)
            order = call.faces.photo_order()
            groups = [order[members] for members in clustered]
            person_ids = [f"{settings.prefix}{number}" for number in range(1, len(groups) + 1)]
            if settings.target is not None:
                async for progress in self._enroll(call, settings.target, groups, person_ids):
                    yield progress
            # A million faces' records take seconds to build: off the event loop, as the cut.
            result = await asyncio.to_thread(self._result, call, groups, order[noise], person_ids)
        finally:
            await self._drop_working(working)
        yield result  # once the working collection is gone: a caller who has the result sees none left

    # ------------------------------------------------------------------------------------------ options

    async def _settings(self, tenant: Tenant, options: ClusterOptions, deadline: Deadline) -> _Settings:
        """The options checked (before any photo is embedded), with their defaults; the target collection with
        ``enroll`` (the default one is created on first use)."""
        threshold = validation.threshold(options.threshold or DEFAULT_THRESHOLD) or DEFAULT_THRESHOLD
        if options.min_faces < 0:
            raise InvalidRequest(f"min_faces must be at least 1 (0 means {DEFAULT_MIN_FACES}), got {options.min_faces}")
        min_faces = options.min_faces or DEFAULT_MIN_FACES
        if not options.enroll:
            return _Settings(threshold, min_faces, None, "")
        prefix = options.person_id_prefix or default_prefix()
        if len(prefix) > MAX_PREFIX_LENGTH:
            raise InvalidRequest(
                f"person_id_prefix is {len(prefix)} characters long; the maximum is {MAX_PREFIX_LENGTH} "
                "(a person id is the prefix and the group's number)"
            )
        validation.person_id(f"{prefix}1")
        target = await self.collections.resolve(tenant, options.collection, deadline, create_default=True)
        return _Settings(threshold, min_faces, target, prefix)

    # ------------------------------------------------------------------------------------------ the working collection

    async def _create_working(self, tenant: Tenant, settings: _Settings, deadline: Deadline) -> StoredCollection:
        model = await self.collections.model(deadline)
        working = StoredCollection(
            name=working_collection_name(tenant),
            tenant="",  # no tenant's listing shows it, even from a registry that does not know `transient`
            model_id=model.model_id,
            dimension=model.dimension,
            settings=DecisionSettings(threshold=settings.threshold, target_fpir=0.0, min_margin=0.0),
            transient=True,
        )
        return await self.registry.create_collection(working, deadline)

    async def _drop_working(self, working: StoredCollection) -> None:
        """Deletes the working collection, also when the call was cancelled (the deletion is shielded from a
        second cancellation, so it is sent whatever happens to the call)."""
        deletion = asyncio.ensure_future(
            self.registry.delete_collection(working.name, Deadline.after(CLEANUP_TIMEOUT_S))
        )
        deletion.add_done_callback(_retrieved)
        with contextlib.suppress(errors.FacerecError):
            # Failing that, the registry deletes transient collections when it starts.
            await asyncio.shield(deletion)

    async def _save(self, call: _Call, *, all_of_them: bool = False) -> None:
        """Writes the faces not yet written to the working collection, ``UPSERT_BATCH`` at a time."""
        while len(call.unsaved) >= UPSERT_BATCH or (all_of_them and call.unsaved):
            batch, call.unsaved = call.unsaved[:UPSERT_BATCH], call.unsaved[UPSERT_BATCH:]
            await self.registry.upsert_faces(call.working.name, batch, self.policy.message_deadline(call.call_deadline))

    # ------------------------------------------------------------------------------------------ 1. embedding

    async def _embed_all(self, call: _Call, photos: AsyncIterator[Photo]) -> AsyncIterator[ClusterProgress]:
        """Embeds every photo of the stream, its faces written to the working collection; progress meanwhile."""
        receiving = asyncio.ensure_future(self._receive(call, photos))
        try:
            while True:
                finished, _ = await asyncio.wait({receiving}, timeout=PROGRESS_INTERVAL_S)
                if finished:
                    receiving.result()
                    break
                yield ClusterProgress(ClusterStage.EMBEDDING, call.embedded, len(call.names), len(call.faces))
        finally:
            if not receiving.done():
                receiving.cancel()
                await asyncio.wait({receiving})
        yield ClusterProgress(ClusterStage.EMBEDDING, call.embedded, len(call.names), len(call.faces))

    async def _receive(self, call: _Call, photos: AsyncIterator[Photo]) -> None:
        """Reads the photos, ``PHOTOS_IN_FLIGHT`` embedded at a time; returns once every face is written."""
        slots = asyncio.Semaphore(PHOTOS_IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()
        failures: list[BaseException] = []

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            slots.release()
            error = None if task.cancelled() else task.exception()
            if error is not None:
                failures.append(error)

        try:
            async for photo in photos:
                index = len(call.names)
                call.names.append(_checked_name(photo.name, index))
                await slots.acquire()
                if failures:
                    raise failures[0]
                task = asyncio.ensure_future(self._embed_photo(call, index, photo))
                tasks.add(task)
                task.add_done_callback(finished)
            while tasks:
                await asyncio.wait(set(tasks))
            if failures:
                raise failures[0]
            await self._save(call, all_of_them=True)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise

    async def _embed_photo(self, call: _Call, index: int, photo: Photo) -> None:
        """One photo's acceptable faces, recorded and queued for the working collection (or the photo skipped)."""
        deadline = self.policy.message_deadline(call.call_deadline)
        try:
            embedded = await self.embed(validation.image(photo.image, f"photos[{index}]"), deadline)
        except errors.InvalidArgument as error:
            call.skipped.append(_skipped(index, photo.name, RejectionReason.INVALID_IMAGE, error.message))
            return
        except errors.ResourceExhausted as error:
            call.skipped.append(_skipped(index, photo.name, RejectionReason.IMAGE_TOO_LARGE, error.message))
            return
        finally:
            call.embedded += 1
        minimum = self.policy.quality.min_face_size_px
        kept = [face for face in embedded.faces if face.quality.face_size_px >= minimum]
        if not kept:
            call.skipped.append(self._faceless(index, photo.name, embedded.faces))
            return
        if call.settings.target is not None:
            call.digests[index] = hashlib.sha256(photo.image).digest()
        for face in kept:
            number = call.faces.add(index, face)
            call.unsaved.append(
                FaceRecord(
                    face_id=str(number),
                    person_id=_photo_key(index),
                    embedding=_descriptor(face),
                    model_id=face.embedding.model_id if face.embedding else embedded.model_id,
                )
            )
        await self._save(call)

    def _faceless(self, index: int, name: str, faces: Sequence[Face]) -> PhotoResult:
        if not faces:
            return _skipped(index, name, RejectionReason.NO_FACE, "no face was found in the photo")
        reasons = [r for r in self.policy.quality.rejections(faces[0]) if r.reason == RejectionReason.FACE_TOO_SMALL]
        return PhotoResult(index, name, face=faces[0].without_embedding(), rejections=tuple(reasons))

    # ------------------------------------------------------------------------------------------ 2. linking

    async def _link(self, call: _Call, links: list[cluster_graph.Edges]) -> AsyncIterator[ClusterProgress]:
        """Each face's near neighbours, searched in the working collection a page at a time (a page's Searches at
        once: 1,000 faces in four of 256), added to ``links`` (faces numbered in photo order); progress."""
        total = len(call.faces)
        rank = np.empty(total, dtype=np.int64)
        rank[call.faces.photo_order()] = np.arange(total)
        throttle, done = _Throttle(), 0
        yield ClusterProgress(ClusterStage.LINKING, 0, total, total)
        async for page in self._pages(call, call.working):
            batches = [page[i : i + SEARCH_BATCH] for i in range(0, len(page), SEARCH_BATCH)]
            links += await asyncio.gather(*(self._neighbours(call, batch, rank) for batch in batches))
            done += len(page)
            if throttle.due(last=done >= total):
                yield ClusterProgress(ClusterStage.LINKING, done, total, total)

    async def _neighbours(
        self, call: _Call, faces: Sequence[FaceRecord], rank: npt.NDArray[np.int64]
    ) -> cluster_graph.Edges:
        query = SearchQuery(
            vectors=[face.embedding for face in faces],
            top_k=NEIGHBOURS + 1,  # the face itself is its own nearest
            all_faces=True,
            max_distance=call.settings.threshold,
        )
        results = await self.registry.search(call.working.name, query, self.policy.message_deadline(call.call_deadline))
        sources, targets, distances = [], [], []
        for face, matches in zip(faces, results, strict=True):
            source = int(face.face_id)
            for match in matches:
                target = int(match.face_id)
                if target != source:
                    sources.append(source)
                    targets.append(target)
                    distances.append(match.distance)
        return cluster_graph.Edges(
            rank[np.asarray(sources, dtype=np.int64)],
            rank[np.asarray(targets, dtype=np.int64)],
            np.asarray(distances, dtype=np.float32),
        )

    async def _pages(self, call: _Call, working: StoredCollection) -> AsyncIterator[Sequence[FaceRecord]]:
        """The working collection's faces with their descriptors, a page at a time."""
        token = ""
        while True:
            page = await self.registry.list_faces(
                working.name,
                self.policy.message_deadline(call.call_deadline),
                page_size=PAGE_SIZE,
                page_token=token,
                include_embeddings=True,
            )
            if page.faces:
                yield page.faces
            token = page.next_page_token
            if not token:
                return

    # ------------------------------------------------------------------------------------------ 4. enrolling

    async def _enroll(
        self,
        call: _Call,
        target: StoredCollection,
        groups: Sequence[npt.NDArray[np.int64]],
        person_ids: Sequence[str],
    ) -> AsyncIterator[ClusterProgress]:
        """Writes each group's faces to the target collection as its new person's; progress in whole groups."""
        group_of = np.full(len(call.faces), -1, dtype=np.int64)
        for number, members in enumerate(groups):
            group_of[members] = number
        unwritten = np.asarray([len(members) for members in groups], dtype=np.int64)
        throttle, faces = _Throttle(), len(call.faces)
        yield ClusterProgress(ClusterStage.ENROLLING, 0, len(groups), faces)
        records: list[tuple[int, FaceRecord]] = []  # (group, face)
        async for page in self._pages(call, call.working):
            for stored in page:
                number = int(stored.face_id)
                group = int(group_of[number])
                if group >= 0:
                    records.append((group, self._enrolled(call, target, number, person_ids[group], stored)))
            while len(records) >= UPSERT_BATCH:
                await self._write(call, target, records[:UPSERT_BATCH], unwritten)
                records = records[UPSERT_BATCH:]
            if throttle.due():
                yield ClusterProgress(ClusterStage.ENROLLING, int(np.count_nonzero(unwritten == 0)), len(groups), faces)
        if records:
            await self._write(call, target, records, unwritten)
        self.collections.cache.size_changed(target.name)
        yield ClusterProgress(ClusterStage.ENROLLING, len(groups), len(groups), faces)

    def _enrolled(
        self, call: _Call, target: StoredCollection, number: int, person_id: str, stored: FaceRecord
    ) -> FaceRecord:
        photo, index, box, quality = call.faces.face(number)
        face = Face(box, None, 0.0, quality, None, index)
        return FaceRecord(
            face_id=digest_face_id(target.name, person_id, call.digests[photo].hex(), box),
            person_id=person_id,
            embedding=stored.embedding,
            model_id=stored.model_id,
            metadata=face_metadata(call.names[photo], face),
        )

    async def _write(
        self,
        call: _Call,
        target: StoredCollection,
        records: Sequence[tuple[int, FaceRecord]],
        unwritten: npt.NDArray[np.int64],
    ) -> None:
        """Writes faces of groups; counts them off the faces each group has left to write."""
        faces = [record for _, record in records]
        await self.registry.upsert_faces(target.name, faces, self.policy.message_deadline(call.call_deadline))
        np.subtract.at(unwritten, [group for group, _ in records], 1)

    # ------------------------------------------------------------------------------------------ the result

    def _result(
        self,
        call: _Call,
        groups: Sequence[npt.NDArray[np.int64]],
        noise: npt.NDArray[np.int64],
        person_ids: Sequence[str],
    ) -> ClusterResult:
        target = call.settings.target
        clusters = []
        for members, person_id in zip(groups, person_ids, strict=True):
            faces = tuple(self._clustered(call, int(n), target, person_id) for n in members)
            clusters.append(FaceCluster(faces, person_id if target is not None else ""))
        return ClusterResult(
            clusters=tuple(clusters),
            noise=tuple(self._clustered(call, int(n), None, "") for n in noise),
            photos=len(call.names),
            faces=len(call.faces),
            skipped=tuple(sorted(call.skipped, key=lambda s: s.photo_index)),
            threshold=call.settings.threshold,
            min_faces=call.settings.min_faces,
        )

    def _clustered(self, call: _Call, number: int, target: StoredCollection | None, person_id: str) -> ClusteredFace:
        photo, index, box, quality = call.faces.face(number)
        face_id = "" if target is None else digest_face_id(target.name, person_id, call.digests[photo].hex(), box)
        return ClusteredFace(photo, call.names[photo], index, box, quality, face_id)


async def _photos(stream: AsyncIterator[ClusterItem], first: Photo | None) -> AsyncIterator[Photo]:
    """The photos of the stream (``first``: one already read); options anywhere but first are refused."""
    if first is not None:
        yield first
    number = 2  # the stream's first message was read already (the options or ``first``)
    async for item in stream:
        if isinstance(item, ClusterOptions):
            raise InvalidRequest(
                f"ClusterOptions must be the first message of the stream and come once; message {number} is options"
            )
        yield item
        number += 1


def _checked_name(name: str, index: int) -> str:
    """A photo's name within ``facerec.limits`` (a name out of them refuses the call: it is the caller's doing)."""
    try:
        return limits.check_photo_name(name, f"photos[{index}].name")
    except ValueError as error:
        raise InvalidRequest(str(error)) from None


def _photo_key(index: int) -> str:
    """The working collection's person of a photo's faces: ordered as the photos (ListFaces pages by person)."""
    return f"{index:012d}"


def _descriptor(face: Face) -> Vector:
    if face.embedding is None:
        raise DependencyUnavailable("the embedder returned a face without its descriptor")
    return face.embedding.values


def _skipped(index: int, name: str, reason: RejectionReason, message: str) -> PhotoResult:
    return PhotoResult(index, name, rejections=(Rejection(reason, message),))


def _retrieved(task: asyncio.Future[int]) -> None:
    """Retrieves a deletion's outcome nobody awaits any more (the call was cancelled), so asyncio logs nothing."""
    if not task.cancelled():
        task.exception()
