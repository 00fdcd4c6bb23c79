"""Test content: blobs, and the manifest kinds the suite pushes (OCI image, OCI index, Docker
schema2, artifact manifests with an empty config, referrers with a `subject`)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# Every manifest type the suite pushes, for the Accept header of pulls.
ACCEPT_MANIFESTS = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST])

# The error codes the spec's table allows in a JSON error body.
SPEC_ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
    }
)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def absent_digest() -> str:
    """A digest of random bytes, so certainly of nothing stored anywhere."""
    return sha256(os.urandom(32))


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


EMPTY_CONFIG = Blob(b"{}", OCI_EMPTY)


def layer(media_type: str = OCI_LAYER, size: int = 2048) -> tuple[Blob, str]:
    """A real gzipped tar holding one file of random bytes, and its uncompressed diff_id."""
    payload = os.urandom(size)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("conformance.bin")
        info.size = len(payload)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = raw.getvalue()
    return Blob(gzip.compress(tar_bytes, mtime=0), media_type), sha256(tar_bytes)


def config(diff_ids: list[str], media_type: str = OCI_CONFIG) -> Blob:
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    return Blob(encode(doc), media_type)


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=2).encode() + b"\n"


@dataclass(frozen=True)
class Manifest:
    """A manifest's exact bytes, as pushed; the registry must hand these very bytes back."""

    body: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.body)

    @property
    def size(self) -> int:
        return len(self.body)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


def image_manifest(
    config_blob: Blob,
    layers: list[Blob],
    *,
    artifact_type: str | None = None,
    subject: Manifest | None = None,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = config_blob.descriptor()
    doc["layers"] = [b.descriptor() for b in layers]
    if subject is not None:
        doc["subject"] = subject.descriptor()
    if annotations:
        doc["annotations"] = annotations
    return Manifest(encode(doc), OCI_MANIFEST)


def image_index(
    manifests: list[Manifest],
    *,
    artifact_type: str | None = None,
    subject: Manifest | None = None,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["manifests"] = [
        m.descriptor(platform={"architecture": "amd64", "os": "linux"}) for m in manifests
    ]
    if subject is not None:
        doc["subject"] = subject.descriptor()
    if annotations:
        doc["annotations"] = annotations
    return Manifest(encode(doc), OCI_INDEX)


def docker_manifest(config_blob: Blob, layers: list[Blob]) -> Manifest:
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [b.descriptor() for b in layers],
    }
    return Manifest(encode(doc), DOCKER_MANIFEST)


@dataclass(frozen=True)
class Image:
    """An image's blobs and manifest, for workflows that need one in place."""

    config: Blob
    layers: list[Blob]
    manifest: Manifest

    @property
    def blobs(self) -> list[Blob]:
        return [self.config, *self.layers]


def oci_image(annotations: dict[str, str] | None = None) -> Image:
    lay, diff_id = layer()
    cfg = config([diff_id])
    return Image(cfg, [lay], image_manifest(cfg, [lay], annotations=annotations))


def docker_image() -> Image:
    lay, diff_id = layer(DOCKER_LAYER)
    cfg = config([diff_id], DOCKER_CONFIG)
    return Image(cfg, [lay], docker_manifest(cfg, [lay]))
