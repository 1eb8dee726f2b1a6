"""Rendering of SDK results for the command line: JSON documents (``--json``) and short human tables."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from facerec.cli.durations import format_duration
from facerec.sdk import (
    AuditEvent,
    BoundingBox,
    BulkEnrollResult,
    Calibration,
    Candidate,
    Collection,
    Decision,
    DetectResult,
    EnrolledFace,
    EnrollResult,
    Face,
    FaceDeletion,
    FaceMove,
    FacerecError,
    FailedPrecondition,
    IdentifiedFace,
    IdentifyResult,
    Person,
    Point,
    VerifyResult,
)

if TYPE_CHECKING:
    from facerec.cli.importer import ImportReport

# ---------------------------------------------------------------------------------------------- JSON


def to_json(value: Any) -> Any:
    """A JSON-ready form of an SDK value: boxes as ``[x, y, w, h]``, points as ``[x, y]``, an identified face as
    its face's fields plus ``match`` (null when unknown) and ``candidates``, enums by value, times in ISO 8601."""
    if isinstance(value, BoundingBox):
        return list(value.as_xywh())
    if isinstance(value, Point):
        return [value.x, value.y]
    if isinstance(value, IdentifiedFace):
        return {
            **to_json(value.face),
            "decision": value.decision.value,
            "match": to_json(value.match),
            "margin": value.margin,
            "candidates": [to_json(c) for c in value.candidates],
        }
    if isinstance(value, Face):
        fields = {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if value.embedding is None:
            del fields["embedding"]
        return fields
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def error_json(error: FacerecError) -> dict[str, Any]:
    """The JSON document of a failed call (with per-photo rejections when an enrollment was refused)."""
    body: dict[str, Any] = {"code": error.code.name, "message": error.message}
    if isinstance(error, FailedPrecondition) and error.rejections:
        body["rejections"] = to_json(error.rejections)
    return {"error": body}


def print_json(document: Any, stream: TextIO | None = None) -> None:
    """Prints one JSON document on one line."""
    print(json.dumps(document, ensure_ascii=False), file=stream or sys.stdout)


# ---------------------------------------------------------------------------------------------- tables


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table: columns padded to their widest cell, numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) and bool(rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        padded = (v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(r) for r in cells)])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if value is None:
        return "-"
    return str(value)


def _box(box: BoundingBox) -> str:
    return f"{box.x},{box.y} {box.width}x{box.height}"


def _who(candidate: Candidate | None) -> str:
    if candidate is None:
        return "unknown"
    if candidate.display_name:
        return f"{candidate.person_id} ({candidate.display_name})"
    return candidate.person_id


# ---------------------------------------------------------------------------------------------- human renderers


def render_identify(result: IdentifyResult) -> str:
    """Who each face of a photo is, one row per face, under the threshold that decided and why."""
    why = result.applied.reason if result.applied is not None and result.applied.reason else None
    head = f"{len(result.faces)} face(s), threshold {why or format(result.threshold, 'g')}"
    if not result.faces:
        return head
    rows = []
    for identified in result.faces:
        nearest = identified.candidates[0] if identified.candidates else None
        shown = identified.match or nearest
        rows.append(
            [
                identified.face.index,
                _box(identified.face.box),
                _person_cell(identified, nearest),
                shown.distance if shown else None,
                shown.similarity if shown else None,
                identified.margin,
            ]
        )
    return head + "\n" + table(["#", "box", "person", "distance", "similarity", "margin"], rows)


def _person_cell(identified: IdentifiedFace, nearest: Candidate | None) -> str:
    if identified.match is not None:
        return _who(identified.match)
    if nearest is None:
        return "unknown"
    if identified.decision is Decision.AMBIGUOUS:
        second = identified.candidates[1] if len(identified.candidates) > 1 else None
        return f"ambiguous ({_who(nearest)} or {_who(second) if second else '?'})"
    return f"unknown (nearest {_who(nearest)})"


def render_verify(result: VerifyResult) -> str:
    """The verification answer in one line."""
    answer = "same person" if result.same_person else "different people"
    return (
        f"{answer}: distance {result.distance:.3f}, similarity {result.similarity:.3f}, threshold {result.threshold:g}"
    )


def render_detect(result: DetectResult) -> str:
    """The faces of a photo, one row per face."""
    head = f"{len(result.faces)} face(s) in {result.image_size.width}x{result.image_size.height}"
    if not result.faces:
        return head
    rows = [
        [f.index, _box(f.box), f.detection_score, f.quality.face_size_px, f.quality.sharpness, f.quality.frontality]
        for f in result.faces
    ]
    return head + "\n" + table(["#", "box", "score", "size_px", "sharpness", "frontality"], rows)


def render_enroll(result: EnrollResult) -> str:
    """The enrolled person and each photo's outcome."""
    person = result.person
    name = f" ({person.display_name})" if person.display_name else ""
    head = (
        f"enrolled {person.person_id}{name} in {person.collection}: {result.faces_enrolled} face(s) "
        f"from {len(result.photos)} photo(s); {person.face_count} face(s) in all"
    )
    rows = [
        [
            p.photo_name or p.photo_index,
            "yes" if p.enrolled else "no",
            _box(p.face.box) if p.face else None,
            "; ".join(r.message or r.reason.value for r in p.rejections) or p.face_id,
        ]
        for p in result.photos
    ]
    return head + "\n" + table(["photo", "enrolled", "box", "face id / reasons"], rows)


def render_rejections(error: FailedPrecondition, photo_names: Sequence[str] = ()) -> str:
    """Why an enrollment was refused, one row per photo violation (names from the command line)."""
    rows = []
    for rejection in error.rejections:
        index = rejection.photo_index
        photo = photo_names[index] if index is not None and index < len(photo_names) else rejection.subject
        rows.append([photo, rejection.reason.value, rejection.message])
    return table(["photo", "reason", "message"], rows) if rows else ""


def render_bulk(result: BulkEnrollResult) -> str:
    """The summary of an import, with every rejected photo."""
    head = (
        f"{result.requests} people sent, {result.photos} photo(s): {result.faces_enrolled} face(s) enrolled, "
        f"{result.people_enrolled} people enrolled, {len(result.rejected)} rejected"
    )
    return head + "\n" + _rejected_table(result) if result.rejected else head


def _rejected_table(result: BulkEnrollResult) -> str:
    rows = []
    for rejected in result.rejected:
        photo = rejected.photo
        reasons = rejected.error or "; ".join(r.message or r.reason.value for r in (photo.rejections if photo else ()))
        rows.append([rejected.person_id, photo.photo_name if photo else "(request)", reasons])
    return table(["person", "photo", "reasons"], rows)


def import_json(report: ImportReport) -> dict[str, Any]:
    """The JSON document of an import: the gateway's summaries (of the streams that ended) and what the CLI
    knows; after a broken stream, ``error``, its people (``unconfirmed``) and which of them are written."""
    document: dict[str, Any] = {
        "directory": report.directory,
        "collection": report.collection,
        "collection_created": report.created,
        "complete": report.complete,
        "people_sent": len(report.sent),
        "photos_sent": report.photos_sent,
        "elapsed_s": round(report.elapsed_s, 3),
        "photos_per_s": round(report.photos_sent / report.elapsed_s, 3) if report.elapsed_s > 0 else None,
        "already_complete": report.already_complete,
        "skipped_files": to_json(report.skipped_files),
    }
    document.update(to_json(report.result))
    if report.interrupted:
        document["interrupted"] = True
        document["unconfirmed"] = report.unconfirmed
    elif report.error is not None:
        document["error"] = _error_body(report.error)
        document["unconfirmed"] = report.unconfirmed
        document["people_written"] = report.people_written
        if report.lookup_error:
            document["lookup_error"] = report.lookup_error
    return document


def _error_body(error: BaseException) -> dict[str, Any]:
    if isinstance(error, FacerecError):
        body: dict[str, Any] = error_json(error)["error"]
        return body
    return {"code": type(error).__name__, "message": str(error)}


def render_import(report: ImportReport) -> str:
    """The summary of an import: what was sent and enrolled, who was already complete, what was left out."""
    rate = f", {report.photos_sent / report.elapsed_s:.1f} photos/s" if report.photos_sent and report.elapsed_s else ""
    created = " (created)" if report.created else ""
    head = (
        f"import into {report.collection}{created}: {len(report.sent)} people, {report.photos_sent} photo(s) sent "
        f"in {report.elapsed_s:.1f} s{rate}"
    )
    result = report.result
    head += (
        f": {result.faces_enrolled} face(s) enrolled, {result.people_enrolled} people enrolled, "
        f"{len(result.rejected)} rejected"
    )
    lines = [head]
    if report.already_complete:
        lines.append(f"{len(report.already_complete)} people already complete, not sent again")
    if report.skipped_files:
        lines.append(f"{len(report.skipped_files)} file(s) skipped (named on stderr)")
    if result.rejected:
        lines.append(_rejected_table(result))
    if report.interrupted:
        lines.append(
            f"interrupted: the requests of {len(report.unconfirmed)} people were cancelled (some of their faces may "
            "be written); run the same command again to finish"
        )
    elif report.error is not None:
        lines.append(f"the import stopped: {report.error}")
        if report.people_written is not None:
            written = sum(report.people_written.values())
            lines.append(
                f"of the {len(report.unconfirmed)} people of the broken stream, {len(report.people_written)} are in "
                f"{report.collection} ({written} face(s)); run the same command again to finish"
            )
        else:
            lines.append(f"could not check what was written: {report.lookup_error}")
    return "\n".join(lines)


def render_person(person: Person) -> str:
    """One person's details."""
    lines = [
        f"person:     {person.person_id}",
        f"name:       {person.display_name or '-'}",
        f"collection: {person.collection}",
        f"faces:      {person.face_count}",
    ]
    lines += [f"  {face_id}" for face_id in person.face_ids]
    if person.metadata:
        lines.append("metadata:")
        lines += [f"  {k} = {v}" for k, v in sorted(person.metadata.items())]
    return "\n".join(lines)


def render_people(people: Sequence[Person]) -> str:
    """People as a table."""
    rows = [[p.person_id, p.display_name or None, p.face_count] for p in people]
    return table(["person", "name", "faces"], rows) + f"\n{len(people)} people"


def render_collections(collections: Sequence[Collection]) -> str:
    """Collections as a table."""
    rows = [
        [c.name, c.person_count, c.face_count, c.threshold, c.target_fpir or "-", c.min_margin, c.model_id]
        for c in collections
    ]
    return table(["collection", "people", "faces", "threshold", "target_fpir", "min_margin", "model"], rows)


def render_collection(collection: Collection) -> str:
    """One collection's details."""
    created = collection.created_at.isoformat() if collection.created_at else "-"
    return "\n".join(
        [
            f"collection: {collection.name}",
            f"model:      {collection.model_id} ({collection.dimension}-d)",
            f"threshold:  {collection.threshold:g}{' (cap)' if collection.target_fpir else ' (fixed)'}",
            f"target FPIR: {collection.target_fpir * 100:g} %" if collection.target_fpir else "target FPIR: none",
            f"min margin: {collection.min_margin:g}",
            f"retention:  {format_duration(collection.retention_seconds) if collection.retention_seconds else 'none'}",
            f"people:     {collection.person_count}",
            f"faces:      {collection.face_count}",
            f"created:    {created}",
        ]
    )


def _time(moment: datetime | None) -> str | None:
    """A time to the second, in UTC as the service keeps it."""
    return moment.isoformat(timespec="seconds") if moment is not None else None


def render_faces(faces: Sequence[EnrolledFace]) -> str:
    """A person's faces, one row each (``-`` for what a face enrolled before it was stored does not have)."""
    rows = [
        [
            f.face_id,
            f.photo_name or None,
            _time(f.enrolled_at),
            f.quality.face_size_px if f.quality else None,
            f.quality.sharpness if f.quality else None,
            f.quality.frontality if f.quality else None,
            _box(f.box) if f.box else None,
        ]
        for f in faces
    ]
    headers = ["face", "photo", "enrolled", "size_px", "sharpness", "frontality", "box"]
    return table(headers, rows) + f"\n{len(faces)} face(s)"


def render_face_deletion(face_id: str, collection: str, deletion: FaceDeletion) -> str:
    """What a face deletion did, in one line."""
    left = f"{deletion.faces_left} face(s) left" if deletion.faces_left else "no face left: the person is gone"
    return f"deleted face {face_id} of {deletion.person_id} from {collection}: {left}"


def render_face_move(collection: str, move: FaceMove) -> str:
    """What a face move did, in one line."""
    face = move.face
    photo = f" ({face.photo_name})" if face.photo_name else ""
    return f"moved face {face.face_id}{photo} in {collection} from {move.from_person_id} to {face.person_id}"


def _action(event: AuditEvent) -> str:
    return event.action.value.removeprefix("AUDIT_").lower()


def render_audit(events: Sequence[AuditEvent]) -> str:
    """Audit events, oldest first, one row each."""
    rows = [
        [
            _time(e.time),
            _action(e),
            e.collection,
            e.person_id or None,
            e.face_id or None,
            e.faces,
            e.actor or None,
            e.request_id or None,
            e.detail or None,
        ]
        for e in events
    ]
    headers = ["time", "action", "collection", "person", "face", "faces", "actor", "request", "detail"]
    return table(headers, rows) + f"\n{len(events)} event(s)"


def render_collection_calibration(name: str, calibration: Calibration) -> str:
    """A collection's calibration in a few lines."""
    lines = [
        f"threshold {calibration.threshold:.4f} for FMR {calibration.target_fmr:g}: "
        f"FMR {calibration.fmr * 100:.3f} %, FNMR {calibration.fnmr * 100:.2f} %",
        f"EER {calibration.eer * 100:.2f} % at {calibration.eer_threshold:.4f}",
        f"{calibration.genuine_pairs} genuine pairs ({calibration.people} people with 2+ faces), "
        f"{calibration.impostor_pairs} impostor pairs, {calibration.faces} faces",
    ]
    if calibration.applied:
        lines.append(f"set as the fixed threshold of collection {name}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- progress


class Progress:
    """A plain-text progress line on stderr with the rate and the time left: rewritten in place on a terminal,
    else one line every 10 %."""

    def __init__(
        self,
        total: int,
        label: str,
        stream: TextIO | None = None,
        *,
        unit: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.label = label
        self.unit = unit
        self.done = 0
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._last_decile = -1
        self._clock = clock
        self._started = clock()

    def advance(self, count: int = 1, note: str = "") -> None:
        """Counts ``count`` more items done and redraws."""
        self.done += count
        fraction = self.done / self.total if self.total else 1.0
        width = 30
        bar = "#" * int(fraction * width)
        unit = f" {self.unit}" if self.unit else ""
        text = f"{self.label} [{bar:<{width}}] {self.done}/{self.total}{unit}{self._pace()} {note}".rstrip()
        if self._tty:
            self._stream.write("\r\x1b[K" + text)
            self._stream.flush()
        elif int(fraction * 10) != self._last_decile:
            self._last_decile = int(fraction * 10)
            print(text, file=self._stream)

    def rate(self) -> float | None:
        """Items per second so far (None before any time has passed)."""
        elapsed = self._clock() - self._started
        return self.done / elapsed if elapsed > 0 and self.done else None

    def _pace(self) -> str:
        rate = self.rate()
        if rate is None:
            return ""
        left = max(self.total - self.done, 0) / rate
        return f", {rate:.1f} {self.unit or 'items'}/s, ETA {_duration(left)}"

    def finish(self) -> None:
        """Ends the progress line."""
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()


def _duration(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``)."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
