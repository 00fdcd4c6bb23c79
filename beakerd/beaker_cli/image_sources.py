"""Images read without a Docker daemon: `docker-archive:`, `oci:` and `oci-archive:` references.

The names follow skopeo's transports:
- `docker-archive:PATH[:REF]`: a `docker save` tarball, in the legacy layout (manifest.json over
  `<id>/layer.tar` files) or in the OCI layout that Docker 25 and later write beside it;
- `oci:DIR[:TAG]`: an OCI image layout directory;
- `oci-archive:PATH[:TAG]`: the same layout in a tarball.

A source gives the image's graph (manifests in memory, blobs as descriptors) and opens one blob
at a time as a stream: a tarball is read in place, never unpacked, so memory stays flat however
big the layers are.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from beakerd.beaker_cli.errors import CliError
from beakerd.beaker_cli.oci import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    REF_NAME,
    Descriptor,
    ImageGraph,
    Manifest,
    blob_path,
    media_type_of,
    read_verified,
    sha256_digest,
    walk,
)

TRANSPORTS = ("docker-archive:", "oci-archive:", "oci:")
_CONTAINERD_NAME = "io.containerd.image.name"
_HASH_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_MAX_DOCUMENT = 4 << 20


def is_transport(reference: str) -> bool:
    """Whether `reference` names an image on disk rather than one in the Docker engine."""
    return reference.startswith(TRANSPORTS)


class Files(Protocol):
    """The files of a layout: a folder, or the members of a tarball read in place."""

    def exists(self, name: str) -> bool: ...

    def size(self, name: str) -> int: ...

    def open(self, name: str) -> IO[bytes]: ...


class FolderFiles:
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise CliError(f"no such directory: {root}")
        self.root = root

    def _path(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise CliError(f"{name!r} points outside {self.root}")
        return path

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size

    def open(self, name: str) -> IO[bytes]:
        try:
            return self._path(name).open("rb")
        except OSError as e:
            raise CliError(f"cannot read {name} in {self.root}: {e.strerror or e}") from None


class TarFiles:
    def __init__(self, archive: tarfile.TarFile, label: str) -> None:
        self.archive = archive
        self.label = label
        self.members = {_normal(m.name): m for m in archive.getmembers() if m.isfile() or m.issym()}

    def _member(self, name: str) -> tarfile.TarInfo:
        member = self.members.get(_normal(name))
        if member is None:
            raise CliError(f"{self.label} has no {name}")
        return member

    def exists(self, name: str) -> bool:
        return _normal(name) in self.members

    def size(self, name: str) -> int:
        return self._member(name).size

    def open(self, name: str) -> IO[bytes]:
        stream = self.archive.extractfile(self._member(name))
        if stream is None:
            raise CliError(f"{self.label}: {name} is not a file")
        return stream


def _normal(name: str) -> str:
    return name.removeprefix("./").lstrip("/")


def _read_json(files: Files, name: str) -> Any:
    if files.size(name) > _MAX_DOCUMENT:
        raise CliError(f"{name} is too large")
    with files.open(name) as f:
        try:
            return json.loads(f.read())
        except ValueError:
            raise CliError(f"{name} is not valid JSON") from None


@dataclass
class ImageSource:
    """An image's graph and where each of its blobs lies in `files`."""

    label: str
    graph: ImageGraph
    files: Files
    # digest -> file name, for blobs not at their layout address (legacy docker-archive)
    paths: dict[str, str]

    def open_blob(self, descriptor: Descriptor) -> IO[bytes]:
        return self.files.open(self.paths.get(descriptor.digest) or blob_path(descriptor.digest))


@contextlib.contextmanager
def open_source(reference: str) -> Iterator[ImageSource]:
    """The image that a transport reference names, open for reading until the block ends."""
    transport, _, rest = reference.partition(":")
    path, tag = _split_reference(rest)
    if transport == "oci":
        yield _oci_source(FolderFiles(Path(path)), tag, reference)
        return
    try:
        archive = tarfile.open(path, "r:")
    except FileNotFoundError:
        raise CliError(f"no such file: {path}") from None
    except (OSError, tarfile.TarError) as e:
        raise CliError(f"cannot read {path} as a tar archive: {e}") from None
    with archive:
        files = TarFiles(archive, path)
        if transport == "oci-archive" or (
            files.exists("index.json") and files.exists("oci-layout") and tag is None
        ):
            yield _oci_source(files, tag, reference)
        else:
            yield _docker_archive_source(files, tag, reference)


def _split_reference(rest: str) -> tuple[str, str | None]:
    """`PATH[:TAG]`: a final `:TAG` with no slash in it is a tag, as skopeo reads it."""
    if not rest:
        raise CliError("a path is missing after the transport (e.g. oci:./layout:latest)")
    head, sep, tail = rest.rpartition(":")
    if sep and head and tail and "/" not in tail:
        return head, tail
    return rest, None


# -- OCI layouts ---------------------------------------------------------------------------------


def _oci_source(files: Files, tag: str | None, label: str) -> ImageSource:
    if not files.exists("oci-layout") or not files.exists("index.json"):
        raise CliError(f"{label}: not an OCI image layout (no oci-layout or index.json)")
    index = _read_json(files, "index.json")
    raw = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(raw, list) or not raw:
        raise CliError(f"{label}: index.json lists no image")
    chosen = _choose(raw, tag, label)

    def fetch(descriptor: Descriptor) -> Manifest:
        with files.open(blob_path(descriptor.digest)) as f:
            body = read_verified(f, descriptor.size, descriptor.digest)
        return Manifest(descriptor.digest, media_type_of(body, descriptor.media_type), body)

    return ImageSource(label, walk(fetch(chosen), fetch), files, {})


def _choose(raw: list[Any], tag: str | None, label: str) -> Descriptor:
    entries = [e for e in raw if isinstance(e, dict)]
    if tag is not None:
        matching = [e for e in entries if tag in _names(e)]
        if not matching:
            raise CliError(f"{label}: no image tagged {tag!r} (tags: {_tags(entries)})")
        return Descriptor.parse(matching[0], label)
    if len(entries) != 1:
        raise CliError(f"{label} holds {len(entries)} images: name one (tags: {_tags(entries)})")
    return Descriptor.parse(entries[0], label)


def _names(entry: dict[str, Any]) -> set[str]:
    annotations = entry.get("annotations") or {}
    names = {str(annotations.get(REF_NAME) or "")}
    full = str(annotations.get(_CONTAINERD_NAME) or "")
    if full:
        names |= {full, full.rpartition(":")[2]}
    return names - {""}


def _tags(entries: list[dict[str, Any]]) -> str:
    tags = sorted({name for e in entries for name in _names(e)})
    return ", ".join(tags) or "none"


# -- docker save, legacy layout ------------------------------------------------------------------


def _docker_archive_source(files: Files, ref: str | None, label: str) -> ImageSource:
    if not files.exists("manifest.json"):
        raise CliError(f"{label}: not a docker save archive (no manifest.json)")
    entries = _read_json(files, "manifest.json")
    if not isinstance(entries, list) or not entries:
        raise CliError(f"{label}: manifest.json lists no image")
    entry = _docker_entry(entries, ref, label)
    config_name = str(entry.get("Config") or "")
    with files.open(config_name) as f:
        config = f.read(_MAX_DOCUMENT + 1)
    if len(config) > _MAX_DOCUMENT:
        raise CliError(f"{label}: {config_name} is too large for an image config")
    config_digest = sha256_digest(config)
    paths = {config_digest: config_name}
    layers = []
    diff_ids = _diff_ids(config, label)
    layer_names = [str(name) for name in entry.get("Layers") or []]
    if len(layer_names) != len(diff_ids):
        raise CliError(f"{label}: the config lists {len(diff_ids)} layers, the archive has"
                       f" {len(layer_names)}")  # fmt: skip
    for name, diff_id in zip(layer_names, diff_ids, strict=True):
        layer = _layer_descriptor(files, name, diff_id)
        paths[layer.digest] = name
        layers.append(layer)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": Descriptor(OCI_CONFIG, config_digest, len(config)).wire(),
        "layers": [layer.wire() for layer in layers],
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    top = Manifest(sha256_digest(body), OCI_MANIFEST, body)
    blobs = [Descriptor(OCI_CONFIG, config_digest, len(config)), *layers]
    return ImageSource(label, ImageGraph(top, [top], _unique(blobs)), files, paths)


def _docker_entry(entries: list[Any], ref: str | None, label: str) -> dict[str, Any]:
    images = [e for e in entries if isinstance(e, dict)]
    if ref is None:
        if len(images) != 1:
            raise CliError(f"{label} holds {len(images)} images: name one as {label}:REPO:TAG")
        return images[0]
    for image in images:
        tags = [str(t) for t in image.get("RepoTags") or []]
        if ref in tags or f"{ref}:latest" in tags or any(t.endswith("/" + ref) for t in tags):
            return image
    raise CliError(f"{label}: no image tagged {ref!r}")


def _diff_ids(config: bytes, label: str) -> list[str]:
    try:
        document = json.loads(config)
        diff_ids = document["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        raise CliError(f"{label}: the image config has no rootfs.diff_ids") from None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise CliError(f"{label}: the image config's rootfs.diff_ids are not digests")
    return [str(d) for d in diff_ids]


def _layer_descriptor(files: Files, name: str, diff_id: str) -> Descriptor:
    """A layer as stored: uncompressed (its digest is its diff ID) or compressed (hashed here)."""
    size = files.size(name)
    with files.open(name) as f:
        magic = f.read(4)
    if magic.startswith(_GZIP_MAGIC):
        media_type = OCI_LAYER_GZIP
    elif magic.startswith(_ZSTD_MAGIC):
        media_type = OCI_LAYER_ZSTD
    else:
        return Descriptor(OCI_LAYER, diff_id, size)
    hasher = hashlib.sha256()
    with files.open(name) as f:
        while chunk := f.read(_HASH_CHUNK):
            hasher.update(chunk)
    return Descriptor(media_type, "sha256:" + hasher.hexdigest(), size)


def _unique(blobs: list[Descriptor]) -> list[Descriptor]:
    seen: dict[str, Descriptor] = {}
    for blob in blobs:
        seen.setdefault(blob.digest, blob)
    return list(seen.values())
