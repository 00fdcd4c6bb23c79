"""The content-addressed blob store: one file per digest under `blobs/<alg>/<xx>/<hex>`.

Files are only ever created by renaming a complete, fsynced temporary file into place, so a
reader sees either no blob or a whole one. The database, not this folder, says which blobs exist.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from storage.digests import Digest


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: Digest) -> Path:
        return self.root / digest.algorithm / digest.hex[:2] / digest.hex

    async def size_on_disk(self, digest: Digest) -> int | None:
        try:
            stat = await asyncio.to_thread(self.path(digest).stat)
        except FileNotFoundError:
            return None
        return stat.st_size
