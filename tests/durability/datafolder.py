"""A data folder filled through the storage layer (no server): an account's images, thousands
of old unreferenced blobs, an orphan repository and dead upload sessions, all past any grace."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from metadata.accounts import create_account
from storage.blobs import BlobStore
from storage.database import Database
from storage.digests import Digest
from storage.repositories import NewManifest, Repositories
from storage.sqlite import SqliteDatabase
from tests.backends.migrated_schemas import migrated

ACCOUNT = "tester"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# Old enough for the default grace period and upload expiry.
LONG_AGO = 3 * 86400.0


@dataclass
class Contents:
    kept: set[str] = field(default_factory=set)  # blobs a tagged manifest references
    garbage: set[str] = field(default_factory=set)


async def open_migrated(root: Path) -> Database:
    db = SqliteDatabase(root / "beakerd.db")
    await db.open()
    return await migrated(db)


def write_blob(root: Path, data: bytes) -> str:
    digest = Digest.of(data)
    path = BlobStore(root / "blobs").path(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(digest)


async def add_rows(db: Database, repository: str, blobs: dict[str, int]) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO repositories (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (repository, time.time()),
        )
        await conn.executemany(
            "INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [(d, size, time.time()) for d, size in blobs.items()],
        )
        await conn.executemany(
            "INSERT INTO repository_blobs (repository_id, digest, created_at)"
            " SELECT id, ?, ? FROM repositories WHERE name = ? ON CONFLICT DO NOTHING",
            [(d, time.time(), repository) for d in blobs],
        )


async def put_image(db: Database, root: Path, repository: str, layers: int) -> set[str]:
    blobs = {write_blob(root, os.urandom(300)): 300 for _ in range(layers)}
    await add_rows(db, repository, blobs)
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": list(blobs)}
    content = json.dumps(document).encode()
    manifest = NewManifest(
        "sha256:" + hashlib.sha256(content).hexdigest(), OCI_MANIFEST, content,
        None, None, None, list(blobs), [],
    )  # fmt: skip
    await Repositories(db).put_manifest(repository, manifest, "v1")
    return set(blobs)


async def dead_session(db: Database, root: Path) -> str:
    """A session killed between linking its blob into blobs/ and committing the blob's row."""
    data = os.urandom(500)
    upload_id = str(uuid.uuid4())
    (root / "uploads" / upload_id).write_bytes(data)
    digest = write_blob(root, data)
    await db.execute(
        "INSERT INTO uploads (id, repository, offset, created_at, updated_at, digest)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (upload_id, f"{ACCOUNT}/uploads", len(data), 0.0, 0.0, digest),
    )
    return digest


async def fill(root: Path, loose_blobs: int) -> Contents:
    for folder in ("blobs", "uploads"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    db = await open_migrated(root)
    try:
        await create_account(db, ACCOUNT, admin=True)
        contents = Contents()
        contents.kept |= await put_image(db, root, f"{ACCOUNT}/app", 20)
        # An orphan: its manifest holds its blobs only until the repository goes.
        contents.garbage |= await put_image(db, root, "nobody/app", 10)
        loose = {write_blob(root, os.urandom(200)): 200 for _ in range(loose_blobs)}
        await add_rows(db, f"{ACCOUNT}/loose", loose)
        contents.garbage |= set(loose)
        for _ in range(3):
            contents.garbage.add(await dead_session(db, root))
        past = time.time() - LONG_AGO
        for table in ("blobs", "repository_blobs", "repositories", "manifests"):
            await db.execute(f"UPDATE {table} SET created_at = ?", (past,))
        for queue in (
            "gc_blob_review",
            "gc_manifest_review",
            "gc_repository_review",
            "gc_link_review",
        ):
            await db.execute(f"UPDATE {queue} SET review_after = ?", (past,))
    finally:
        await db.close()
    return contents


async def blob_rows(root: Path) -> set[str]:
    db = await open_migrated(root)
    try:
        return {str(row[0]) for row in await db.fetchall("SELECT digest FROM blobs")}
    finally:
        await db.close()


def blob_files(root: Path) -> set[str]:
    return {
        f"{path.parent.parent.name}:{path.name}"
        for path in (root / "blobs").glob("*/*/*")
        if path.is_file()
    }
