"""What the registry's handlers share: storage, upload sessions and read caches."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from registry.cache import GenerationCache
from registry.errors import ErrorCode, RegistryError
from registry.proxy import PullThrough
from storage.blobstore import BlobReader, BlobUploads
from storage.generation import Generation
from storage.policies import TagImmutable
from storage.quotas import QuotaExceeded
from storage.refused_pushes import PushRefused
from storage.repositories import (
    ManifestRecord,
    Repositories,
    RepositoryFrozen,
    RepositoryUnknown,
)

# Manifests above this size are served from the database each time rather than cached.
CACHEABLE_MANIFEST_BYTES = 256 << 10


@dataclass
class RegistryContext:
    repositories: Repositories
    blobs: BlobReader
    uploads: BlobUploads
    generation: Generation
    # The pull-through cache, when upstreams are configured (set once storage is open).
    proxy: PullThrough | None = field(default=None, init=False)
    tags: GenerationCache[tuple[str, str], str] = field(init=False)
    manifests: GenerationCache[tuple[str, str], ManifestRecord] = field(init=False)
    # API token id -> still live; revoking a token bumps the generation, so this never lags.
    live_tokens: GenerationCache[str, bool] = field(init=False)

    def __post_init__(self) -> None:
        self.tags = GenerationCache(self.generation, 65536)
        self.manifests = GenerationCache(self.generation, 4096)
        self.live_tokens = GenerationCache(self.generation, 4096)

    def proxied(self, repository: str) -> PullThrough | None:
        """The pull-through cache when `repository` lies in it, else None."""
        proxy = self.proxy
        return proxy if proxy is not None and proxy.covers(repository) else None

    async def changed(self) -> None:
        """Await after a commit that moves or removes a tag, manifest or repository, or that
        revokes a credential: on return, no process serving this store trusts its caches."""
        await self.generation.bump()

    async def ensure_writable(self, repository: str, *, create: bool = True) -> None:
        """Refuse early, before a body is read, what the writing transaction would refuse.

        Only a courtesy to the client: the transaction that writes checks again
        (storage/repositories.py `writable_repository`), since a commit may land meanwhile.
        """
        if await self.repositories.is_immutable(repository):
            raise write_refused(RepositoryFrozen(repository))
        if not create and not await self.repositories.exists(repository):
            raise write_refused(RepositoryUnknown(repository))

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


# What the transaction that writes may refuse, whatever the handler checked before.
WriteRefusal = RepositoryFrozen | RepositoryUnknown | QuotaExceeded | PushRefused | TagImmutable
WRITE_REFUSALS = (RepositoryFrozen, RepositoryUnknown, QuotaExceeded, PushRefused, TagImmutable)


def write_refused(error: WriteRefusal) -> RegistryError:
    """The client's answer to a write the repository refused."""
    if isinstance(error, RepositoryFrozen):
        return RegistryError(
            ErrorCode.DENIED, "repository belongs to a committed Beaker image and is read-only"
        )
    if isinstance(error, QuotaExceeded):
        return RegistryError(
            ErrorCode.DENIED,
            str(error),
            detail={"account": error.account, "used": error.used, "limit": error.limit},
        )
    if isinstance(error, PushRefused):
        return RegistryError(ErrorCode.DENIED, str(error))
    if isinstance(error, TagImmutable):
        return RegistryError(
            ErrorCode.DENIED,
            str(error),
            detail={"tag": error.found.tag[:128], "rule": error.found.rule},
        )
    return RegistryError(
        ErrorCode.NAME_UNKNOWN,
        "repository does not exist, and a push creates one only in an account's namespace"
        " (`<account>/...`), never for a deleted image",
        detail={"name": error.name[:256]},
    )


REGISTRY = web.AppKey("registry", RegistryContext)
