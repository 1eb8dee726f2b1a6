"""The embedded store's catalog: which collections exist, with which settings and which shard, on disk.

Layout under ``data_dir``::

    collections/<name>/collection.json   catalog entry: the collection's settings and its current shard
    collections/<name>/shard-<id>/       one Edge shard: WAL + segments of that collection's faces
    staging/, trash/                     collections being created or deleted

Edge has no collections, only shards, so each collection is one shard in its own folder. A collection is
created in ``staging/`` and renamed into ``collections/`` once complete, and deleted by renaming it into
``trash/`` first; the catalog entry is rewritten atomically (fsync, rename). A crash therefore never leaves
a half-made collection or shard in the catalog; leftovers are removed when the catalog opens.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from facerec_registry.domain import Collection

CATALOG_FILE = "collection.json"
SHARD_DIR_PREFIX = "shard"


def new_shard_dir_name() -> str:
    """A fresh name for a shard folder inside a collection's folder."""
    return f"{SHARD_DIR_PREFIX}-{uuid.uuid4().hex[:12]}"


def write_atomically(path: Path, content: str) -> None:
    """Writes a file so that readers see the old or the new content, never a mix (fsync then rename)."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    tmp.replace(path)


def write_entry(folder: Path, collection: Collection, shard_dir_name: str) -> None:
    """Writes the catalog entry of the collection in ``folder``: its settings and its current shard."""
    fields = asdict(collection)
    fields["created_at"] = collection.created_at.isoformat()
    write_atomically(folder / CATALOG_FILE, json.dumps({"collection": fields, "shard": shard_dir_name}, indent=2))


def read_entry(folder: Path) -> tuple[Collection, str]:
    """The collection's settings and its current shard folder's name; settings added since the entry was
    written (``target_fpir``, ``min_margin``) take their defaults."""
    entry = json.loads((folder / CATALOG_FILE).read_text(encoding="utf-8"))
    fields = dict(entry["collection"])
    fields["created_at"] = datetime.fromisoformat(fields["created_at"])
    return Collection(**fields), str(entry["shard"])


class EdgeCatalog:
    """The folders of the embedded store: staged creation, published collections, deletion through the trash."""

    def __init__(self, root: Path) -> None:
        self._collections_dir = root / "collections"
        self._staging_dir = root / "staging"
        self._trash_dir = root / "trash"
        for folder in (self._collections_dir, self._staging_dir, self._trash_dir):
            folder.mkdir(parents=True, exist_ok=True)
        # Leftovers of a create or delete interrupted by a crash: never part of the catalog.
        for leftover in [*self._staging_dir.iterdir(), *self._trash_dir.iterdir()]:
            shutil.rmtree(leftover, ignore_errors=True)

    def entries(self) -> Iterator[tuple[Path, Collection]]:
        """Each published collection's folder and settings, by name; removes what a crash left behind."""
        for folder in sorted(self._collections_dir.iterdir()):
            if not (folder / CATALOG_FILE).is_file():
                shutil.rmtree(folder, ignore_errors=True)
                continue
            collection, shard_dir_name = read_entry(folder)
            # Shards other than the current one are index builds or replaced shards a crash left behind.
            for other in folder.iterdir():
                if other.is_dir() and other.name != shard_dir_name:
                    shutil.rmtree(other, ignore_errors=True)
            yield folder, collection

    def staging_folder(self, name: str) -> Path:
        """A fresh folder in which to build the collection ``name`` before it is published."""
        return self._staging_dir / f"{name}-{uuid.uuid4().hex}"

    def publish(self, staging: Path, name: str) -> Path:
        """Moves a complete staged collection into the catalog (one rename); returns its folder."""
        final = self._collections_dir / name
        staging.replace(final)
        return final

    def discard(self, folder: Path, name: str) -> None:
        """Removes a collection's folder: renamed out of the catalog first, so a crash midway leaves no trace."""
        trash = self._trash_dir / f"{name}-{uuid.uuid4().hex}"
        folder.replace(trash)
        shutil.rmtree(trash, ignore_errors=True)
