"""``facerec cluster DIR``: the faces of every photo under DIR grouped into people (ClusterFaces), optionally
enrolled as new people.

Photos are found as ``facerec import`` finds them (by content, hidden files and folders ignored), in every folder
under DIR, sorted by path; each is named by its path as the user typed DIR (``DIR/sub/photo.jpg``). A file that is
not a photo in an accepted format, or cannot be read, is listed as skipped, as is a photo the gateway could not
read or found no face in: none of them stops the run. Files are read one at a time, as the stream sends them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from facerec.cli import exit_codes, output
from facerec.cli.importer import SkippedFile, skip_reason
from facerec.sdk import BoundingBox, Client, ClusteredFace, ClusterProgress, ClusterResult, ClusterStage

_STAGE_LABELS = {
    ClusterStage.EMBEDDING: ("cluster: embedding", "photos"),
    ClusterStage.LINKING: ("cluster: linking", "faces"),
    ClusterStage.GROUPING: ("cluster: grouping", "faces"),
    ClusterStage.ENROLLING: ("cluster: enrolling", "groups"),
}
_MAX_NAME = 256  # a photo's name in the API (facerec.limits); longer paths are sent by their end


@dataclass
class PhotoScan:
    """The photos under a folder (paths as the user typed the folder) and the files left out, with why."""

    photos: list[str]
    skipped: list[SkippedFile]


def scan(directory: str) -> PhotoScan:
    """Every photo under ``directory`` (any depth, sorted by path) and every file that is not one.

    Raises ``NotADirectoryError`` when ``directory`` is not a folder.
    """
    root = Path(directory)
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {directory}")
    found = PhotoScan([], [])
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(f for f in files if not f.startswith(".")):
            path = Path(folder) / name
            # As typed: Path would normalise "./photos" to "photos".
            shown = os.path.join(directory, path.relative_to(root))  # noqa: PTH118
            reason = skip_reason(path)
            if reason is None:
                found.photos.append(shown)
            else:
                found.skipped.append(SkippedFile(shown, reason))
    found.photos.sort(key=lambda path: Path(path).parts)
    found.skipped.sort(key=lambda skipped: Path(skipped.path).parts)
    return found


@dataclass
class ClusterRun:
    """What a run sent (``sent[i]`` is the path of the stream's photo ``i``) and the files it could not read."""

    sent: list[str] = field(default_factory=list)
    unreadable: list[SkippedFile] = field(default_factory=list)

    def photos(self, paths: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """``(name, bytes)`` of each readable photo, read when the stream asks for it."""
        for path in paths:
            try:
                image = Path(path).read_bytes()
            except OSError as error:
                self.unreadable.append(SkippedFile(path, f"cannot be read: {error.strerror or error}"))
                continue
            self.sent.append(path)
            yield _name(path), image


class StageProgress:
    """Progress on stderr: one :class:`output.Progress` per stage (a line per 10 % when not a terminal)."""

    def __init__(self, photos: int, stream: TextIO | None = None) -> None:
        self.photos = photos
        self.stream = stream or sys.stderr
        self._stage: ClusterStage | None = None
        self._progress: output.Progress | None = None

    def __call__(self, event: ClusterProgress) -> None:
        if event.stage not in _STAGE_LABELS:
            return
        if event.stage is not self._stage:
            self.finish()
            label, unit = _STAGE_LABELS[event.stage]
            total = self.photos if event.stage is ClusterStage.EMBEDDING else event.total
            self._stage, self._progress = event.stage, output.Progress(total, label, self.stream, unit=unit)
        progress = self._progress
        if progress is not None and (event.done > progress.done or event.done == 0 == progress.done):
            progress.advance(event.done - progress.done, f"{event.faces} faces" if event.faces else "")

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.finish()


def run(client: Client, args: argparse.Namespace) -> int:
    """``facerec cluster DIR [--enroll] [--collection C] [--threshold T] [--min-faces N] [--prefix P]``"""
    found = scan(args.dir)
    for file in found.skipped:
        print(f"facerec: skipped {file.path}: {file.reason}", file=sys.stderr)
    if not found.photos:
        message = f"no photos to cluster under {args.dir}; {len(found.skipped)} file(s) skipped"
        if args.json:
            output.print_json({"error": {"code": "NO_PHOTOS", "message": message}, "skipped": _skipped_json(found)})
        print(f"facerec: {message}", file=sys.stderr)
        return exit_codes.USAGE
    run_ = ClusterRun()
    progress = StageProgress(len(found.photos))
    try:
        result = client.cluster(
            run_.photos(found.photos),
            threshold=args.threshold,
            min_faces=args.min_faces,
            enroll=args.enroll,
            collection=args.collection,
            person_id_prefix=args.prefix or "",
            on_progress=progress,
        )
    finally:
        progress.finish()
    skipped = [*found.skipped, *run_.unreadable, *_refused(result, run_.sent)]
    if args.json:
        output.print_json(cluster_json(result, run_.sent, skipped))
    else:
        print(render_cluster(result, run_.sent, skipped, args.collection if args.enroll else None))
    return exit_codes.OK


def _refused(result: ClusterResult, sent: Sequence[str]) -> list[SkippedFile]:
    """The photos the gateway listed as skipped (no face, unreadable), by their paths."""
    return [
        SkippedFile(sent[photo.photo_index], "; ".join(r.message or r.reason.value for r in photo.rejections))
        for photo in result.skipped
    ]


def _name(path: str) -> str:
    """The photo's name in the API: printable and at most 256 characters (the path's end), whatever the file is
    called; results are mapped back to paths by the photo's index, not its name."""
    printable = "".join(c if c.isprintable() else "?" for c in path)
    return printable[-_MAX_NAME:]


# ---------------------------------------------------------------------------------------------- rendering


def _box(box: BoundingBox) -> dict[str, int]:
    return {"x": box.x, "y": box.y, "width": box.width, "height": box.height}


def _face_json(face: ClusteredFace, sent: Sequence[str]) -> dict[str, Any]:
    document: dict[str, Any] = {"photo": sent[face.photo_index], "box": _box(face.box), "face_index": face.face_index}
    if face.face_id:
        document["face_id"] = face.face_id
    return document


def _skipped_json(found: PhotoScan) -> list[dict[str, str]]:
    return [{"photo": s.path, "reason": s.reason} for s in found.skipped]


def cluster_json(result: ClusterResult, sent: Sequence[str], skipped: Sequence[SkippedFile]) -> dict[str, Any]:
    """The ``--json`` document: ``clusters`` (largest first; ``person_id`` null unless enrolled), ``noise`` and
    ``skipped`` (every file or photo left out, with why), then what was applied and counted."""
    return {
        "clusters": [
            {"person_id": cluster.person_id or None, "faces": [_face_json(f, sent) for f in cluster.faces]}
            for cluster in result.clusters
        ],
        "noise": [_face_json(f, sent) for f in result.noise],
        "skipped": [{"photo": s.path, "reason": s.reason} for s in skipped],
        "photos": result.photos,
        "faces": result.faces,
        "threshold": result.threshold,
        "min_faces": result.min_faces,
    }


def render_cluster(
    result: ClusterResult, sent: Sequence[str], skipped: Sequence[SkippedFile], collection: str | None
) -> str:
    """The groups with their photos, the noise and what was skipped, under a one-line summary."""
    enrolled = f", enrolled in {collection}" if collection is not None else ""
    lines = [
        f"{result.photos} photo(s), {result.faces} face(s): {len(result.clusters)} group(s) of "
        f"{result.min_faces}+ faces at threshold {result.threshold:g}, {len(result.noise)} face(s) in no group, "
        f"{len(skipped)} file(s) skipped{enrolled}"
    ]
    for number, cluster in enumerate(result.clusters, 1):
        who = f" = {cluster.person_id}" if cluster.person_id else ""
        lines.append(f"group {number}{who} ({len(cluster.faces)} faces):")
        lines += [_face_line(face, sent) for face in cluster.faces]
    if result.noise:
        lines.append(f"in no group ({len(result.noise)} faces):")
        lines += [_face_line(face, sent) for face in result.noise]
    if skipped:
        lines.append(f"skipped ({len(skipped)}):")
        lines += [f"  {s.path}: {s.reason}" for s in skipped]
    return "\n".join(lines)


def _face_line(face: ClusteredFace, sent: Sequence[str]) -> str:
    box = face.box
    return f"  {sent[face.photo_index]}  face {face.face_index} at {box.x},{box.y} {box.width}x{box.height}"
