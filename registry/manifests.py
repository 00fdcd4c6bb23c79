"""Manifest parsing and validation: Docker schema 2 manifests and lists, OCI manifests and
indexes (OCI artifacts included), and what each one references."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from registry.errors import ErrorCode, RegistryError
from storage.digests import Digest, InvalidDigest
from storage.repositories import NewManifest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

IMAGE_MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
MANIFEST_TYPES = IMAGE_MANIFEST_TYPES | INDEX_TYPES

MAX_MANIFEST_BYTES = 4 << 20


class Descriptor(BaseModel):
    model_config = ConfigDict(extra="allow")

    mediaType: str = Field(min_length=1, max_length=255)
    digest: str
    size: StrictInt = Field(ge=0)
    urls: list[str] | None = None
    annotations: dict[str, str] | None = None
    artifactType: str | None = None

    @field_validator("digest")
    @classmethod
    def _digest_is_well_formed(cls, value: str) -> str:
        try:
            Digest.parse(value)
        except InvalidDigest as e:
            raise ValueError(str(e)) from None
        return value


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    schemaVersion: Literal[2]
    mediaType: str | None = None
    artifactType: str | None = None
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None


class ImageManifest(_Manifest):
    config: Descriptor
    layers: list[Descriptor]


class ImageIndex(_Manifest):
    manifests: list[Descriptor]


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    blobs: list[Descriptor]
    manifests: list[Descriptor]
    subject: str | None
    artifact_type: str | None
    annotations: dict[str, str] | None

    def stored(self, digest: Digest, content: bytes) -> NewManifest:
        """What the repositories store of this manifest, whether pushed or cached."""
        return NewManifest(
            digest=str(digest),
            media_type=self.media_type,
            content=content,
            artifact_type=self.artifact_type,
            subject=self.subject,
            annotations=self.annotations,
            blob_digests=[d.digest for d in self.blobs],
            manifest_digests=[d.digest for d in self.manifests],
        )


def _invalid(message: str, detail: Any = None) -> RegistryError:
    return RegistryError(ErrorCode.MANIFEST_INVALID, message, detail)


def _bare_media_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def _decode(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise _invalid("manifest is not UTF-8") from None
    except RecursionError:
        raise _invalid("manifest is nested too deeply") from None
    except ValueError as e:
        raise _invalid(f"manifest is not valid JSON: {e}") from None
    if not isinstance(document, dict):
        raise _invalid("manifest must be a JSON object")
    return document


def _media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    header = _bare_media_type(content_type)
    if declared and header and header in MANIFEST_TYPES and declared != header:
        raise _invalid(f"mediaType {declared} does not match Content-Type {header}")
    media_type = declared or header
    if media_type not in MANIFEST_TYPES:
        # Neither says: an OCI manifest or index may omit both, so tell them by shape.
        if "manifests" in document:
            media_type = OCI_INDEX
        elif "config" in document:
            media_type = OCI_MANIFEST
        else:
            raise _invalid(f"unsupported manifest media type {media_type!r}")
    return media_type


def _validation_detail(error: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in error.errors()[:20]
    ]


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    """Check a manifest's form and list what it references; raises MANIFEST_INVALID."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise RegistryError(ErrorCode.MANIFEST_INVALID, "manifest exceeds 4 MiB", status=413)
    document = _decode(body)
    media_type = _media_type(document, content_type)
    try:
        if media_type in IMAGE_MANIFEST_TYPES:
            image = ImageManifest.model_validate(document)
            # Foreign layers (with urls) live elsewhere and are never pushed here.
            blobs = [image.config, *(layer for layer in image.layers if not layer.urls)]
            children: list[Descriptor] = []
            artifact_type = image.artifactType or (
                image.config.mediaType if media_type == OCI_MANIFEST else None
            )
            manifest: _Manifest = image
        else:
            index = ImageIndex.model_validate(document)
            blobs, children = [], index.manifests
            artifact_type = index.artifactType
            manifest = index
    except ValidationError as e:
        raise _invalid("manifest does not match its schema", _validation_detail(e)) from None
    return ParsedManifest(
        media_type=media_type,
        blobs=blobs,
        manifests=children,
        subject=manifest.subject.digest if manifest.subject else None,
        artifact_type=artifact_type,
        annotations=manifest.annotations,
    )


def accepts(accept_header: str | None, media_type: str) -> bool:
    """Whether a manifest of `media_type` may answer a request with this Accept header.

    With no Accept, a wildcard or plain JSON the client takes anything; otherwise the type must
    be listed. Docker schema 2 manifests are the exception, as in distribution: every client
    since 2016 reads them, including those that list only OCI types.
    """
    if not accept_header or media_type == DOCKER_MANIFEST:
        return True
    offered = {_bare_media_type(part) for part in accept_header.split(",")}
    return bool(offered & {media_type, "*/*", "application/*", "application/json"})
