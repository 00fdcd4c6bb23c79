"""The blob store's roles, which the registry's handlers and the garbage collector see, and
which each backend (a folder, storage/blobs.py and friends; or an S3 bucket, storage/blobstore/
s3*.py) fills in. Nothing above storage/ knows which backend runs.

- BlobReader: what a pull needs. Tried in order by the registry, as distribution's blob server
  does: a local file (sendfile), a redirect URL (presigned S3 GET), else a stream of chunks.
- BlobUploads: upload sessions, from the first chunk to the published blob.
- BlobReclaimer: what garbage collection removes besides rows: blob bytes and the staged data
  of expired sessions.

The database is the index of what exists in every backend: a blob is stored once by digest,
its row committed only after its bytes are at their content address; dedup across
repositories is a database fact (links), never a storage one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from storage.database import Connection, Database
from storage.digests import Digest


class BlobMissing(Exception):
    """A blob has a row but its bytes are not in the store (fsck reports it)."""


class UploadError(Exception):
    """Base of the errors an upload reports to its client."""


class OffsetMismatch(UploadError):
    def __init__(self, offset: int) -> None:
        super().__init__(f"chunk must start at offset {offset}")
        self.offset = offset


class UploadBusy(OffsetMismatch):
    """Another request is writing this session: a client sending two chunks at once."""

    def __init__(self, offset: int) -> None:
        UploadError.__init__(
            self,
            "another request is writing this upload: ask for its status and resume from the"
            " offset it gives",
        )
        self.offset = offset


class DigestMismatch(UploadError):
    def __init__(self, expected: Digest, actual: str) -> None:
        super().__init__(f"content digest {actual} does not match {expected}")


@dataclass(slots=True)
class Upload:
    id: str
    repository: str
    offset: int
    # Set once the session began publishing its blob under this digest.
    digest: str | None = None
    # Set when the quota refused the push the session is part of: the refusal's message
    # (storage/refused_pushes.py).
    refused: str | None = None


_UPLOAD_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


async def find_upload(db: Database, repository: str, upload_id: str) -> Upload | None:
    """The session `upload_id` of `repository` as its row stands, whichever store holds it."""
    if not _UPLOAD_ID_RE.fullmatch(upload_id):
        return None
    row = await db.fetchone(
        'SELECT "offset", digest, refused FROM uploads WHERE id = ? AND repository = ?',
        (upload_id, repository),
    )
    if row is None:
        return None
    return Upload(upload_id, repository, int(row["offset"]), row["digest"], row["refused"])


class BlobReader(Protocol):
    async def ping(self) -> None:
        """Return once the store answers (for /readyz); raise OSError, naming why, if not."""
        ...

    async def present(self, digest: Digest) -> bool:
        """Whether the bytes of a blob with a row can be served. A store where asking costs a
        round trip answers True: the row is the index, and a read finds out."""
        ...

    def local_path(self, digest: Digest) -> Path | None:
        """The blob's file, for sendfile; None when the store has no local files."""
        ...

    async def redirect_url(self, digest: Digest) -> str | None:
        """A URL the client may fetch the blob from itself (Range included), or None."""
        ...

    async def relay_url(self, digest: Digest) -> str | None:
        """A plain-http URL whose GET answers the blob's bytes (Range included) with no more
        credentials, for the server to relay socket to socket (registry/relay.py); or None."""
        ...

    def read(self, digest: Digest, start: int, length: int) -> AsyncIterator[bytes]:
        """`length` bytes from `start`, in chunks; BlobMissing before the first if absent."""
        ...

    async def quarantine(self, digest: Digest, read: tuple[int, int]) -> Path | None:
        """Take out the local file (by device and inode) found corrupt while it was served."""
        ...


class BlobUploads(Protocol):
    async def create(self, repository: str) -> Upload: ...

    async def get(self, repository: str, upload_id: str) -> Upload | None: ...

    async def append(
        self, upload: Upload, chunks: AsyncIterable[bytes], start: int | None = None
    ) -> None:
        """Append a chunk; `start`, from Content-Range, must equal the current offset."""
        ...

    async def finish(
        self,
        upload: Upload,
        digest: Digest,
        chunks: AsyncIterable[bytes] | None = None,
        *,
        create: bool = True,
    ) -> int:
        """Take an optional last chunk, verify the digest, publish the blob; returns its size."""
        ...

    async def ingest(
        self, repository: str, digest: Digest, chunks: AsyncIterable[bytes], *, create: bool = True
    ) -> int:
        """A whole blob in one request."""
        ...

    async def cancel(self, upload: Upload) -> None: ...


# GC's deleting transaction hands the connection and the digests whose rows it is about to
# delete to the store, which removes their bytes and returns the digests now without bytes.
InsideDelete = Callable[[Connection, list[str]], Awaitable[set[str]]]
# Runs that transaction (re-checking the candidates inside it); returns the rows deleted.
DeleteRows = Callable[[InsideDelete], Awaitable[set[str]]]


@dataclass(slots=True)
class Removed:
    blobs: int = 0
    bytes: int = 0
    rows_deleted: frozenset[str] = frozenset()


@dataclass(slots=True)
class Expired:
    uploads: int = 0
    bytes: int = 0
    orphan_files: int = 0


class BlobReclaimer(Protocol):
    async def has_leftovers(self) -> bool:
        """Whether an interrupted removal left something for `recover`."""
        ...

    async def recover(self) -> int:
        """Settle what an interrupted removal left; returns the blobs' bytes deleted (count)."""
        ...

    async def remove(self, sizes: dict[Digest, int], delete_rows: DeleteRows) -> Removed:
        """Remove the bytes of the blobs whose rows `delete_rows` deletes, and only those."""
        ...

    async def expire_uploads(self, expired: float, dry_run: bool) -> Expired:
        """Remove sessions idle since before `expired`, their staged data last of all."""
        ...
