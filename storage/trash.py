"""Removing blob files by way of `trash/`, so that no kill leaves a file nothing reclaims.

A blob file leaves `blobs/` only by a rename into `trash/` (its name there starts with its
digest), and a file in `trash/` is deleted only once its blob has no row; with a row it goes
back into place. So whatever moment a process dies at, every file is either in `blobs/` under a
row, or in `trash/` where the next collection (`recover`) settles it by that same rule.

This is also the protocol shared with a publishing upload (storage/uploads.py): an upload
hard-links its staged file to the blob's path (unless a copy is there), commits the blob's row,
and only then drops its staged link, or moves it into place if the path is empty by then. Files
in `trash/` are never put back over a copy a push has put in place meanwhile (same digest,
same bytes), and nothing here deletes a file under `blobs/`: a committed row ends with a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from storage.blobs import BlobStore, fsync_dir
from storage.database import Database
from storage.digests import Digest, InvalidDigest

TRASH_FOLDER = "trash"


@dataclass(frozen=True, slots=True)
class Tomb:
    """A blob file renamed into trash/: where it is, and where it would go back."""

    digest: Digest
    path: Path
    home: Path


class BlobFiles:
    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.store = BlobStore(root / "blobs")
        self.trash = root / TRASH_FOLDER

    async def has_row(self, digest: str) -> bool:
        row = await self.db.fetchone("SELECT 1 FROM blobs WHERE digest = ?", (digest,))
        return row is not None

    async def remove(self, digest: Digest) -> int | None:
        """Delete the file of a blob that has no row; returns the bytes freed, None if kept."""
        tombs = await self.bury([digest])
        if not tombs:
            return None
        if await self.has_row(str(digest)):
            await asyncio.to_thread(_restore, tombs[0])
            return None
        return await asyncio.to_thread(unlink_counting, tombs[0].path)

    async def bury(self, digests: Iterable[Digest]) -> list[Tomb]:
        """Rename the files of `digests` into trash/, durably; those without a file are left out."""
        return await asyncio.to_thread(self._bury_all, list(digests))

    async def settle(self, tombs: Iterable[Tomb], rows_deleted: Collection[str]) -> int:
        """Delete the tombs of blobs whose rows are gone, put the others back; bytes freed."""
        return await asyncio.to_thread(_settle_all, list(tombs), rows_deleted)

    async def anything_in_trash(self) -> bool:
        return bool(await asyncio.to_thread(list_files, self.trash))

    async def recover(self) -> int:
        """Settle what an interrupted removal left in trash/; returns the files deleted."""
        tombs = await asyncio.to_thread(self._tombs)
        rows = await self._with_rows([str(t.digest) for t in tombs])
        gone = {str(t.digest) for t in tombs if str(t.digest) not in rows}
        strays = await asyncio.to_thread(self._strays)
        await asyncio.to_thread(_settle_all, tombs, gone)
        for stray in strays:
            await asyncio.to_thread(unlink_counting, stray)
        return len([t for t in tombs if str(t.digest) in gone]) + len(strays)

    async def _with_rows(self, digests: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(digests), 500):
            part = digests[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = await self.db.fetchall(
                f"SELECT digest FROM blobs WHERE digest IN ({marks})", part
            )
            found.update(str(row["digest"]) for row in rows)
        return found

    def _bury_all(self, digests: list[Digest]) -> list[Tomb]:
        self.trash.mkdir(parents=True, exist_ok=True)
        tombs: list[Tomb] = []
        emptied: set[Path] = set()
        for digest in digests:
            home = self.store.path(digest)
            tomb = Tomb(digest, self.trash / _tomb_name(digest), home)
            try:
                os.rename(home, tomb.path)
            except FileNotFoundError:
                continue
            tombs.append(tomb)
            emptied.add(home.parent)
        if tombs:
            # The renames must outlive a power cut before any row is deleted on their account.
            for folder in (self.trash, *emptied):
                fsync_dir(folder)
        return tombs

    def _tombs(self) -> list[Tomb]:
        tombs = []
        for path in list_files(self.trash):
            digest = _tomb_digest(path.name)
            if digest is not None:
                tombs.append(Tomb(digest, path, self.store.path(digest)))
        return tombs

    def _strays(self) -> list[Path]:
        return [p for p in list_files(self.trash) if _tomb_digest(p.name) is None]


def _tomb_name(digest: Digest) -> str:
    return f"{digest.algorithm}-{digest.hex}.{uuid.uuid4().hex[:12]}"


def _tomb_digest(name: str) -> Digest | None:
    algorithm, _, rest = name.partition("-")
    try:
        return Digest.parse(f"{algorithm}:{rest.split('.', 1)[0]}")
    except InvalidDigest:
        return None


def _settle_all(tombs: list[Tomb], rows_deleted: Collection[str]) -> int:
    freed = 0
    for tomb in tombs:
        if str(tomb.digest) in rows_deleted:
            freed += unlink_counting(tomb.path)
        else:
            _restore(tomb)
    return freed


def _restore(tomb: Tomb) -> None:
    tomb.home.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(tomb.path, tomb.home)
    except FileExistsError:
        pass  # a push put a fresh copy there already: same bytes
    except FileNotFoundError:
        return  # settled already (by a concurrent recovery)
    fsync_dir(tomb.home.parent)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tomb.path)


def unlink_counting(path: Path) -> int:
    """Remove `path`; the bytes it held (0 if it was already gone)."""
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


def list_files(folder: Path) -> list[Path]:
    """The plain files directly in `folder` (none if it does not exist)."""
    try:
        return [Path(e.path) for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []
