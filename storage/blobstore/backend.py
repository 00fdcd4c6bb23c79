"""Opening the blob store a location names, once, for the server and the maintenance commands."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from storage.blobs import BlobStore
from storage.blobstore import BlobReader, BlobReclaimer, BlobUploads
from storage.blobstore.filesystem import FileReclaimer
from storage.blobstore.keys import Keys
from storage.blobstore.location import FileLocation, S3Location
from storage.database import Database
from storage.fsck import Fsck
from storage.orphans import RepositoryOwners
from storage.repositories import Repositories
from storage.trash import BlobFiles
from storage.uploads import UploadSessions

# The S3 modules are imported only for an S3 store: aiobotocore (botocore) takes about a third of
# a second and 11 MiB to import, which a server on its data folder should not pay at each start.
if TYPE_CHECKING:
    from storage.blobstore.s3client import S3Bucket


@dataclass(slots=True)
class BlobBackend:
    reader: BlobReader
    uploads: BlobUploads
    reclaimer: BlobReclaimer
    # The folder of the locks that keep GC, fsck repairs and the scrub apart (and, for a
    # folder store, of the blobs themselves).
    root: Path
    bucket: S3Bucket | None = None
    keys: Keys | None = None

    @property
    def scrubbable(self) -> bool:
        """Whether the background scrub runs: it re-reads files; on S3 it would download every
        object, and S3 servers check their own copies."""
        return self.bucket is None

    def fsck(
        self,
        db: Database,
        *,
        repair: bool,
        grace_seconds: float,
        upload_expiry_seconds: float,
        owners: RepositoryOwners | None,
    ) -> Fsck:
        if self.bucket is None or self.keys is None:
            return Fsck(db, self.root, repair, grace_seconds, upload_expiry_seconds, owners)
        from storage.blobstore.s3_fsck import S3Fsck

        return S3Fsck(
            db,
            self.root,
            self.bucket,
            self.keys,
            repair,
            grace_seconds,
            upload_expiry_seconds,
            owners,
        )


@contextlib.asynccontextmanager
async def open_blob_store(
    location: FileLocation | S3Location,
    db: Database,
    repositories: Repositories,
    *,
    lock_root: Path,
    s3_endpoint: str | None = None,
    redirect: bool = True,
) -> AsyncIterator[BlobBackend]:
    """The backend for `location`; `lock_root` holds an S3 store's lock files."""
    if isinstance(location, FileLocation):
        root = location.root
        for folder in (root, root / "blobs", root / "uploads"):
            folder.mkdir(parents=True, exist_ok=True)
        blobs = BlobStore(root / "blobs")
        yield BlobBackend(
            reader=blobs,
            uploads=UploadSessions(db, root / "uploads", blobs, repositories),
            reclaimer=FileReclaimer(db, BlobFiles(db, root), root / "uploads"),
            root=root,
        )
        return
    from storage.blobstore.s3 import S3Blobs
    from storage.blobstore.s3_reclaim import S3Reclaimer
    from storage.blobstore.s3_uploads import S3UploadSessions
    from storage.blobstore.s3client import S3Bucket

    async with S3Bucket.open(location.bucket, s3_endpoint) as bucket:
        keys = Keys(location.prefix)
        yield BlobBackend(
            reader=S3Blobs(db, bucket, keys, redirect),
            uploads=S3UploadSessions(db, bucket, keys, repositories),
            reclaimer=S3Reclaimer(db, bucket, keys),
            root=lock_root,
            bucket=bucket,
            keys=keys,
        )
