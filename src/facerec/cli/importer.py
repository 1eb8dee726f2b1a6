"""``facerec import DIR``: every subfolder ``DIR/<person>/`` is enrolled as the person named by the folder."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from facerec.cli.output import Progress
from facerec.sdk import Enrollment, Photo

# The formats the service accepts (see face.proto / DESIGN: JPEG, PNG, WebP, BMP).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


@dataclass(frozen=True)
class PersonFolder:
    """A person to import: the folder's name is the person id, its image files the photos."""

    person_id: str
    photos: tuple[Path, ...]


def scan(root: Path) -> list[PersonFolder]:
    """The person folders of ``root``, sorted by name; hidden folders and folders without images are skipped.

    Raises ``NotADirectoryError`` when ``root`` is not a folder.
    """
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    people = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos = tuple(
            sorted(
                f
                for f in folder.iterdir()
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
            )
        )
        if photos:
            people.append(PersonFolder(person_id=folder.name, photos=photos))
    return people


def enrollments(people: list[PersonFolder], progress: Progress | None = None) -> Iterator[Enrollment]:
    """One enrollment per person, photos named ``<person>/<file>``; ``progress`` advances as each is sent.

    Files are read only when the stream asks for the next person, so memory holds one person at a time.
    """
    for person in people:
        photos = [Photo(image=path, name=f"{person.person_id}/{path.name}") for path in person.photos]
        yield Enrollment(person_id=person.person_id, photos=photos)
        if progress is not None:
            progress.advance(person.person_id)
