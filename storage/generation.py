"""A change counter shared by every worker process on one data folder.

Caches of mutable facts (which digest a tag names, which manifests a repository holds) are
valid while the counter stands still. Writers bump it after each commit that could make a cached
fact false; readers compare it with the value they cached under, which costs one memory read
(the counter is an mmap'd file), not a database query.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

_FORMAT = "<Q"
_SIZE = struct.calcsize(_FORMAT)


class Generation:
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

    def bump(self) -> None:
        # The file lock makes read-increment-write atomic across processes.
        with open(self._lock_path, "rb") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                struct.pack_into(_FORMAT, self._map, 0, self.value + 1)
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()
