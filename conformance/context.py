"""What every workflow gets: the client, the report, and a namespace of its own."""

from __future__ import annotations

from dataclasses import dataclass

from conformance.client import RegistryClient, SetupError
from conformance.content import Image, Manifest
from conformance.report import Report


@dataclass
class Context:
    client: RegistryClient
    report: Report
    # e.g. "conformance/3f9a1c2b": each workflow adds its own suffix, so runs never collide.
    namespace: str

    def repo(self, *parts: str) -> str:
        return "/".join([self.namespace, *parts])

    async def push_image(self, name: str, image: Image, *tags: str) -> None:
        """Push an image's blobs, then its manifest by each tag (or by digest when untagged)."""
        for blob in image.blobs:
            await self.client.push_blob(name, blob.data, blob.digest)
        await self.push_manifest(name, image.manifest, *tags)

    async def push_manifest(self, name: str, manifest: Manifest, *tags: str) -> None:
        for ref in tags or (manifest.digest,):
            await self.client.push_manifest(name, ref, manifest.body, manifest.media_type)


__all__ = ["Context", "SetupError"]
