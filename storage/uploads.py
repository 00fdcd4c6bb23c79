"""Blob upload sessions: streamed to `uploads/<id>`, hashed on the way, published atomically.

The acknowledged offset of a session lives in the database, so a session survives a restart
and may continue in another worker process. The running hash lives in the process that took
the last chunk; any other process re-derives it by re-reading the partial file. One request at
a time writes a session, whichever worker it reaches: each takes the session's lock file,
`uploads/<id>.lock`, before reading the offset and lets go after committing the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from storage.blobs import BlobStore, fsync_dir
from storage.blobstore import (
    DigestMismatch,
    OffsetMismatch,
    Upload,
    UploadBusy,
    UploadError,
    find_upload,
)
from storage.database import Database
from storage.digests import Digest
from storage.quotas import QuotaExceeded
from storage.refused_pushes import PushRefused
from storage.repositories import Repositories, RepositoryFrozen, RepositoryUnknown

_REHASH_CHUNK = 8 << 20
# Written bytes after which a background fdatasync starts while the upload goes on.
_EARLY_FLUSH_BYTES = 8 << 20


@dataclass(slots=True)
class _RunningHash:
    offset: int
    hasher: hashlib._Hash


class UploadSessions:
    def __init__(
        self, db: Database, root: Path, blobs: BlobStore, repositories: Repositories
    ) -> None:
        self.db = db
        self.root = root
        self.blobs = blobs
        self.repositories = repositories
        self._hashes: dict[str, _RunningHash] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._publishing: set[str] = set()

    def _path(self, upload_id: str) -> Path:
        return self.root / upload_id

    async def create(self, repository: str) -> Upload:
        upload = Upload(str(uuid.uuid4()), repository, 0)
        files = [self._path(upload.id), _lock_path(self.root, upload.id)]
        try:
            # The lock file too, now: made later, on a full disk, it would fail a session that
            # exists, where failing here leaves none.
            for file in files:
                await asyncio.to_thread(file.touch)
            now = time.time()
            await self.db.execute(
                'INSERT INTO uploads (id, repository, "offset", created_at, updated_at)'
                " VALUES (?, ?, 0, ?, ?)",
                (upload.id, repository, now, now),
            )
        except BaseException:
            # No row (a full database, say), no session: its files must not stay behind either.
            for file in files:
                await asyncio.to_thread(file.unlink, True)
            raise
        self._hashes[upload.id] = _RunningHash(0, hashlib.sha256())
        return upload

    async def get(self, repository: str, upload_id: str) -> Upload | None:
        return await find_upload(self.db, repository, upload_id)

    async def append(
        self, upload: Upload, chunks: AsyncIterable[bytes], start: int | None = None
    ) -> None:
        """Append a chunk; `start`, from Content-Range, must equal the current offset."""
        async with self._lock(upload.id), self._exclusive(upload):
            if start is not None and start != upload.offset:
                raise OffsetMismatch(upload.offset)
            await self._append_locked(upload, chunks)

    async def finish(
        self,
        upload: Upload,
        digest: Digest,
        chunks: AsyncIterable[bytes] | None = None,
        *,
        create: bool = True,
    ) -> int:
        """Take an optional last chunk, verify the digest, publish the blob; returns its size.

        `create`: whether publishing may create the session's repository if it is gone.
        """
        async with self._lock(upload.id), self._exclusive(upload):
            if upload.digest == str(digest) and await self._published_earlier(
                upload, digest, create
            ):
                return upload.offset
            if chunks is not None:
                await self._append_locked(upload, chunks)
            actual = await self._final_digest(upload, digest.algorithm)
            if actual != digest.hex:
                await self._discard(upload)
                raise DigestMismatch(digest, f"{digest.algorithm}:{actual}")
            await self._publish(upload, digest, create)
            await self._forget(upload.id)
            return upload.offset

    async def _published_earlier(self, upload: Upload, digest: Digest, create: bool) -> bool:
        """Finish a session whose publish completed before a crash cut the request short.

        The staged file is dropped only after the blob's row commits, so a session that names
        its digest and has no staged file left is done: the retry only clears the session.
        """
        staged, target = self._path(upload.id), self.blobs.path(digest)
        if await asyncio.to_thread(staged.exists):
            return False  # the normal path completes it (the link and row steps are idempotent)
        if not await asyncio.to_thread(target.exists):
            await self._forget(upload.id)
            raise UploadError("the upload's data is gone; start the upload again")
        try:
            await self.repositories.add_blob(
                upload.repository, str(digest), upload.offset, create=create, session=upload.id
            )
        finally:
            await self._forget(upload.id)
        return True

    async def _publish(self, upload: Upload, digest: Digest, create: bool) -> None:
        """Put the verified file in place under its digest and commit the blob's row.

        The session keeps its own link to the bytes until the row is committed, and only then
        checks that the published file still exists: the garbage collector may have removed
        an old copy of the same digest in between (storage/gc.py, "Removing a blob file").
        The session row records the digest first, so a crash between the link and the commit
        leaves a file that GC can find (and remove) when the session expires.

        So does a commit that fails (a full database: the client gets 507): the linked file is
        left in blobs/ without a row, not removed here, since another session of the same
        digest may already count on it; the GC pass after the session expires removes it (as
        `fsck --repair` does). Files are never left without a row that GC does not reclaim.
        """
        staged, target = self._path(upload.id), self.blobs.path(digest)
        await self.db.execute(
            "UPDATE uploads SET digest = ?, updated_at = ? WHERE id = ?",
            (str(digest), time.time(), upload.id),
        )
        self._publishing.add(upload.id)
        await asyncio.to_thread(_link_into_place, staged, target)
        try:
            await self.repositories.add_blob(
                upload.repository, str(digest), upload.offset, create=create, session=upload.id
            )
        except (RepositoryFrozen, RepositoryUnknown, QuotaExceeded, PushRefused):
            # The repository was frozen (its image committed) or removed while the body was
            # arriving, or the blob would take its account past its quota, or another upload
            # of the same push was refused for that (storage/refused_pushes.py). The blob's row is
            # committed all the same (see add_blob), so the file in place is accounted for and
            # GC collects it; the session is over.
            await asyncio.to_thread(_settle, staged, target)
            self._publishing.discard(upload.id)
            await self._forget(upload.id)
            raise
        await asyncio.to_thread(_settle, staged, target)
        self._publishing.discard(upload.id)

    async def ingest(
        self,
        repository: str,
        digest: Digest,
        chunks: AsyncIterable[bytes],
        *,
        create: bool = True,
    ) -> int:
        """A whole blob in one request: stream it to a new session and finish it."""
        upload = await self.create(repository)
        try:
            return await self.finish(upload, digest, chunks, create=create)
        except BaseException:
            if upload.id in self._publishing:
                # Failed after its file was linked into blobs/: the session row (which names
                # the digest) stays for GC to settle when it expires.
                self._publishing.discard(upload.id)
                self._hashes.pop(upload.id, None)
                self._locks.pop(upload.id, None)
            else:
                await self._discard(upload)
            raise

    async def cancel(self, upload: Upload) -> None:
        async with self._lock(upload.id):
            await self._discard(upload)

    # -- internals --------------------------------------------------------------------------

    def _lock(self, upload_id: str) -> asyncio.Lock:
        return self._locks.setdefault(upload_id, asyncio.Lock())

    @contextlib.asynccontextmanager
    async def _exclusive(self, upload: Upload) -> AsyncIterator[None]:
        """The session to this request alone, across worker processes, from reading its offset
        to committing the next: two appending at once would each truncate and write the file,
        and leave bytes under a hash that never saw them. The lock is flock(2) on a file of its
        own (the data file may change inode, `_unshare`), which a worker that dies lets go; a
        second request is refused at once rather than queued behind a stalled client."""
        fd = await asyncio.to_thread(_try_lock, _lock_path(self.root, upload.id))
        if fd is None:
            raise UploadBusy(upload.offset)
        try:
            await self._refresh(upload)
            yield
        finally:
            os.close(fd)

    async def _refresh(self, upload: Upload) -> None:
        """Re-read the acknowledged offset: another worker may have taken a chunk since."""
        current = await self.get(upload.repository, upload.id)
        if current is None:
            raise UploadError("upload session no longer exists")
        upload.offset = current.offset
        upload.digest = current.digest

    async def _append_locked(self, upload: Upload, chunks: AsyncIterable[bytes]) -> None:
        running = await self._running_hash(upload, "sha256")
        try:
            new_offset = await _write_stream(
                self._path(upload.id), upload.offset, running.hasher, chunks
            )
        except BaseException:
            # The hash may have taken bytes that were never acknowledged: derive it afresh.
            self._hashes.pop(upload.id, None)
            raise
        changed = await self.db.execute(
            'UPDATE uploads SET "offset" = ?, updated_at = ? WHERE id = ? AND "offset" = ?',
            (new_offset, time.time(), upload.id, upload.offset),
        )
        if not changed:
            self._hashes.pop(upload.id, None)
            raise OffsetMismatch(upload.offset)
        running.offset = upload.offset = new_offset

    async def _running_hash(self, upload: Upload, algorithm: str) -> _RunningHash:
        running = self._hashes.get(upload.id)
        if algorithm == "sha256" and running is not None and running.offset == upload.offset:
            return running
        hasher = await asyncio.to_thread(
            _hash_prefix, self._path(upload.id), upload.offset, algorithm
        )
        running = _RunningHash(upload.offset, hasher)
        if algorithm == "sha256":
            self._hashes[upload.id] = running
        return running

    async def _final_digest(self, upload: Upload, algorithm: str) -> str:
        running = await self._running_hash(upload, algorithm)
        # Bytes past the acknowledged offset (a write cut short by a crash) are not content.
        await asyncio.to_thread(_truncate_private, self._path(upload.id), upload.offset)
        return running.hasher.copy().hexdigest()

    async def _discard(self, upload: Upload) -> None:
        await asyncio.to_thread(self._path(upload.id).unlink, True)
        await self._forget(upload.id)

    async def _forget(self, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)
        await self.db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
        self._locks.pop(upload_id, None)
        # After the row: a request that takes a new lock file finds the session gone.
        await asyncio.to_thread(_lock_path(self.root, upload_id).unlink, True)


def companion_files(root: Path, upload_id: str) -> list[Path]:
    """The files a session may have in `root` beside its data: a copy `_unshare` did not get to
    put in place, and its lock file. They go with the session."""
    return [_unshared_copy(root / upload_id), _lock_path(root, upload_id)]


def _lock_path(root: Path, upload_id: str) -> Path:
    return root / f"{upload_id}.lock"


def _try_lock(path: Path) -> int | None:
    """A descriptor holding `path`'s exclusive lock, or None while another holds it (made if
    missing: sessions begun before sessions had lock files)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _hash_prefix(path: Path, length: int, algorithm: str) -> hashlib._Hash:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        remaining = length
        while remaining > 0:
            data = f.read(min(_REHASH_CHUNK, remaining))
            if not data:
                raise UploadError("partial upload file is shorter than its recorded offset")
            hasher.update(data)
            remaining -= len(data)
    return hasher


def _write_and_hash(f: BinaryIO, hasher: hashlib._Hash, data: bytes) -> None:
    hasher.update(data)
    f.write(data)


def _unshare(path: Path) -> None:
    """Give `path` an inode of its own if a publish that never finished linked it into blobs/.

    Writing or truncating a shared inode would change the published blob's bytes.
    """
    if os.stat(path).st_nlink <= 1:
        return
    copy = _unshared_copy(path)
    shutil.copyfile(path, copy)
    with open(copy, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(copy, path)


def _unshared_copy(path: Path) -> Path:
    return path.with_name(path.name + ".unshared")


def _truncate_private(path: Path, length: int) -> None:
    if os.stat(path).st_size == length:
        return
    _unshare(path)
    os.truncate(path, length)


def _link_into_place(staged: Path, target: Path) -> None:
    """Hard-link the staged file to `target` unless a copy is already there; `staged` stays."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(staged, target)
    except FileExistsError:
        return  # Same digest, same bytes: the copy in place serves.
    fsync_dir(target.parent)


def _settle(staged: Path, target: Path) -> None:
    """After the row is committed: drop the staged link, or restore `target` from it if the
    garbage collector removed an older copy of the same blob meanwhile."""
    if target.exists():
        staged.unlink(missing_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, target)
    fsync_dir(target.parent)


def _open_at(path: Path, offset: int) -> BinaryIO:
    _unshare(path)
    f = open(path, "r+b")
    f.truncate(offset)
    f.seek(offset)
    return f


def _close_synced(f: BinaryIO) -> None:
    try:
        f.flush()
        os.fdatasync(f.fileno())
    finally:
        f.close()


async def _write_stream(
    path: Path, offset: int, hasher: hashlib._Hash, chunks: AsyncIterable[bytes]
) -> int:
    """Write `chunks` at `offset`, hashing them, and fdatasync before returning.

    The next chunk is read while one is written, and every few MiB a flush starts in the
    background, so the final fdatasync that lets the caller acknowledge the bytes has little
    left to do: the disk works while the network does.
    """
    loop = asyncio.get_running_loop()
    f = await asyncio.to_thread(_open_at, path, offset)
    pending: asyncio.Future[None] | None = None
    flushing: asyncio.Future[None] | None = None
    unflushed = 0
    try:
        async for data in chunks:
            if pending is not None:
                await pending
            pending = loop.run_in_executor(None, _write_and_hash, f, hasher, data)
            offset += len(data)
            unflushed += len(data)
            if unflushed >= _EARLY_FLUSH_BYTES and (flushing is None or flushing.done()):
                flushing = loop.run_in_executor(None, os.fdatasync, f.fileno())
                unflushed = 0
        if pending is not None:
            await pending
            pending = None
    finally:
        # On a failed read mid-stream too: nothing may still use the file when it closes.
        await asyncio.gather(
            *(job for job in (pending, flushing) if job is not None), return_exceptions=True
        )
        await asyncio.to_thread(_close_synced, f)
    return offset
