"""What the registry's handlers share: storage, upload sessions and read caches."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from registry.cache import GenerationCache
from registry.errors import ErrorCode, RegistryError
from storage.blobs import BlobStore
from storage.generation import Generation
from storage.repositories import ManifestRecord, Repositories
from storage.uploads import UploadSessions

# Manifests above this size are served from the database each time rather than cached.
CACHEABLE_MANIFEST_BYTES = 256 << 10


@dataclass
class RegistryContext:
    repositories: Repositories
    blobs: BlobStore
    uploads: UploadSessions
    generation: Generation
    tags: GenerationCache[tuple[str, str], str] = field(init=False)
    manifests: GenerationCache[tuple[str, str], ManifestRecord] = field(init=False)
    # API token id -> still live; revoking a token bumps the generation, so this never lags.
    live_tokens: GenerationCache[str, bool] = field(init=False)

    def __post_init__(self) -> None:
        self.tags = GenerationCache(self.generation, 65536)
        self.manifests = GenerationCache(self.generation, 4096)
        self.live_tokens = GenerationCache(self.generation, 4096)

    def changed(self) -> None:
        """Call after a commit that moves or removes a tag, manifest or repository."""
        self.generation.bump()

    async def ensure_writable(self, repository: str) -> None:
        if await self.repositories.is_immutable(repository):
            raise RegistryError(
                ErrorCode.DENIED, "repository belongs to a committed Beaker image and is read-only"
            )

    async def resolve_tag(self, repository: str, tag: str) -> str | None:
        key = (repository, tag)
        digest = self.tags.get(key)
        if digest is None:
            stamp = self.tags.stamp()
            digest = await self.repositories.resolve_tag(repository, tag)
            if digest is not None:
                self.tags.put(key, digest, stamp)
        return digest

    async def manifest(self, repository: str, digest: str) -> ManifestRecord | None:
        key = (repository, digest)
        record = self.manifests.get(key)
        if record is None:
            stamp = self.manifests.stamp()
            record = await self.repositories.manifest(repository, digest)
            if record is not None and record.size <= CACHEABLE_MANIFEST_BYTES:
                self.manifests.put(key, record, stamp)
        return record


REGISTRY = web.AppKey("registry", RegistryContext)
