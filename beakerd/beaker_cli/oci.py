"""OCI image layouts and the media types of images, as the daemon-less push and pull see them.

An image is a graph: a top manifest (an image manifest, or an index of per-platform manifests)
over configs and layers, every node named by its digest. `ImageGraph` holds the manifests'
bytes (small) and the blobs' descriptors (what to stream, never their bytes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from beakerd.beaker_cli.errors import CliError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
# What a pull asks for: every kind of manifest the graph can hold.
ACCEPT = ", ".join(sorted(INDEX_TYPES | MANIFEST_TYPES))
REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'
# Nested indexes deeper than this are refused: a graph is a few levels at most.
_MAX_DEPTH = 4


class Readable(Protocol):
    """What a blob or manifest is read from: a file, a tar member, an HTTP response."""

    def read(self, size: int = -1, /) -> bytes: ...


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hasher_for(digest: str) -> hashlib._Hash:
    """A fresh hash of the algorithm `digest` names (sha256 or sha512)."""
    algorithm = digest.partition(":")[0]
    if algorithm not in {"sha256", "sha512"}:
        raise CliError(f"unsupported digest algorithm in {digest!r}")
    return hashlib.new(algorithm)


def blob_path(digest: str) -> str:
    """Where an OCI layout keeps a blob, relative to its root (`blobs/sha256/<hex>`)."""
    algorithm, _, encoded = digest.partition(":")
    if not algorithm.isalnum() or not encoded.isalnum():
        raise CliError(f"invalid digest {digest!r}")
    return f"blobs/{algorithm}/{encoded}"


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: Any, where: str) -> Descriptor:
        if not isinstance(raw, dict):
            raise CliError(f"{where}: a descriptor is not an object")
        digest, size = raw.get("digest"), raw.get("size")
        if not isinstance(digest, str) or not isinstance(size, int) or size < 0:
            raise CliError(f"{where}: a descriptor lacks its digest or size")
        platform = raw.get("platform")
        return cls(
            str(raw.get("mediaType") or ""),
            digest,
            size,
            platform if isinstance(platform, dict) else None,
        )

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest}
        out["size"] = self.size
        if self.platform:
            out["platform"] = self.platform
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    digest: str
    media_type: str
    body: bytes

    @property
    def document(self) -> dict[str, Any]:
        try:
            document = json.loads(self.body)
        except ValueError:
            raise CliError(f"manifest {self.digest} is not JSON") from None
        if not isinstance(document, dict):
            raise CliError(f"manifest {self.digest} is not a JSON object")
        return document

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES or "manifests" in self.document

    def children(self) -> list[Descriptor]:
        """The manifests of an index."""
        raw = self.document.get("manifests") or []
        return [Descriptor.parse(d, f"index {self.digest}") for d in raw]

    def blobs(self) -> list[Descriptor]:
        """An image manifest's config, then its layers in order."""
        document = self.document
        where = f"manifest {self.digest}"
        config = Descriptor.parse(document.get("config"), where)
        layers = [Descriptor.parse(d, where) for d in document.get("layers") or []]
        return [config, *layers]


def media_type_of(body: bytes, given: str | None = None) -> str:
    """A manifest's media type: as given, else as the document says, else by its shape."""
    if given:
        return given
    try:
        document = json.loads(body)
    except ValueError:
        raise CliError("a manifest is not JSON") from None
    declared = document.get("mediaType") if isinstance(document, dict) else None
    if isinstance(declared, str) and declared:
        return declared
    return OCI_INDEX if isinstance(document, dict) and "manifests" in document else OCI_MANIFEST


@dataclass
class ImageGraph:
    """An image's manifests (top last) and the blobs they name, each listed once."""

    top: Manifest
    manifests: list[Manifest] = field(default_factory=list)
    blobs: list[Descriptor] = field(default_factory=list)


FetchManifest = Callable[[Descriptor], Manifest]


def walk(top: Manifest, fetch: FetchManifest) -> ImageGraph:
    """The whole graph under `top`, children before parents, each digest once."""
    graph = ImageGraph(top)
    seen_blobs: set[str] = set()
    seen_manifests: set[str] = set()

    def visit(manifest: Manifest, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise CliError(f"manifest {manifest.digest}: indexes nested too deeply")
        if manifest.is_index:
            for child in manifest.children():
                if child.digest not in seen_manifests:
                    visit(fetch(child), depth + 1)
        else:
            for blob in manifest.blobs():
                if blob.digest not in seen_blobs:
                    seen_blobs.add(blob.digest)
                    graph.blobs.append(blob)
        seen_manifests.add(manifest.digest)
        graph.manifests.append(manifest)

    visit(top, 0)
    return graph


def read_verified(stream: Readable, size: int, digest: str, limit: int = 4 << 20) -> bytes:
    """A small document (manifest, index) read whole and checked against its digest."""
    if size > limit:
        raise CliError(f"{digest} is {size} bytes: too large for a manifest")
    data = stream.read(size + 1)
    hasher = hasher_for(digest)
    hasher.update(data)
    if len(data) != size or f"{digest.partition(':')[0]}:{hasher.hexdigest()}" != digest:
        raise CliError(f"content of {digest} does not match its digest")
    return data
