"""A small registry client over aiohttp for the durability tests, and the CLI they run.

Pushes go the ways clients push: monolithic (`POST ?digest=`), chunked (`POST`, `PATCH`...,
`PUT ?digest=`), and manifests by tag. Every helper returns only after a 2xx: that is what
"acknowledged" means in these tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.registry.helpers import digest_of
from tests.server import Server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ROOT = Path(__file__).resolve().parents[2]


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


class PushRefused(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


@dataclass
class Image:
    repository: str
    tag: str
    config: bytes
    layers: list[bytes]
    manifest: bytes = b""

    def __post_init__(self) -> None:
        if not self.manifest:
            document = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": _descriptor(OCI_CONFIG, self.config),
                "layers": [_descriptor(OCI_LAYER, layer) for layer in self.layers],
            }
            self.manifest = json.dumps(document).encode()

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)

    def set_subject(self, subject: Image) -> None:
        """Make this image a referrer of `subject` (its manifest gains a `subject` field)."""
        document = json.loads(self.manifest)
        document["subject"] = {
            "mediaType": OCI_MANIFEST,
            "digest": subject.digest,
            "size": len(subject.manifest),
        }
        self.manifest = json.dumps(document).encode()

    @property
    def blobs(self) -> list[bytes]:
        return [self.config, *self.layers]


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}


def make_image(repository: str, tag: str, layers: list[bytes]) -> Image:
    config = json.dumps({"architecture": "amd64", "os": "linux", "id": os.urandom(8).hex()})
    return Image(repository, tag, config.encode(), layers)


@dataclass
class Acks:
    """What the server acknowledged: blobs per repository and manifests (repo, ref, bytes)."""

    blobs: dict[tuple[str, str], int] = field(default_factory=dict)
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)


class RegistryClient:
    def __init__(self, server: Server, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        password = server.password
        assert password is not None, "the server has not written the bootstrap token yet"
        self.auth = {"Authorization": aiohttp.encode_basic_auth(server.username, password)}

    @property
    def url(self) -> str:
        return self.server.url

    async def _expect(self, resp: aiohttp.ClientResponse, *statuses: int) -> None:
        if resp.status not in statuses:
            raise PushRefused(resp.status, await resp.text())

    async def push_blob(self, name: str, data: bytes) -> str:
        digest = digest_of(data)
        async with self.session.post(
            f"{self.url}/v2/{name}/blobs/uploads/",
            params={"digest": digest},
            data=data,
            headers=self.auth,
        ) as resp:
            await self._expect(resp, 201)
        return digest

    async def start_upload(self, name: str) -> str:
        async with self.session.post(
            f"{self.url}/v2/{name}/blobs/uploads/", headers=self.auth
        ) as resp:
            await self._expect(resp, 202)
            return self.url + resp.headers["Location"]

    async def upload_offset(self, location: str) -> int | None:
        """The offset the server acknowledges for a session, or None if it is unknown."""
        async with self.session.get(location, headers=self.auth) as resp:
            if resp.status == 404:
                return None
            await self._expect(resp, 204)
            end = int(resp.headers["Range"].split("-")[1])
            return 0 if end == 0 and resp.headers["Range"] == "0-0" else end + 1

    async def patch(self, location: str, data: bytes, start: int) -> str:
        headers = {
            "Content-Range": f"{start}-{start + len(data) - 1}",
            "Content-Type": "application/octet-stream",
        }
        async with self.session.patch(
            location, data=data, headers={**headers, **self.auth}
        ) as resp:
            await self._expect(resp, 202)
            return self.url + resp.headers["Location"]

    async def finish(self, location: str, digest: str) -> None:
        async with self.session.put(location, params={"digest": digest}, headers=self.auth) as resp:
            await self._expect(resp, 201)

    async def push_blob_chunked(
        self, name: str, data: bytes, chunk: int, progress: list[str] | None = None
    ) -> str:
        """Chunked upload; `progress` receives the session URL as soon as it exists."""
        location = await self.start_upload(name)
        if progress is not None:
            progress.append(location)
        for start in range(0, len(data), chunk):
            location = await self.patch(location, data[start : start + chunk], start)
        digest = digest_of(data)
        await self.finish(location, digest)
        return digest

    async def resume_chunked(self, location: str, data: bytes, chunk: int) -> str | None:
        """Continue an interrupted chunked upload from the server's offset (None: session gone)."""
        offset = await self.upload_offset(location)
        if offset is None:
            return None
        for start in range(offset, len(data), chunk):
            location = await self.patch(location, data[start : start + chunk], start)
        digest = digest_of(data)
        await self.finish(location, digest)
        return digest

    async def push_manifest(
        self, name: str, reference: str, body: bytes, media_type: str = OCI_MANIFEST
    ) -> str:
        async with self.session.put(
            f"{self.url}/v2/{name}/manifests/{reference}",
            data=body,
            headers={"Content-Type": media_type, **self.auth},
        ) as resp:
            await self._expect(resp, 201)
            return resp.headers["Docker-Content-Digest"]

    async def push_image(self, image: Image, acks: Acks | None = None) -> None:
        """Every blob (always uploaded: no existence checks), then the manifest by tag."""
        for blob in image.blobs:
            digest = await self.push_blob(image.repository, blob)
            if acks is not None:
                acks.blobs[(image.repository, digest)] = len(blob)
        await self.push_manifest(image.repository, image.tag, image.manifest)
        if acks is not None:
            acks.manifests[(image.repository, image.tag)] = image.manifest
            acks.manifests[(image.repository, image.digest)] = image.manifest

    async def push_image_by_digest(self, image: Image) -> None:
        for blob in image.blobs:
            await self.push_blob(image.repository, blob)
        await self.push_manifest(image.repository, image.digest, image.manifest)

    async def get_blob(self, name: str, digest: str) -> bytes | None:
        async with self.session.get(
            f"{self.url}/v2/{name}/blobs/{digest}", headers=self.auth
        ) as resp:
            if resp.status == 404:
                return None
            await self._expect(resp, 200)
            return await resp.read()

    async def get_manifest(self, name: str, reference: str) -> bytes | None:
        async with self.session.get(
            f"{self.url}/v2/{name}/manifests/{reference}",
            headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}", **self.auth},
        ) as resp:
            if resp.status == 404:
                return None
            await self._expect(resp, 200)
            return await resp.read()

    async def delete_manifest(self, name: str, reference: str) -> None:
        async with self.session.delete(
            f"{self.url}/v2/{name}/manifests/{reference}", headers=self.auth
        ) as resp:
            await self._expect(resp, 202)

    async def pull_image(self, name: str, reference: str) -> list[str]:
        """Pull a manifest and every blob it names, checking each digest; returns problems."""
        problems: list[str] = []
        body = await self.get_manifest(name, reference)
        if body is None:
            return [f"{name}:{reference}: manifest missing"]
        manifest = json.loads(body)
        for descriptor in [manifest["config"], *manifest["layers"]]:
            data = await self.get_blob(name, descriptor["digest"])
            if data is None:
                problems.append(f"{name}: blob {descriptor['digest']} missing")
            elif digest_of(data) != descriptor["digest"]:
                problems.append(f"{name}: blob {descriptor['digest']} corrupt")
        return problems

    async def verify(self, acks: Acks) -> list[str]:
        """Every acknowledged blob and manifest is served and hashes to its digest."""
        problems: list[str] = []
        sem = asyncio.Semaphore(16)

        async def blob(name: str, digest: str, size: int) -> None:
            async with sem:
                data = await self.get_blob(name, digest)
            if data is None:
                problems.append(f"acknowledged blob {name}@{digest} is missing")
            elif digest_of(data) != digest or len(data) != size:
                problems.append(f"acknowledged blob {name}@{digest} is corrupt")

        async def manifest(name: str, reference: str, body: bytes) -> None:
            async with sem:
                served = await self.get_manifest(name, reference)
            if served != body:
                problems.append(f"acknowledged manifest {name}:{reference} is missing or differs")

        await asyncio.gather(
            *(blob(n, d, s) for (n, d), s in acks.blobs.items()),
            *(manifest(n, r, b) for (n, r), b in acks.manifests.items()),
        )
        return problems


def database_of(target: Path | Server) -> str | None:
    """The `--database` URL a server runs with (None: SQLite in its data folder)."""
    if isinstance(target, Path):
        return None
    args = target.extra_args
    return args[args.index("--database") + 1] if "--database" in args else None


def _location(target: Path | Server) -> list[str]:
    data_dir = target if isinstance(target, Path) else target.data_dir
    url = database_of(target)
    return ["--data-dir", str(data_dir), *(["--database", url] if url else [])]


async def server_sql(server: Server, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Run one statement on a server's database (whichever engine) and return its rows."""
    from storage.database import open_database

    db = open_database(database_of(server), server.data_dir)
    await db.open()
    try:
        async with db.transaction() as conn:
            return list(await conn.execute_fetchall(sql, params))
    finally:
        await db.close()


def beakerd_cli(
    target: Path | Server, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m beakerd ARGS --data-dir D` (gc, fsck) on a data folder, or on a server's
    data folder and database, and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "beakerd", *args, *_location(target)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def fsck_json(target: Path | Server, *args: str) -> tuple[int, dict[str, Any]]:
    proc = beakerd_cli(target, "fsck", "--json", *args)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def gc_json(target: Path | Server, *args: str) -> dict[str, Any]:
    proc = beakerd_cli(target, "gc", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def finding_kinds(report: dict[str, Any]) -> list[str]:
    return sorted(f["kind"] for f in report["findings"])


async def fsck_in_process(target: Path | Server) -> list[str]:
    """fsck's findings (kind: subject), read-only, without starting a process."""
    from storage.database import open_database
    from storage.fsck import Fsck

    data_dir = target if isinstance(target, Path) else target.data_dir
    db = open_database(database_of(target), data_dir)
    await db.open()
    try:
        report = await Fsck(db, data_dir).run()
    finally:
        await db.close()
    return [f"{f.kind}: {f.subject}: {f.detail}" for f in report.findings]
