"""Write and read OCI image layout directories (the `oci:DIR:TAG` transport) in plain Python.

The tests make their images here rather than pulling them from anywhere: every byte is known,
so a round trip through the registry can be checked digest for digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """Stable bytes for a JSON document, so its digest is known before anyone stores it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tarball holding `files`, with fixed metadata so it is reproducible."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    # mtime=0 keeps the compressed bytes (and so the layer digest) reproducible.
    return gzip.compress(data, mtime=0)


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest or index says about the blob it points to."""

    media_type: str
    digest: str
    size: int
    platform: dict[str, str] | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.platform:
            out["platform"] = self.platform
        if self.annotations:
            out["annotations"] = self.annotations
        return out

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Descriptor:
        return cls(
            media_type=value["mediaType"],
            digest=value["digest"],
            size=int(value["size"]),
            platform=value.get("platform"),
            annotations=dict(value.get("annotations") or {}),
        )


class OciLayout:
    """An OCI image layout directory: `oci-layout`, `index.json`, and `blobs/sha256/<hex>`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        layout_file = root / "oci-layout"
        if not layout_file.exists():
            layout_file.write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        if not (root / "index.json").exists():
            self._write_index([])

    def _index_path(self) -> Path:
        return self.root / "index.json"

    def _write_index(self, manifests: list[dict[str, Any]]) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        self._index_path().write_bytes(canonical_json(index))

    def blob_path(self, digest: str) -> Path:
        algorithm, hex_digest = digest.split(":", 1)
        return self.root / "blobs" / algorithm / hex_digest

    def add_blob(self, data: bytes, media_type: str) -> Descriptor:
        digest = sha256_digest(data)
        self.blob_path(digest).write_bytes(data)
        return Descriptor(media_type, digest, len(data))

    def read_blob(self, digest: str) -> bytes:
        data = self.blob_path(digest).read_bytes()
        assert sha256_digest(data) == digest, f"blob {digest} in {self.root} is corrupt"
        return data

    def read_json(self, digest: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.read_blob(digest))
        return value

    def add_image(
        self, layers: list[dict[str, bytes]], architecture: str = "amd64", os_name: str = "linux"
    ) -> Descriptor:
        """Store a single-platform image (gzip layers, config, manifest); return its descriptor."""
        layer_descriptors = []
        diff_ids = []
        for files in layers:
            tar = layer_tar(files)
            diff_ids.append(sha256_digest(tar))
            layer_descriptors.append(self.add_blob(gzip_bytes(tar), OCI_LAYER_GZIP))
        config = {
            "architecture": architecture,
            "os": os_name,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        config_descriptor = self.add_blob(canonical_json(config), OCI_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_descriptor.to_json(),
            "layers": [d.to_json() for d in layer_descriptors],
        }
        stored = self.add_blob(canonical_json(manifest), OCI_MANIFEST)
        return Descriptor(
            OCI_MANIFEST,
            stored.digest,
            stored.size,
            platform={"architecture": architecture, "os": os_name},
        )

    def add_index(self, manifests: list[Descriptor]) -> Descriptor:
        """Store an image index (a multi-arch list) over already stored manifests."""
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [m.to_json() for m in manifests],
        }
        return self.add_blob(canonical_json(index), OCI_INDEX)

    def tag(self, descriptor: Descriptor, name: str) -> None:
        """Point tag `name` (what `oci:DIR:name` resolves) at `descriptor` in index.json."""
        entries = [
            e for e in self.tagged_entries() if e.get("annotations", {}).get(REF_NAME) != name
        ]
        tagged = Descriptor(descriptor.media_type, descriptor.digest, descriptor.size,
                            annotations={REF_NAME: name})  # fmt: skip
        entries.append(tagged.to_json())
        self._write_index(entries)

    def tagged_entries(self) -> list[dict[str, Any]]:
        index = json.loads(self._index_path().read_text())
        return list(index.get("manifests", []))

    def resolve(self, name: str) -> Descriptor:
        """The descriptor index.json holds for tag `name`."""
        for entry in self.tagged_entries():
            if entry.get("annotations", {}).get(REF_NAME) == name:
                return Descriptor.from_json(entry)
        raise KeyError(f"no tag {name!r} in {self.root}")


def random_layers(count: int, size: int, seed: bytes) -> list[dict[str, bytes]]:
    """`count` layers of one file each, whose content depends on `seed` (so runs do not collide)."""
    layers = []
    for i in range(count):
        block = hashlib.sha256(seed + i.to_bytes(4, "big")).digest()
        content = (block * (size // len(block) + 1))[:size]
        layers.append({f"layer{i}.bin": content})
    return layers
