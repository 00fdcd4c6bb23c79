"""The content-addressed blob store: one file per digest under `blobs/<alg>/<xx>/<hex>`.

Files are only ever created by renaming a complete, fsynced temporary file into place, so a
reader sees either no blob or a whole one. The database, not this folder, says which blobs exist.

A file found corrupt (its bytes do not hash to its name) is moved to `lost+found/` beside
`blobs/`, never deleted: its row stays, so the blob answers as unknown until a push of the right
bytes puts a file back under it. Only the very file that was hashed is moved (compared by
inode): a fresh copy a push put there meanwhile stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from storage.blobstore import BlobMissing
from storage.digests import Digest

LOST_AND_FOUND = "lost+found"
_READ_CHUNK = 1 << 20
# (st_dev, st_ino) of an open blob file: which file was read, whatever its path holds now.
FileIdentity = tuple[int, int]


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def identity_of(fd: int) -> FileIdentity:
    stat = os.fstat(fd)
    return stat.st_dev, stat.st_ino


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.lost_and_found = root.parent / LOST_AND_FOUND

    async def ping(self) -> None:
        """The data folder answers if it is writable, which /readyz checks on its own."""

    def path(self, digest: Digest) -> Path:
        return self.root / digest.algorithm / digest.hex[:2] / digest.hex

    async def size_on_disk(self, digest: Digest) -> int | None:
        try:
            stat = await asyncio.to_thread(self.path(digest).stat)
        except FileNotFoundError:
            return None
        return stat.st_size

    async def present(self, digest: Digest) -> bool:
        return await self.size_on_disk(digest) is not None

    def local_path(self, digest: Digest) -> Path | None:
        return self.path(digest)

    async def redirect_url(self, digest: Digest) -> str | None:
        return None

    async def relay_url(self, digest: Digest) -> str | None:
        return None

    async def read(self, digest: Digest, start: int, length: int) -> AsyncIterator[bytes]:
        try:
            f = await asyncio.to_thread(self.path(digest).open, "rb")
        except FileNotFoundError:
            raise BlobMissing(str(digest)) from None
        try:
            await asyncio.to_thread(f.seek, start)
            while length > 0 and (
                data := await asyncio.to_thread(f.read, min(_READ_CHUNK, length))
            ):
                length -= len(data)
                yield data
        finally:
            await asyncio.to_thread(f.close)

    async def quarantine(self, digest: Digest, read: FileIdentity) -> Path | None:
        """Move the corrupt file `read` out of the store; its new path, None if it was gone."""
        return await asyncio.to_thread(self._quarantine, digest, read)

    def _quarantine(self, digest: Digest, read: FileIdentity) -> Path | None:
        path = self.path(digest)
        self.lost_and_found.mkdir(parents=True, exist_ok=True)
        aside = self.lost_and_found / f"{digest.algorithm}-{digest.hex}.corrupt.{time.time_ns()}"
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return None
        stat = os.stat(aside)
        if (stat.st_dev, stat.st_ino) != read:
            # A push replaced the file after it was read: that copy is not the corrupt one.
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
            os.unlink(aside)
            return None
        fsync_dir(path.parent)
        return aside
