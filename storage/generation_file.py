"""The change counter of one machine: an mmap'd file shared by every worker process.

A read is one memory read; a bump is an increment under an flock (storage/generation.py has
the contract).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

_FORMAT = "<Q"
_SIZE = struct.calcsize(_FORMAT)


class FileGeneration:
    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)
        self._lock_path = path

    @property
    def value(self) -> int:
        return int(struct.unpack_from(_FORMAT, self._map)[0])

    async def bump(self) -> None:
        # The lock is held for a few instructions: not worth a thread hop.
        self._bump()

    def _bump(self) -> None:
        # The file lock makes read-increment-write atomic across processes.
        with open(self._lock_path, "rb") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                struct.pack_into(_FORMAT, self._map, 0, self.value + 1)
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    async def close(self) -> None:
        self._map.close()
