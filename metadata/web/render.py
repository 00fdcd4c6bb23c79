"""Templates to responses: one Jinja2 environment with autoescaping, the filters the pages use,
and the headers every page carries.

Autoescaping is on for every template: a value reaches the page as text unless it is the
narrative's HTML, which was sanitized when rendered (metadata/narratives.py) and is the only
value marked safe (in views, with Markup).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined

from metadata.ids import rfc3339
from metadata.web.assets import Assets
from storage.sizes import human_bytes

# Scripts and styles from beakerd only (no inline code, no inline handlers), no remote content,
# forms posting back to beakerd only, never framed.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # Pages show what the signed-in account may see: no shared cache keeps them.
    "Cache-Control": "no-store",
}

_UNITS = (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600),
          ("minute", 60))  # fmt: skip


def size(value: int | None) -> str:
    return "-" if value is None else human_bytes(value)


def ago(timestamp: float, now: float | None = None) -> str:
    """`3 days ago`: the largest whole unit, for lists that are scanned rather than read."""
    seconds = max(0.0, (now if now is not None else time.time()) - timestamp)
    for unit, length in _UNITS:
        if seconds >= length:
            count = int(seconds // length)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def exact(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def joined(value: list[str] | None) -> str:
    """An exec-form list (entrypoint, command) as one would type it; `-` when unset."""
    if not value:
        return "-"
    return " ".join(part if part and " " not in part else repr(part) for part in value)


class Renderer:
    def __init__(self) -> None:
        self.assets = Assets()
        self.env = Environment(
            loader=PackageLoader("metadata.web", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.filters.update(size=size, ago=ago, exact=exact, rfc3339=rfc3339, joined=joined)
        self.env.globals["static"] = self.assets.url

    def html(self, template: str, context: dict[str, Any]) -> str:
        return self.env.get_template(template).render(context)

    def response(self, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
        return web.Response(
            text=self.html(template, context),
            status=status,
            content_type="text/html",
            headers=PAGE_HEADERS,
        )
