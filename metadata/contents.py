"""What is inside an image: its platforms, and for each the config (entrypoint, command,
environment, labels, ports, ...), the build history matched to its layers, and the layers.

Everything is read from what the registry stores, through its public functions: manifests from
the database (RegistryContext.manifest, itself cached) and config blobs through the blob
store's `read` (files or S3 alike). Content under a digest never changes, so what is parsed is
cached by digest (configs by config digest, platform lists by manifest digest) and is always
valid; the cache is bounded, and a miss costs one read. Referrers (signatures, SBOMs,
attestations) can be added to a repository later, so they are asked for on every view (one
indexed query).

Documents are untrusted: anything malformed, missing or oversized is shown as absent, never an
error.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from registry.context import RegistryContext
from storage.blobstore import BlobMissing
from storage.digests import Digest, InvalidDigest
from storage.repositories import ReferrerRecord

# An image config is a few KiB; a bigger one is not shown rather than read whole.
MAX_CONFIG_BYTES = 4 << 20
_MAX_INDEX_CHILDREN = 64
ATTESTATION = "attestation-manifest"

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str
    size: int
    media_type: str


@dataclass(frozen=True, slots=True)
class HistoryStep:
    created_by: str
    created: str
    comment: str
    # The layer this step made; None for steps that change only the config (ENV, CMD, ...).
    layer: Layer | None


@dataclass(frozen=True, slots=True)
class ImageConfig:
    os: str
    architecture: str
    variant: str
    created: str
    entrypoint: list[str] | None
    cmd: list[str] | None
    working_dir: str
    user: str
    env: list[str]
    labels: dict[str, str]
    exposed_ports: list[str]
    history: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Platform:
    """One platform's image: an image manifest, its config and its layers."""

    manifest_digest: str
    os: str
    architecture: str
    variant: str
    attestation: bool
    config_digest: str | None
    config_size: int
    config: ImageConfig | None
    layers: list[Layer]
    history: list[HistoryStep]

    @property
    def name(self) -> str:
        parts = [self.os or "unknown", self.architecture or "unknown"]
        return "/".join(parts + ([self.variant] if self.variant else []))

    @property
    def size(self) -> int:
        """Config and layers, as an image's size is counted when it is committed."""
        return self.config_size + sum(layer.size for layer in self.layers)


@dataclass(frozen=True, slots=True)
class Contents:
    digest: str
    media_type: str
    is_index: bool
    platforms: list[Platform]
    referrers: list[ReferrerRecord] = field(default_factory=list)

    @property
    def images(self) -> list[Platform]:
        """The platforms that are runnable images (an index's attestations left out)."""
        return [p for p in self.platforms if not p.attestation]


class ContentsReader:
    def __init__(self, registry: RegistryContext, max_entries: int = 4096) -> None:
        self.registry = registry
        self._configs: Lru[str, ImageConfig] = Lru(max_entries)
        self._platforms: Lru[str, tuple[str, bool, list[Platform]]] = Lru(max_entries)

    async def contents(self, repository: str, digest: str) -> Contents | None:
        """The image `repository@digest`, with its referrers; None if that is no manifest."""
        known = self._platforms.get(digest)
        if known is None:
            record = await self.registry.manifest(repository, digest)
            if record is None:
                return None
            document = _json_object(record.content)
            children = document.get("manifests")
            if isinstance(children, list):
                platforms = await self._index(repository, children)
                known = (record.media_type, True, platforms)
            else:
                known = (record.media_type, False, [await self._image(repository, digest, {})])
            self._platforms.put(digest, known)
        media_type, is_index, platforms = known
        referrers = await self.referrers(
            repository, [digest, *(p.manifest_digest for p in platforms)]
        )
        return Contents(digest, media_type, is_index, platforms, referrers)

    async def referrers(self, repository: str, subjects: list[str]) -> list[ReferrerRecord]:
        found: list[ReferrerRecord] = []
        for subject in dict.fromkeys(subjects):
            found += await self.registry.repositories.referrers(repository, subject)
        return found

    async def _index(self, repository: str, children: list[Any]) -> list[Platform]:
        platforms = []
        for child in children[:_MAX_INDEX_CHILDREN]:
            if isinstance(child, dict) and isinstance(child.get("digest"), str):
                platforms.append(await self._image(repository, child["digest"], child))
        return platforms

    async def _image(self, repository: str, digest: str, descriptor: dict[str, Any]) -> Platform:
        record = await self.registry.manifest(repository, digest)
        document = _json_object(record.content) if record else {}
        found = (_layer(d) for d in _list(document.get("layers")) if isinstance(d, dict))
        layers = [layer for layer in found if layer is not None]
        config_descriptor = document.get("config")
        config_digest = (
            config_descriptor.get("digest") if isinstance(config_descriptor, dict) else None
        )
        config_digest = config_digest if isinstance(config_digest, str) else None
        config_size = _dict(config_descriptor).get("size")
        config_size = config_size if isinstance(config_size, int) else 0
        config = await self._config(config_digest, config_size) if config_digest else None
        platform = _dict(descriptor.get("platform"))
        annotations = _dict(descriptor.get("annotations"))
        return Platform(
            manifest_digest=digest,
            os=_str(platform.get("os")) or (config.os if config else ""),
            architecture=_str(platform.get("architecture"))
            or (config.architecture if config else ""),
            variant=_str(platform.get("variant")) or (config.variant if config else ""),
            attestation=annotations.get("vnd.docker.reference.type") == ATTESTATION,
            config_digest=config_digest,
            config_size=config_size,
            config=config,
            layers=layers,
            history=_history(config, layers),
        )

    async def _config(self, digest: str, size: int) -> ImageConfig | None:
        cached = self._configs.get(digest)
        if cached is not None:
            return cached
        try:
            parsed_digest = Digest.parse(digest)
        except InvalidDigest:
            return None
        if not 0 < size <= MAX_CONFIG_BYTES:
            return None
        chunks = []
        try:
            async for chunk in self.registry.blobs.read(parsed_digest, 0, size):
                chunks.append(chunk)
        except BlobMissing:
            return None
        config = _image_config(_json_object(b"".join(chunks)))
        self._configs.put(digest, config)
        return config


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return document if isinstance(document, dict) else {}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _strings(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [item for item in value if isinstance(item, str)]


def _layer(descriptor: dict[str, Any]) -> Layer | None:
    digest, size = descriptor.get("digest"), descriptor.get("size")
    if not isinstance(digest, str):
        return None
    return Layer(digest, size if isinstance(size, int) else 0, _str(descriptor.get("mediaType")))


def _image_config(document: dict[str, Any]) -> ImageConfig:
    run = _dict(document.get("config"))
    labels = {k: v for k, v in _dict(run.get("Labels")).items() if isinstance(v, str)}
    return ImageConfig(
        os=_str(document.get("os")),
        architecture=_str(document.get("architecture")),
        variant=_str(document.get("variant")),
        created=_str(document.get("created")),
        entrypoint=_strings(run.get("Entrypoint")),
        cmd=_strings(run.get("Cmd")),
        working_dir=_str(run.get("WorkingDir")),
        user=_str(run.get("User")),
        env=_strings(run.get("Env")) or [],
        labels=labels,
        exposed_ports=sorted(_dict(run.get("ExposedPorts"))),
        history=[step for step in _list(document.get("history")) if isinstance(step, dict)],
    )


def _history(config: ImageConfig | None, layers: list[Layer]) -> list[HistoryStep]:
    """The build steps, each non-empty one matched in order with the layer it made."""
    if config is None:
        return []
    remaining = iter(layers)
    steps = []
    for step in config.history:
        layer = None if step.get("empty_layer") is True else next(remaining, None)
        steps.append(
            HistoryStep(
                created_by=_str(step.get("created_by")),
                created=_str(step.get("created")),
                comment=_str(step.get("comment")),
                layer=layer,
            )
        )
    return steps
