"""``facerec import DIR``: every subfolder ``DIR/<person>/`` is enrolled as the person named by the folder.

Photos are recognised by their content (:func:`facerec.photo_formats.sniff`), not by their file names: dataset
files often have no extension. Every file that is not imported is named with the reason. An import can be run
again to finish one that was interrupted (:func:`pending_people` says who is sent again).
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from facerec.cli.output import Progress
from facerec.photo_formats import ACCEPTED_NAMES, SNIFF_BYTES, sniff
from facerec.sdk import BulkEnrollResult, Client, Enrollment, FacerecError, FaceSelection, NotFound, Photo
from facerec.sdk.channel import MAX_MESSAGE_BYTES
from facerec.sdk.types import DEFAULT_COLLECTION

PHOTOS_PER_REQUEST = 8
"""Photos in one enrollment request (the gateway takes up to 64): a person's photos go in several small requests,
so the gateway starts on the first while the next are still being sent, and its budget of photos in flight keeps
the embedder fed without gaps between people."""

MAX_REQUEST_BYTES = MAX_MESSAGE_BYTES - 1024 * 1024
"""Photo bytes in one request: under the gRPC message limit, with room for the rest of the message."""

STREAM_PHOTOS = 32
"""Photos per BulkEnroll stream. An import is a series of streams, two open at a time (one being sent while the
other finishes), so that progress counts photos the gateway has answered for (photos in transit are buffered
by the transport: counting what was sent shows a small import at 100 % before any work is done) and a stream
that breaks leaves the others' summaries exact."""

_OPEN_STREAMS = 2

# Who is enrolled: a collection with at most this many people (or 4 per folder) is read page by page; a
# larger one is asked person by person (GetPerson), so a small import into a large collection stays quick.
_LIST_PEOPLE_UP_TO = 5000
_LIST_PEOPLE_PER_FOLDER = 4
_PAGE_SIZE = 1000


@dataclass(frozen=True)
class PersonFolder:
    """A person to import: the folder's name is the person id, its photo files (by content) the photos."""

    person_id: str
    photos: tuple[Path, ...]


@dataclass(frozen=True)
class SkippedFile:
    """A file under DIR that is not imported, and why (``path`` relative to DIR)."""

    path: str
    reason: str


@dataclass(frozen=True)
class FolderScan:
    """What ``DIR`` holds: the people to import and every file left out."""

    people: list[PersonFolder]
    skipped: list[SkippedFile]

    @property
    def photo_count(self) -> int:
        return photo_count(self.people)


def photo_count(people: Sequence[PersonFolder]) -> int:
    """How many photos these people's folders hold."""
    return sum(len(p.photos) for p in people)


def scan(root: Path) -> FolderScan:
    """The person folders of ``root`` sorted by name, and every file that is not imported, with the reason.

    Hidden files and folders (``.name``) are ignored. Raises ``NotADirectoryError`` when ``root`` is not a folder.
    """
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    people: list[PersonFolder] = []
    skipped: list[SkippedFile] = []
    for entry in _visible(root):
        if not entry.is_dir():
            skipped.append(SkippedFile(entry.name, "not in a person's folder (DIR/<person>/<photo>)"))
            continue
        photos = []
        for file in _visible(entry):
            reason = skip_reason(file)
            if reason is None:
                photos.append(file)
            else:
                skipped.append(SkippedFile(f"{entry.name}/{file.name}", reason))
        if photos:
            people.append(PersonFolder(person_id=entry.name, photos=tuple(photos)))
    return FolderScan(people, skipped)


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def skip_reason(path: Path) -> str | None:
    """Why ``path`` is not sent as a photo, or None when it is one (by its first bytes)."""
    if path.is_dir():
        return "a folder inside a person's folder (not searched)"
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            head = file.read(SNIFF_BYTES)
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    if not head:
        return "empty file"
    if sniff(head) is None:
        return f"not a photo in an accepted format ({ACCEPTED_NAMES})"
    if size > MAX_REQUEST_BYTES:
        return f"{size / 2**20:.1f} MiB: larger than a request can carry ({MAX_REQUEST_BYTES / 2**20:.0f} MiB)"
    return None


def requests_of(person: PersonFolder) -> list[tuple[Path, ...]]:
    """The person's photos in as few requests as the limits allow (photos per request, bytes per request)."""
    batches: list[tuple[Path, ...]] = []
    batch: list[Path] = []
    size = 0
    for photo in person.photos:
        photo_size = photo.stat().st_size
        if batch and (len(batch) == PHOTOS_PER_REQUEST or size + photo_size > MAX_REQUEST_BYTES):
            batches.append(tuple(batch))
            batch, size = [], 0
        batch.append(photo)
        size += photo_size
    if batch:
        batches.append(tuple(batch))
    return batches


def pending_people(
    people: Sequence[PersonFolder], enrolled_faces: Mapping[str, int]
) -> tuple[list[PersonFolder], list[PersonFolder]]:
    """``(to send, complete)``: a person is complete when the collection already holds at least as many faces
    of theirs as their folder has distinct photos (by content: copies of a photo make one face), so an earlier
    import enrolled every one; anyone else is sent again in full, which stores nothing twice (a face's id is
    derived from the person, the photo's content and the face)."""
    complete = [p for p in people if _covers(enrolled_faces.get(p.person_id, 0), p)]
    done = {p.person_id for p in complete}
    return [p for p in people if p.person_id not in done], complete


def _covers(faces: int, person: PersonFolder) -> bool:
    if faces >= len(person.photos):
        return True
    # Contents are hashed only for a person between none and all: the rare case of copies in a folder.
    return faces > 0 and faces >= len({hashlib.sha256(path.read_bytes()).digest() for path in person.photos})


def enrollments(people: Sequence[PersonFolder]) -> Iterator[Enrollment]:
    """The requests of every person, photos named ``<person>/<file>``.

    Files are read only when the stream asks for the next request, so memory holds one request at a time.
    """
    for person in people:
        for batch in requests_of(person):
            yield Enrollment(
                person_id=person.person_id,
                photos=[Photo(image=path, name=f"{person.person_id}/{path.name}") for path in batch],
            )


# ---------------------------------------------------------------------------------------------- the import


@dataclass
class ImportReport:
    """What an import did. ``result`` sums the gateway's summaries of the streams that ended; when one broke,
    ``error`` says why and ``people_written`` what the collection holds of the people whose stream broke
    (``unconfirmed``)."""

    directory: str
    collection: str
    created: bool
    skipped_files: list[SkippedFile]
    already_complete: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    photos_sent: int = 0
    elapsed_s: float = 0.0
    result: BulkEnrollResult = field(default_factory=lambda: BulkEnrollResult(0, 0, 0, 0))
    error: FacerecError | OSError | None = None
    unconfirmed: list[str] = field(default_factory=list)
    people_written: dict[str, int] | None = None
    lookup_error: str = ""
    # Ctrl-C: the open streams were cancelled; their people (``unconfirmed``) may be partly written.
    interrupted: bool = False

    @property
    def complete(self) -> bool:
        """Whether every stream ran to its end (some people may still have been refused: see ``result``)."""
        return self.error is None and not self.interrupted

    def add(self, result: BulkEnrollResult) -> None:
        """Adds one stream's summary (its request indexes continue those of the streams before it)."""
        offset = self.result.requests
        self.result = BulkEnrollResult(
            requests=self.result.requests + result.requests,
            photos=self.result.photos + result.photos,
            faces_enrolled=self.result.faces_enrolled + result.faces_enrolled,
            people_enrolled=self.result.people_enrolled + result.people_enrolled,
            rejected=(
                *self.result.rejected,
                *(replace(r, request_index=r.request_index + offset) for r in result.rejected),
            ),
        )


def ensure_collection(client: Client, name: str, *, create: bool) -> bool:
    """Checks that the collection exists before anything is sent; creates it with ``create`` (and the default
    collection, created on first use as by every command). Returns whether it was created; else NotFound."""
    try:
        client.get_collection(name)
        return False
    except NotFound:
        if not (create or name == DEFAULT_COLLECTION):
            raise NotFound(f"collection {name!r} does not exist: create it, or import with --create") from None
    client.create_collection(name)
    return True


def enrolled_faces(client: Client, collection: str, person_ids: Sequence[str]) -> dict[str, int]:
    """The faces the collection holds of each of ``person_ids`` it knows (the others have none)."""
    wanted = set(person_ids)
    known = client.get_collection(collection).person_count if wanted else 0
    if known == 0:
        return {}
    if known <= max(_LIST_PEOPLE_UP_TO, _LIST_PEOPLE_PER_FOLDER * len(wanted)):
        people = client.iter_people(collection=collection, page_size=_PAGE_SIZE)
        return {p.person_id: p.face_count for p in people if p.person_id in wanted}
    found = {}
    for person_id in sorted(wanted):
        try:
            found[person_id] = client.get_person(person_id, collection=collection).face_count
        except NotFound:
            continue
    return found


def streams_of(people: Sequence[PersonFolder], photos: int = STREAM_PHOTOS) -> list[list[PersonFolder]]:
    """Consecutive people in groups of at least ``photos`` photos (the last may have fewer): one stream each. A
    person is never split across streams, so each stream's summary counts its people exactly."""
    groups: list[list[PersonFolder]] = [[]]
    for person in people:
        if photo_count(groups[-1]) >= photos:
            groups.append([])
        groups[-1].append(person)
    return [g for g in groups if g]


def run_import(
    client: Client, folder: FolderScan, report: ImportReport, *, face_selection: FaceSelection, resend: bool
) -> ImportReport:
    """Sends the people of ``folder`` who are not complete yet (everyone with ``resend``) and fills ``report``.

    A stream that breaks (the gateway down, a file gone) is reported, not raised: no new stream is started,
    ``report.error`` holds the error and ``report.people_written`` what the collection holds of its people.
    """
    to_send: list[PersonFolder] = list(folder.people)
    complete: list[PersonFolder] = []
    if not resend:
        faces = enrolled_faces(client, report.collection, [p.person_id for p in folder.people])
        to_send, complete = pending_people(folder.people, faces)
    report.already_complete = [p.person_id for p in complete]
    progress = Progress(photo_count(to_send), "import", unit="photos")
    groups = iter(streams_of(to_send))
    running: deque[tuple[list[PersonFolder], Future[BulkEnrollResult]]] = deque()
    started = time.perf_counter()
    with ThreadPoolExecutor(_OPEN_STREAMS, thread_name_prefix="import") as pool:

        def open_next() -> None:
            group = next(groups, None) if report.error is None else None
            if group is not None:
                report.sent += [p.person_id for p in group]
                report.photos_sent += photo_count(group)
                stream = enrollments(group)
                call = pool.submit(
                    client.bulk_enroll, stream, collection=report.collection, face_selection=face_selection
                )
                running.append((group, call))

        for _ in range(_OPEN_STREAMS):
            open_next()
        try:
            while running:
                group, call = running.popleft()
                try:
                    report.add(call.result())
                    progress.advance(photo_count(group), group[-1].person_id)
                except (FacerecError, OSError) as error:
                    report.error = report.error or error
                    report.unconfirmed += [p.person_id for p in group]
                open_next()
        except KeyboardInterrupt:
            client.close()  # cancels the open streams: the interrupt does not wait for them to finish
            report.interrupted = True
            report.unconfirmed += [p.person_id for group, _ in running for p in group]
    progress.finish()
    report.elapsed_s = time.perf_counter() - started
    if report.error is not None and not report.interrupted:
        _check_written(client, report)
    return report


def _check_written(client: Client, report: ImportReport) -> None:
    """After a broken stream: which of its people the collection now holds."""
    try:
        faces = enrolled_faces(client, report.collection, report.unconfirmed)
    except FacerecError as error:
        report.lookup_error = str(error)
        return
    report.people_written = {p: faces[p] for p in report.unconfirmed if faces.get(p)}
