"""The static files (one stylesheet, one small script), served by beakerd from memory.

Each is named by a hash of its content (`beakerd.3f2a9c1d.css`), so it can be cached for a
year: a new release changes the name, never the bytes behind a name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

_FILES = {"beakerd.css": "text/css", "beakerd.js": "text/javascript"}
LONG_CACHE = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Asset:
    url: str
    content: bytes
    content_type: str


class Assets:
    def __init__(self) -> None:
        folder = resources.files("metadata.web") / "static"
        self.by_name: dict[str, Asset] = {}
        self._by_url_name: dict[str, Asset] = {}
        for name, content_type in _FILES.items():
            content = (folder / name).read_bytes()
            stem, _, ext = name.rpartition(".")
            hashed = f"{stem}.{hashlib.sha256(content).hexdigest()[:12]}.{ext}"
            asset = Asset(f"/static/{hashed}", content, content_type)
            self.by_name[name] = asset
            self._by_url_name[hashed] = asset

    def url(self, name: str) -> str:
        return self.by_name[name].url

    async def serve(self, request: web.Request) -> web.Response:
        asset = self._by_url_name.get(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound(text="no such file", headers={"Cache-Control": "no-store"})
        return web.Response(
            body=asset.content,
            content_type=asset.content_type,
            charset="utf-8",
            headers={"Cache-Control": LONG_CACHE, "X-Content-Type-Options": "nosniff"},
        )
