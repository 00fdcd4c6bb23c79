"""`beakerd fsck`: check that the database and the blob files agree, and that every blob's bytes
hash to its digest; with `repair`, fix what is safe to fix.

Findings, and what a repair does:
- missing-file: a blob row without its file. The row (and its links) is deleted when no
  manifest references the blob; a referenced blob is only reported (push it again).
- corrupt: a blob file whose bytes do not hash to its digest (or whose size is not the row's).
  The file is moved aside to `lost+found/`, then treated as missing.
- orphan-file: a blob file without a row (a crash after the rename). Adopted (a row is added)
  when a manifest references it and its bytes verify; otherwise deleted by the trash protocol
  of storage/trash.py. Files younger than the grace period, or still linked from an upload session,
  may be a publish in flight and are left alone.
- stray-file: a file under blobs/ that is not named like a blob: moved to `lost+found/`.
- dangling-reference: a manifest references a blob that has neither row nor file: reported.
- upload-without-file, upload-file-without-row, expired-upload: stale upload state, deleted.
- trash: a file a crashed garbage collection left in `trash/`: restored or deleted.
- orphan-repository: a repository that no account namespace and no Beaker image holds
  (storage/orphans.py; checked when the caller passes the owners). A repair removes it if it is
  older than the grace period, as garbage collection does.

A repair never deletes a referenced blob. Hashing runs in threads, streamed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from storage.blobs import LOST_AND_FOUND, BlobStore
from storage.database import Database
from storage.digests import Digest, InvalidDigest
from storage.gc import gc_lock
from storage.orphans import RepositoryOwners, find_orphans, remove_orphans
from storage.trash import BlobFiles
from storage.uploads import companion_files

_HASH_CHUNK = 1 << 20
_PAGE = 1000
_PARALLEL_HASHES = 4


@dataclass(slots=True)
class Finding:
    kind: str
    subject: str
    detail: str
    repair: str | None = None  # what a repair did; None when nothing was (or could be) done

    def line(self) -> str:
        fixed = f" -> {self.repair}" if self.repair else ""
        return f"{self.kind}: {self.subject}: {self.detail}{fixed}"


@dataclass(slots=True)
class FsckReport:
    repair: bool
    blobs_checked: int = 0
    bytes_checked: int = 0
    files_seen: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    @property
    def unrepaired(self) -> list[Finding]:
        return [f for f in self.findings if f.repair is None]

    def add(self, kind: str, subject: str, detail: str) -> Finding:
        finding = Finding(kind, subject, detail)
        self.findings.append(finding)
        return finding


def hash_file(path: Path, algorithm: str) -> tuple[str, int]:
    """The hex digest and size of a file, read in 1 MiB pieces."""
    hasher = hashlib.new(algorithm)
    size = 0
    with open(path, "rb") as f:
        while data := f.read(_HASH_CHUNK):
            hasher.update(data)
            size += len(data)
    return hasher.hexdigest(), size


class Fsck:
    def __init__(
        self,
        db: Database,
        root: Path,
        repair: bool = False,
        grace_seconds: float = 3600.0,
        upload_expiry_seconds: float = 86400.0,
        owners: RepositoryOwners | None = None,
    ) -> None:
        self.db = db
        self.root = root
        self.store = BlobStore(root / "blobs")
        self.files = BlobFiles(db, root)
        self.uploads_root = root / "uploads"
        self.repair = repair
        self.grace_seconds = grace_seconds
        self.upload_expiry_seconds = upload_expiry_seconds
        self.owners = owners
        self.report = FsckReport(repair=repair)
        self._hashing = asyncio.Semaphore(_PARALLEL_HASHES)

    async def run(self) -> FsckReport:
        # A repair moves and deletes files: never alongside a garbage collection.
        async with self._repair_lock():
            await self._check_trash()
            await self._check_rows()
            await self._check_files()
            await self._check_references()
            await self._check_uploads()
            await self._check_repositories()
        return self.report

    @contextlib.asynccontextmanager
    async def _repair_lock(self) -> AsyncIterator[None]:
        if not self.repair:
            yield
            return
        async with gc_lock(self.db, self.root):
            yield

    # -- blob rows against files ------------------------------------------------------------

    async def _check_rows(self) -> None:
        last = ""
        while True:
            rows = await self.db.fetchall(
                "SELECT digest, size FROM blobs WHERE digest > ? ORDER BY digest LIMIT ?",
                (last, _PAGE),
            )
            if not rows:
                return
            last = str(rows[-1]["digest"])
            await asyncio.gather(*(self._check_row(str(r["digest"]), int(r["size"])) for r in rows))

    async def _check_row(self, text: str, size: int) -> None:
        try:
            digest = Digest.parse(text)
        except InvalidDigest:
            self.report.add("bad-row", text, "blob row with a malformed digest")
            return
        path = self.store.path(digest)
        async with self._hashing:
            try:
                actual, actual_size = await asyncio.to_thread(hash_file, path, digest.algorithm)
            except FileNotFoundError:
                await self._missing_file(text)
                return
        self.report.blobs_checked += 1
        self.report.bytes_checked += actual_size
        if actual == digest.hex and actual_size == size:
            return
        detail = (
            f"content hashes to {digest.algorithm}:{actual}"
            if actual != digest.hex
            else f"file has {actual_size} bytes, the row says {size}"
        )
        finding = self.report.add("corrupt", text, detail)
        if self.repair:
            aside = await self._move_aside(path, f"{digest.algorithm}-{digest.hex}.corrupt")
            finding.repair = f"moved to {aside}"
            await self._missing_file(text, report=False)

    async def _missing_file(self, digest: str, report: bool = True) -> None:
        references = await self._reference_count(digest)
        finding = (
            self.report.add(
                "missing-file",
                digest,
                f"blob row without a file; referenced by {references} manifests",
            )
            if report
            else None
        )
        if not self.repair or references:
            return
        async with self.db.transaction() as conn:
            # Checked again inside the transaction: a manifest may have been pushed meanwhile.
            rows = list(
                await conn.execute_fetchall(
                    "SELECT 1 FROM manifest_references WHERE child_digest = ? LIMIT 1", (digest,)
                )
            )
            if rows:
                return
            await conn.execute("DELETE FROM repository_blobs WHERE digest = ?", (digest,))
            await conn.execute("DELETE FROM blobs WHERE digest = ?", (digest,))
        if finding is not None:
            finding.repair = "row deleted"

    async def _reference_count(self, digest: str) -> int:
        row = await self.db.fetchone(
            "SELECT count(*) AS n FROM manifest_references WHERE child_digest = ?", (digest,)
        )
        return int(row["n"]) if row else 0

    # -- files against rows -----------------------------------------------------------------

    async def _check_files(self) -> None:
        blobs_root = self.store.root
        for algorithm_dir in await asyncio.to_thread(_subfolders, blobs_root):
            for prefix_dir in await asyncio.to_thread(_subfolders, algorithm_dir):
                names = await asyncio.to_thread(_file_names, prefix_dir)
                self.report.files_seen += len(names)
                by_digest: dict[str, Path] = {}
                for name in names:
                    path = prefix_dir / name
                    digest = _digest_of_path(algorithm_dir.name, prefix_dir.name, name)
                    if digest is None:
                        finding = self.report.add("stray-file", str(path), "not named like a blob")
                        if self.repair:
                            aside = await self._move_aside(path, f"stray-{name}")
                            finding.repair = f"moved to {aside}"
                        continue
                    by_digest[str(digest)] = path
                await self._check_unrowed(by_digest)

    async def _check_unrowed(self, by_digest: dict[str, Path]) -> None:
        digests = list(by_digest)
        rowed: set[str] = set()
        for start in range(0, len(digests), 500):
            part = digests[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = await self.db.fetchall(
                f"SELECT digest FROM blobs WHERE digest IN ({marks})", part
            )
            rowed.update(str(r["digest"]) for r in rows)
        for text, path in by_digest.items():
            if text not in rowed:
                await self._orphan(Digest.parse(text), path)

    async def _orphan(self, digest: Digest, path: Path) -> None:
        try:
            stat = await asyncio.to_thread(path.stat)
        except FileNotFoundError:
            return  # removed meanwhile (a collection, or a publish settling)
        if await self.files.has_row(str(digest)):
            return  # a publish committed its row meanwhile
        finding = self.report.add("orphan-file", str(digest), f"file without a row ({path})")
        if not self.repair:
            return
        if stat.st_nlink > 1 or time.time() - stat.st_mtime < self.grace_seconds:
            finding.detail += "; may be a publish in flight, left alone"
            finding.repair = "skipped (in flight)"
            return
        async with self._hashing:
            actual, size = await asyncio.to_thread(hash_file, path, digest.algorithm)
        if actual != digest.hex:
            aside = await self._move_aside(path, f"{digest.algorithm}-{digest.hex}.corrupt")
            finding.repair = f"content hashes to {actual}; moved to {aside}"
            return
        if await self._reference_count(str(digest)):
            await self.db.execute(
                "INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (digest) DO NOTHING",
                (str(digest), size, time.time()),
            )
            finding.repair = "adopted (a manifest references it)"
            return
        freed = await self.files.remove(digest)
        finding.repair = "deleted" if freed is not None else "kept (a push re-created its row)"

    async def _check_references(self) -> None:
        rows = await self.db.fetchall(
            "SELECT DISTINCT mr.child_digest FROM manifest_references mr"
            " WHERE mr.child_is_manifest = 0"
            " AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = mr.child_digest)"
        )
        for row in rows:
            self.report.add(
                "dangling-reference",
                str(row["child_digest"]),
                "manifests reference a blob that is not stored; push it again",
            )

    # -- trash and uploads ------------------------------------------------------------------

    async def _check_trash(self) -> None:
        names = await asyncio.to_thread(_file_names, self.files.trash)
        if not names:
            return
        finding = self.report.add(
            "trash", str(self.files.trash), f"{len(names)} files left by an interrupted GC"
        )
        if self.repair:
            deleted = await self.files.recover()
            finding.repair = f"{len(names) - deleted} restored, {deleted} deleted"

    async def _check_uploads(self) -> None:
        now = time.time()
        rows = await self.db.fetchall("SELECT id, updated_at, digest FROM uploads")
        known: set[str] = set()
        for row in rows:
            upload_id = str(row["id"])
            known.add(upload_id)
            path = self.uploads_root / upload_id
            exists = await asyncio.to_thread(path.exists)
            if not exists and row["digest"] and await self.files.has_row(row["digest"]):
                # Published, its file settled, and only the session row left: a full database
                # refused its deletion, or a crash came first. Its retry or its expiry ends it.
                continue
            if not exists:
                kind, detail = "upload-without-file", "upload session row without its file"
            elif now - float(row["updated_at"]) > self.upload_expiry_seconds:
                kind, detail = "expired-upload", "upload session idle past its expiry"
            else:
                continue
            finding = self.report.add(kind, upload_id, detail)
            if self.repair:
                await self.db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
                for file in (path, *companion_files(self.uploads_root, upload_id)):
                    await asyncio.to_thread(file.unlink, True)
                finding.repair = "session deleted"
                digest = row["digest"]
                if digest and not await self.files.has_row(digest):
                    # The session died between linking its file into blobs/ and the commit.
                    with contextlib.suppress(InvalidDigest):
                        if await self.files.remove(Digest.parse(digest)) is not None:
                            finding.repair += ", and the blob file it left without a row"
        for name in await asyncio.to_thread(_file_names, self.uploads_root):
            if name.split(".", 1)[0] in known:
                continue
            path = self.uploads_root / name
            finding = self.report.add(
                "upload-file-without-row", name, "upload file without a session row"
            )
            if not self.repair:
                continue
            try:
                mtime = (await asyncio.to_thread(path.stat)).st_mtime
            except FileNotFoundError:
                finding.repair = "gone"
                continue
            if now - mtime < self.grace_seconds:
                finding.repair = "skipped (recent: may be a session being created)"
                continue
            await asyncio.to_thread(path.unlink, True)
            finding.repair = "deleted"

    async def _check_repositories(self) -> None:
        if self.owners is None:
            return
        findings = {
            orphan.name: self.report.add(
                "orphan-repository",
                orphan.name,
                f"no account's namespace and no Beaker image holds it ({orphan.manifests}"
                " manifests); gc removes it once older than the grace period",
            )
            for orphan in await find_orphans(self.db, self.owners, time.time())
        }
        if not self.repair or not findings:
            return
        old = time.time() - self.grace_seconds
        removed = set(await remove_orphans(self.db, self.owners, old))
        for name, finding in findings.items():
            finding.repair = "repository removed" if name in removed else "skipped (recent)"

    async def _move_aside(self, path: Path, name: str) -> Path:
        folder = self.root / LOST_AND_FOUND
        target = folder / f"{name}.{int(time.time() * 1000)}"

        def move() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)

        await asyncio.to_thread(move)
        return target


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(folder) if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []


def _file_names(folder: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(folder) if not e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []


def _digest_of_path(algorithm: str, prefix: str, name: str) -> Digest | None:
    try:
        digest = Digest.parse(f"{algorithm}:{name}")
    except InvalidDigest:
        return None
    return digest if digest.hex[:2] == prefix else None
