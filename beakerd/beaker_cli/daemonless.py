"""Pushing an image from a file and pulling one into a file, with no Docker daemon.

The push reads a `docker-archive:`, `oci:` or `oci-archive:` source (image_sources.py) and
uploads what the registry lacks, then the manifests, the top one as `latest`. The pull writes
an OCI layout (`oci:DIR`) or a tarball that both `docker load` and skopeo read
(`docker-archive:PATH`: an OCI layout plus the manifest.json of `docker save`, as Docker 25 and
later write it). Blobs stream through in 1 MiB blocks and are checked against their digests on
the way; an output is complete or absent, never half written.

Both directions report as the Docker engine's JSON stream does (`{"id", "status",
"progressDetail"}`), so one display (progress.py) prints docker's lines on a pipe and live bars
on a terminal.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from beakerd.beaker_cli.errors import CliError
from beakerd.beaker_cli.image_sources import ImageSource
from beakerd.beaker_cli.oci import (
    LAYOUT_VERSION,
    OCI_INDEX,
    REF_NAME,
    Descriptor,
    ImageGraph,
    Manifest,
    Readable,
    blob_path,
    hasher_for,
    walk,
)
from beakerd.beaker_cli.registry_client import BLOCK_SIZE, RegistryClient

# One message of the Docker engine's push/pull stream.
Report = Callable[[Mapping[str, Any]], None]
OUTPUTS = ("docker-archive:", "oci:")
_CONFIG_SUFFIX = "config.v1+json"
_CONTAINER_CONFIG = "application/vnd.docker.container.image.v1+json"


@dataclass(frozen=True, slots=True)
class PushSummary:
    digest: str
    size: int
    bytes_sent: int
    layers_pushed: int
    layers_reused: int


def _is_config(blob: Descriptor) -> bool:
    return blob.media_type.endswith(_CONFIG_SUFFIX) or blob.media_type == _CONTAINER_CONFIG


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]


def push_source(
    source: ImageSource, client: RegistryClient, repository: str, report: Report
) -> PushSummary:
    """Upload the blobs the registry lacks, then the manifests; `latest` names the top one."""
    graph = source.graph
    report({"status": f"The push refers to repository [{client.endpoint.address}/{repository}]"})
    layers = [blob for blob in graph.blobs if not _is_config(blob)]
    # docker lists the top layer first.
    for layer in reversed(layers):
        report({"id": _short(layer.digest), "status": "Preparing"})
    sent = pushed = reused = 0
    for blob in reversed(graph.blobs):
        shown = not _is_config(blob)
        if client.blob_exists(repository, blob.digest):
            if shown:
                reused += 1
                report({"id": _short(blob.digest), "status": "Layer already exists"})
            continue
        meter = _Meter(report, _short(blob.digest), "Pushing", blob.size) if shown else None
        with contextlib.closing(source.open_blob(blob)) as stream:
            client.upload_blob(repository, blob.digest, blob.size, stream, meter)
        sent += blob.size
        if shown:
            pushed += 1
            report({"id": _short(blob.digest), "status": "Pushed"})
    for manifest in graph.manifests[:-1]:
        client.put_manifest(repository, manifest.digest, manifest)
    client.put_manifest(repository, "latest", graph.top)
    report({"status": f"latest: digest: {graph.top.digest} size: {len(graph.top.body)}"})
    return PushSummary(graph.top.digest, len(graph.top.body), sent, pushed, reused)


class _Meter:
    """Reports bytes moved for one layer as the engine does: `Pushing` with current/total."""

    # Not every block: a report per 1% (at least 1 MiB) keeps a terminal fluent.
    def __init__(self, report: Report, ident: str, status: str, total: int) -> None:
        self.report = report
        self.ident = ident
        self.status = status
        self.total = total
        self.current = 0
        self.step = max(total // 100, BLOCK_SIZE)
        self.next = self.step

    def __call__(self, count: int) -> None:
        self.current += count
        if self.current >= self.next or self.current == self.total:
            self.next = self.current + self.step
            detail = {"current": self.current, "total": self.total}
            self.report({"id": self.ident, "status": self.status, "progressDetail": detail})


# -- pulling into a file -------------------------------------------------------------------------


def is_output(target: str) -> bool:
    return target.startswith(OUTPUTS)


def pull_to(
    client: RegistryClient, repository: str, target: str, image_name: str, report: Report
) -> str:
    """Write `repository:latest` to `target` (`docker-archive:PATH` or `oci:DIR`).

    `image_name` (`name:tag`) is what `docker load` tags the image as, and the layout's tag.
    Returns the digest of what was written.
    """
    kind, _, path = target.partition(":")
    if kind not in {"docker-archive", "oci"} or not path:
        raise CliError(f"unknown output {target!r}: use docker-archive:PATH.tar or oci:DIR")
    top = client.get_manifest(repository, "latest")
    report({"status": f"latest: Pulling from {repository}"})
    if kind == "docker-archive" and top.is_index:
        # docker load takes one image: the platform of this machine, as docker pull would.
        top = client.get_manifest(repository, _platform_child(top).digest)
    graph = walk(top, lambda d: client.get_manifest(repository, d.digest, d.size))
    tag = image_name.rpartition(":")[2] if ":" in image_name.rpartition("/")[2] else "latest"
    writer: LayoutWriter
    with _writer(kind, Path(path)) as writer:
        for blob in graph.blobs:
            shown = not _is_config(blob)
            ident = _short(blob.digest)
            if writer.has(blob_path(blob.digest)):
                if shown:
                    report({"id": ident, "status": "Already exists"})
                continue
            meter = _Meter(report, ident, "Downloading", blob.size) if shown else None
            with contextlib.closing(client.open_blob(repository, blob.digest)) as stream:
                writer.add_stream(blob_path(blob.digest), blob, stream, meter)
            if shown:
                report({"id": ident, "status": "Pull complete"})
        for manifest in graph.manifests:
            writer.add_bytes(blob_path(manifest.digest), manifest.body)
        writer.add_bytes("oci-layout", LAYOUT_VERSION)
        writer.add_bytes("index.json", _index(graph.top, tag, image_name))
        if kind == "docker-archive":
            writer.add_bytes("manifest.json", _docker_manifest(graph, image_name))
    report({"status": f"Digest: {graph.top.digest}"})
    report({"status": f"Status: Wrote {image_name} to {target}"})
    return graph.top.digest


def _platform_child(index: Manifest) -> Descriptor:
    children = index.children()
    if not children:
        raise CliError(f"index {index.digest} lists no manifest")
    wanted = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    for child in children:
        spec = child.platform or {}
        if spec.get("os") == "linux" and spec.get("architecture") == wanted:
            return child
    return children[0]


def _index(top: Manifest, tag: str, image_name: str) -> bytes:
    descriptor = Descriptor(top.media_type, top.digest, len(top.body)).wire()
    descriptor["annotations"] = {REF_NAME: tag, "io.containerd.image.name": image_name}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]}
    return json.dumps(index, separators=(",", ":")).encode()


def _docker_manifest(graph: ImageGraph, image_name: str) -> bytes:
    config, *layers = graph.top.blobs()
    entry = {
        "Config": blob_path(config.digest),
        "RepoTags": [image_name],
        "Layers": [blob_path(layer.digest) for layer in layers],
    }
    return json.dumps([entry], separators=(",", ":")).encode()


class LayoutWriter(Protocol):
    def has(self, name: str) -> bool: ...

    def add_stream(
        self, name: str, blob: Descriptor, stream: Readable, meter: Callable[[int], None] | None
    ) -> None: ...

    def add_bytes(self, name: str, data: bytes) -> None: ...


class _Verified:
    """Reads a blob through, hashing it; `check()` after the last byte."""

    def __init__(
        self, inner: Readable, blob: Descriptor, meter: Callable[[int], None] | None
    ) -> None:
        self.inner = inner
        self.blob = blob
        self.meter = meter
        self.hasher = hasher_for(blob.digest)
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self.inner.read(size)
        self.hasher.update(data)
        self.count += len(data)
        if data and self.meter is not None:
            self.meter(len(data))
        return data

    def check(self) -> None:
        actual = f"{self.blob.digest.partition(':')[0]}:{self.hasher.hexdigest()}"
        if self.count != self.blob.size or actual != self.blob.digest:
            raise CliError(
                f"blob {self.blob.digest} arrived as {self.count} bytes with digest {actual}"
            )


class FolderWriter:
    """An OCI layout directory: each file written beside its place, then renamed into it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def has(self, name: str) -> bool:
        return (self.root / name).is_file()

    def add_stream(
        self, name: str, blob: Descriptor, stream: Readable, meter: Callable[[int], None] | None
    ) -> None:
        verified = _Verified(stream, blob, meter)
        with self._staged(name) as f:
            while chunk := verified.read(BLOCK_SIZE):
                f.write(chunk)
            verified.check()

    def add_bytes(self, name: str, data: bytes) -> None:
        with self._staged(name) as f:
            f.write(data)

    @contextlib.contextmanager
    def _staged(self, name: str) -> Iterator[io.BufferedWriter]:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(target.name + ".partial")
        try:
            with staged.open("wb") as f:
                yield f
            os.replace(staged, target)
        finally:
            staged.unlink(missing_ok=True)


class TarWriter:
    """A tarball written to a staged name and renamed into place once complete."""

    def __init__(self, archive: tarfile.TarFile) -> None:
        self.archive = archive
        self.names: set[str] = set()

    def has(self, name: str) -> bool:
        return name in self.names

    def add_stream(
        self, name: str, blob: Descriptor, stream: Readable, meter: Callable[[int], None] | None
    ) -> None:
        verified = _Verified(stream, blob, meter)
        self.archive.addfile(_member(name, blob.size), verified)
        verified.check()
        self.names.add(name)

    def add_bytes(self, name: str, data: bytes) -> None:
        self.archive.addfile(_member(name, len(data)), io.BytesIO(data))
        self.names.add(name)


def _member(name: str, size: int) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size = size
    member.mode = 0o644
    return member


@contextlib.contextmanager
def _writer(kind: str, path: Path) -> Iterator[LayoutWriter]:
    if kind == "oci":
        yield FolderWriter(path)
        return
    staged = path.with_name(path.name + ".partial")
    try:
        with tarfile.open(staged, "w", format=tarfile.PAX_FORMAT) as archive:
            yield TarWriter(archive)
        os.replace(staged, path)
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        staged.unlink(missing_ok=True)
