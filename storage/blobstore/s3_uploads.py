"""Upload sessions into an S3 bucket, any chunk on any replica, hashed once while streaming.

State: everything a session knows lives in its `uploads` row, so the next chunk may reach any
process and none ever reads back what was uploaded: the acknowledged offset, the multipart
upload (made at the first full part), its parts, the length of the tail, and the sha256 state of
every acknowledged byte (storage/sha256_state.py). The in-process lock only orders requests
that reach one process; two replicas taking chunks of one session at once get one 416.

Parts: every part but the last must be at least 5 MiB, and PATCH chunks may be of any size.
Bytes are buffered up to a part (8 MiB, growing so that 10,000 parts reach 400 GiB) and sent
while the next part is read. What is left when a request ends, if under 5 MiB, becomes the
tail: an object of its own, `uploads/<id>/tail-<offset>-<nonce>`, at a key of the request's own
that the row then names, so that writing it never changes what an acknowledged row points at,
and a request that loses the compare-and-set to another one taking the same chunk at once
deletes only its own tail, never the winner's. The next chunk reads the
tail back (under 5 MiB) and sends it with its own bytes as a part; finishing copies it
server-side as the last part (UploadPartCopy). Storing the tail in the bucket, not in the row,
keeps the database free of megabytes of blob bytes.

Order, so that a kill at any moment loses nothing acknowledged and leaves nothing a later
pass does not clean: parts and the new tail are written first, then the row moves from the old
offset to the new one (compare-and-set), then the old tail is deleted. A kill before the row
moves leaves parts the row does not list (overwritten by the next chunk's, or dropped when the
upload completes with the listed parts only) and a tail no row names (deleted with the session).

Publishing never downloads the blob, nor copies it: the multipart upload is made at
`blobs/by-upload/<id>` (a key the session row records), completed there, the digest checked
against the saved state, and the session row records the digest; the blob's row is then
committed naming that object, and only then are the staged objects and the session row deleted.
Copying the blob to `blobs/<alg>/<xx>/<hex>` would make the S3 server write every byte twice
(on SeaweedFS, a third of a chunked push's time). When the digest has a row
already, the row keeps the object it names and the session's is deleted: one object per digest.
A session begun before sessions recorded their key has its multipart upload at
`uploads/<id>/data`, and is completed there and copied to its content address, as it was then.

A whole body whose digest is known first (a monolithic PUT, or a session's first and only
chunk) goes straight to its content address, as a single PUT when small, else as a multipart
upload there, completed only once the bytes verify; so does a session of under 5 MiB (its tail
copied there). While a session names a digest, garbage collection leaves that blob alone
(storage/blobstore/s3_reclaim.py), so a blob put in place is never deleted before its row.

Digests other than sha256 (sha512) are verified by reading the staged object back: the saved
state is sha256's only, and sha512 pushes are rare.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass, replace

from storage.blobstore import DigestMismatch, OffsetMismatch, Upload, UploadError, find_upload
from storage.blobstore.keys import Keys
from storage.blobstore.s3client import ObjectMissing, S3Bucket
from storage.database import Database
from storage.digests import Digest
from storage.quotas import QuotaExceeded
from storage.refused_pushes import PushRefused
from storage.repositories import Repositories, RepositoryFrozen, RepositoryUnknown
from storage.sha256_state import HashStateError, ResumableSha256

PART_MIN = 5 << 20
_PART = 8 << 20
_PARTS_PER_STEP = 1000
# Parts sent at once by one request (each held in memory until it lands).
IN_FLIGHT = 3


def part_size(number: int) -> int:
    """How many bytes part `number` (from 1) carries: 8 MiB, 16 MiB past 1,000 parts, ..."""
    return _PART * (1 + (number - 1) // _PARTS_PER_STEP)


@dataclass(slots=True)
class _State:
    offset: int
    digest: str | None
    multipart_id: str | None
    parts: list[tuple[int, str, int]]  # number, ETag, size
    tail: int
    hash_state: bytes
    object_key: str | None  # where the multipart upload is made; None: uploads/<id>/data
    tail_key: str | None  # where the tail is; None: tail-<offset> (sessions begun before)

    @property
    def parts_size(self) -> int:
        return sum(size for _, _, size in self.parts)


class _Pieces:
    """Bytes gathered for the next part: joined once when taken, where a bytearray grown
    chunk by chunk and then copied out moved every byte two or three times."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        self._pieces.append(data)
        self.size += len(data)

    def take(self) -> bytes:
        data = b"".join(self._pieces)
        self._pieces, self.size = [], 0
        return data


class _PartSender:
    """Sends parts while the caller reads the next, up to IN_FLIGHT at once; the multipart
    upload is made when the first part is due.

    Several parts in flight keep the S3 server busy on every core it has: one part at a time
    left it waiting on this process between parts, and the last part of a request was sent
    only after the one before it had landed.
    """

    def __init__(self, bucket: S3Bucket, key: str, upload_id: str | None, numbered: int) -> None:
        self.bucket = bucket
        self.key = key
        self.upload_id = upload_id
        self.sent: list[tuple[int, str, int]] = []
        self._next = numbered + 1
        self._pending: list[asyncio.Task[tuple[int, str, int]]] = []

    @property
    def next_size(self) -> int:
        return part_size(self._next)

    async def send(self, data: bytes) -> None:
        while len(self._pending) >= IN_FLIGHT:
            self.sent.append(await self._pending.pop(0))
        if self.upload_id is None:
            self.upload_id = await self.bucket.create_multipart(self.key)
        self._pending.append(asyncio.create_task(self._send(self.upload_id, self._next, data)))
        self._next += 1

    async def _send(self, upload_id: str, number: int, data: bytes) -> tuple[int, str, int]:
        return number, await self.bucket.upload_part(self.key, upload_id, number, data), len(data)

    async def drain(self) -> None:
        """Wait for every part in flight; the first failure is raised once all have ended."""
        pending, self._pending = self._pending, []
        results = await asyncio.gather(*pending, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
            self.sent.append(result)

    async def close(self) -> None:
        """After a failure: wait for the parts in flight, whatever became of them."""
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending, return_exceptions=True)


class S3UploadSessions:
    def __init__(
        self, db: Database, bucket: S3Bucket, keys: Keys, repositories: Repositories
    ) -> None:
        self.db = db
        self.bucket = bucket
        self.keys = keys
        self.repositories = repositories
        self._locks: dict[str, asyncio.Lock] = {}
        self._placed: set[str] = set()

    async def create(self, repository: str) -> Upload:
        upload = Upload(str(uuid.uuid4()), repository, 0)
        now = time.time()
        await self.db.execute(
            'INSERT INTO uploads (id, repository, "offset", created_at, updated_at, parts, tail,'
            " hash_state, object_key) VALUES (?, ?, 0, ?, ?, '[]', 0, ?, ?)",
            (
                upload.id,
                repository,
                now,
                now,
                ResumableSha256().save(),
                self.keys.by_upload(upload.id),
            ),
        )
        return upload

    async def get(self, repository: str, upload_id: str) -> Upload | None:
        return await find_upload(self.db, repository, upload_id)

    async def append(
        self, upload: Upload, chunks: AsyncIterable[bytes], start: int | None = None
    ) -> None:
        async with self._lock(upload.id):
            state = await self._load(upload)
            if start is not None and start != upload.offset:
                raise OffsetMismatch(upload.offset)
            await self._append(upload, state, chunks)

    async def finish(
        self,
        upload: Upload,
        digest: Digest,
        chunks: AsyncIterable[bytes] | None = None,
        *,
        create: bool = True,
    ) -> int:
        async with self._lock(upload.id):
            state = await self._load(upload)
            if state.digest == str(digest) and await self._published_earlier(
                upload, state, digest, create
            ):
                return state.offset
            if chunks is not None:
                if state.offset == 0:
                    return await self._put_whole(upload, digest, chunks, create)
                await self._append(upload, state, chunks)
                state = await self._load(upload)
            return await self._publish(upload, state, digest, create)

    async def ingest(
        self, repository: str, digest: Digest, chunks: AsyncIterable[bytes], *, create: bool = True
    ) -> int:
        upload = await self.create(repository)
        try:
            async with self._lock(upload.id):
                return await self._put_whole(upload, digest, chunks, create)
        except BaseException:
            if upload.id not in self._placed:
                await self._drop(upload.id, None)
            raise
        finally:
            self._placed.discard(upload.id)
            self._locks.pop(upload.id, None)

    async def cancel(self, upload: Upload) -> None:
        async with self._lock(upload.id):
            await self._drop(upload.id, await self._load(upload))

    # -- appending ----------------------------------------------------------------------------

    async def _append(self, upload: Upload, state: _State, chunks: AsyncIterable[bytes]) -> None:
        try:
            hasher = ResumableSha256.load(state.hash_state)
        except HashStateError:
            raise UploadError("the upload's saved state is unreadable; start again") from None
        buffer = _Pieces()
        old_tail = self._tail_key(upload.id, state)
        if old_tail is not None:
            try:
                buffer.add(await self.bucket.get_bytes(old_tail))
            except ObjectMissing:
                raise UploadError("the upload's data is gone; start the upload again") from None
            if buffer.size != state.tail:
                raise UploadError("the upload's data is damaged; start the upload again")
        sender = _PartSender(
            self.bucket, self._multipart_key(upload.id, state), state.multipart_id, len(state.parts)
        )
        offset = state.offset
        try:
            async for data in chunks:
                await asyncio.to_thread(hasher.update, data)
                buffer.add(data)
                offset += len(data)
                if buffer.size >= sender.next_size:
                    await sender.send(buffer.take())
            if buffer.size >= PART_MIN:
                await sender.send(buffer.take())
            await sender.drain()
        finally:
            await sender.close()
        tail = buffer.take()
        new_tail = None
        if tail:
            new_tail = (
                old_tail
                if offset == state.offset
                else self.keys.upload_tail(upload.id, offset, uuid.uuid4().hex[:12])
            )
        if new_tail is not None and new_tail != old_tail:
            await self.bucket.put(new_tail, tail)
        changed = await self.db.execute(
            'UPDATE uploads SET "offset" = ?, multipart_id = ?, parts = ?, tail = ?,'
            ' tail_key = ?, hash_state = ?, updated_at = ? WHERE id = ? AND "offset" = ?',
            (
                offset,
                sender.upload_id,
                json.dumps([list(part) for part in state.parts + sender.sent]),
                len(tail),
                new_tail,
                hasher.save(),
                time.time(),
                upload.id,
                state.offset,
            ),
        )
        if not changed:
            if new_tail is not None and new_tail != old_tail:
                await self._delete_quietly([new_tail])
            raise OffsetMismatch(state.offset)
        if old_tail is not None and old_tail != new_tail:
            await self._delete_quietly([old_tail])
        upload.offset = offset

    # -- publishing ---------------------------------------------------------------------------

    async def _put_whole(
        self, upload: Upload, digest: Digest, chunks: AsyncIterable[bytes], create: bool
    ) -> int:
        """A body that is the whole blob, its digest known first: written at its content
        address, and made visible there only once it verifies."""
        await self._mark(upload.id, digest)
        target = self.keys.blob(digest)
        hasher = digest.hasher()
        sender = _PartSender(self.bucket, target, None, 0)
        buffer = _Pieces()
        size = 0
        try:
            async for data in chunks:
                await asyncio.to_thread(hasher.update, data)
                buffer.add(data)
                size += len(data)
                if buffer.size >= sender.next_size:
                    await sender.send(buffer.take())
            actual = hasher.hexdigest()
            if actual != digest.hex:
                raise DigestMismatch(digest, f"{digest.algorithm}:{actual}")
            if sender.upload_id is None:
                await self.bucket.put(target, buffer.take())
            else:
                if buffer.size:
                    await sender.send(buffer.take())
                await sender.drain()
                await self.bucket.complete(
                    target, sender.upload_id, [(n, etag) for n, etag, _ in sender.sent]
                )
        except BaseException as e:
            await sender.close()
            if sender.upload_id is not None:
                await self._abort_quietly(target, sender.upload_id)
            if isinstance(e, DigestMismatch):
                await self._drop(upload.id, None)
            raise
        self._placed.add(upload.id)
        await self._commit(upload, digest, size, create, None)
        return size

    async def _publish(self, upload: Upload, state: _State, digest: Digest, create: bool) -> int:
        staged = await self._assemble(upload.id, state)
        if digest.algorithm == "sha256":
            actual = ResumableSha256.load(state.hash_state).hexdigest()
        else:
            actual = await self._hash_object(staged, state.offset, digest.algorithm)
        if actual != digest.hex:
            await self._drop(upload.id, state)
            raise DigestMismatch(digest, f"{digest.algorithm}:{actual}")
        await self._mark(upload.id, digest)
        # Completed: nothing left to abort, only the staged objects to delete.
        done = replace(state, multipart_id=None)
        if staged is not None and staged == state.object_key:
            await self._commit(upload, digest, state.offset, create, done, placed=staged)
            return state.offset
        target = self.keys.blob(digest)
        try:
            if staged is None:
                await self.bucket.put(target, b"")
            else:
                await self.bucket.copy(staged, target, state.offset)
        except ObjectMissing:
            await self._drop(upload.id, state)
            raise UploadError("the upload's data is gone; start the upload again") from None
        await self._commit(upload, digest, state.offset, create, done)
        return state.offset

    async def _assemble(self, upload_id: str, state: _State) -> str | None:
        """The key of one object holding every byte of the session (None when it has none)."""
        tail = self._tail_key(upload_id, state)
        if state.multipart_id is None:
            return tail
        data = self._multipart_key(upload_id, state)
        parts = [(number, etag) for number, etag, _ in state.parts]
        try:
            if tail is not None:
                number = len(parts) + 1
                etag = await self.bucket.upload_part_copy(data, state.multipart_id, number, tail)
                parts.append((number, etag))
            await self.bucket.complete(data, state.multipart_id, parts)
        except ObjectMissing:
            # Completed by an attempt that died before it could say so?
            done = await self.bucket.head(data)
            if done is None or done.size != state.offset:
                await self._drop(upload_id, state)
                raise UploadError("the upload's data is gone; start the upload again") from None
        return data

    async def _hash_object(self, key: str | None, size: int, algorithm: str) -> str:
        hasher = hashlib.new(algorithm)
        if key is not None:
            async for data in self.bucket.read(key, 0, size):
                await asyncio.to_thread(hasher.update, data)
        return hasher.hexdigest()

    async def _published_earlier(
        self, upload: Upload, state: _State, digest: Digest, create: bool
    ) -> bool:
        """Finish a session whose blob was put in place before a crash cut the request short:
        the digest is recorded only once the bytes verified, so an object of the right size
        at the content address is this session's blob."""
        if state.object_key is not None:
            placed = await self.bucket.head(state.object_key)
            if placed is not None and placed.size == state.offset:
                done = replace(state, multipart_id=None)
                await self._commit(upload, digest, state.offset, create, done, state.object_key)
                return True
        placed = await self.bucket.head(self.keys.blob(digest))
        if placed is None or placed.size != state.offset:
            return False
        await self._commit(upload, digest, state.offset, create, state)
        return True

    async def _mark(self, upload_id: str, digest: Digest) -> None:
        """Record the digest being published. Serialised with GC's deleting transaction, which
        spares digests that sessions name; the blob row (if any) counts as new again, so that a
        deletion that waited on this transaction finds it too young."""
        now = time.time()
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE uploads SET digest = ?, updated_at = ? WHERE id = ?",
                (str(digest), now, upload_id),
            )
            await conn.execute(
                "UPDATE blobs SET created_at = ? WHERE digest = ?", (now, str(digest))
            )

    async def _commit(
        self,
        upload: Upload,
        digest: Digest,
        size: int,
        create: bool,
        staged: _State | None,
        placed: str | None = None,
    ) -> None:
        """Commit the blob's row (naming `placed`, the session's completed object, if any) and
        link, then drop what the session staged (`placed` too, if an earlier row names another
        object)."""
        try:
            await self.repositories.add_blob(
                upload.repository,
                str(digest),
                size,
                create=create,
                session=upload.id,
                object_key=placed,
            )
        except (RepositoryFrozen, RepositoryUnknown, QuotaExceeded, PushRefused):
            # The blob's row is committed all the same (see add_blob); the session is over.
            await self._drop(upload.id, staged)
            raise
        await self._drop(upload.id, staged)

    # -- ending -------------------------------------------------------------------------------

    def _lock(self, upload_id: str) -> asyncio.Lock:
        return self._locks.setdefault(upload_id, asyncio.Lock())

    async def _load(self, upload: Upload) -> _State:
        """The session's row as it is now: another replica may have taken a chunk since."""
        row = await self.db.fetchone(
            'SELECT "offset", digest, multipart_id, parts, tail, tail_key, hash_state, object_key'
            " FROM uploads WHERE id = ? AND repository = ?",
            (upload.id, upload.repository),
        )
        if row is None:
            raise UploadError("upload session no longer exists")
        if row["hash_state"] is None or row["parts"] is None:
            raise UploadError("upload session was begun by another blob store; start again")
        upload.offset, upload.digest = int(row["offset"]), row["digest"]
        return _State(
            offset=upload.offset,
            digest=upload.digest,
            multipart_id=row["multipart_id"],
            parts=[(int(n), str(e), int(s)) for n, e, s in json.loads(row["parts"])],
            tail=int(row["tail"] or 0),
            hash_state=bytes(row["hash_state"]),
            object_key=row["object_key"],
            tail_key=row["tail_key"],
        )

    def _tail_key(self, upload_id: str, state: _State) -> str | None:
        """Where the session's tail is, None when it has none."""
        if not state.tail:
            return None
        return state.tail_key or self.keys.upload_tail(upload_id, state.offset)

    async def _drop(self, upload_id: str, state: _State | None) -> None:
        """The staged objects of `state` (None: nothing staged), then the row remembering them.
        The object the session completed at its own key stays if a blob row names it: this
        session published it, perhaps in a request cut short before it could say so."""
        if state is not None:
            multipart = self._multipart_key(upload_id, state)
            if state.multipart_id is not None:
                await self._abort_quietly(multipart, state.multipart_id)
            stale = [self.keys.upload_data(upload_id)]
            if multipart not in stale and not await self._named(multipart):
                stale.append(multipart)
            tail = self._tail_key(upload_id, state)
            if tail is not None:
                stale.append(tail)
            await self._delete_quietly(stale)
        await self.db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
        self._locks.pop(upload_id, None)

    async def _named(self, key: str) -> bool:
        return (
            await self.db.fetchone("SELECT 1 FROM blobs WHERE object_key = ?", (key,)) is not None
        )

    def _multipart_key(self, upload_id: str, state: _State) -> str:
        return state.object_key or self.keys.upload_data(upload_id)

    async def _delete_quietly(self, keys: list[str]) -> None:
        # What stays behind is under uploads/ without a row: GC deletes it once expired.
        if keys:
            with contextlib.suppress(Exception):
                await self.bucket.delete(keys)

    async def _abort_quietly(self, key: str, upload_id: str) -> None:
        # A multipart upload no row lists is aborted by GC once expired.
        with contextlib.suppress(Exception):
            await self.bucket.abort(key, upload_id)
