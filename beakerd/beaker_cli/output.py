"""How the CLI shows things: the seed's inspect JSON, plain tables, and the three output modes.

Every command has a human form; `--format json` prints its JSON instead, and `-q/--quiet` only
the IDs (or names) a script would want next, one a line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from beakerd.beaker_cli.models import Account, Image, Token, Workspace
from storage.sizes import human_bytes


def account_json(account: Account | None) -> dict[str, Any] | None:
    if account is None:
        return None
    return {"id": account.id, "name": account.name, "display_name": account.display_name or ""}


def image_json(image: Image) -> dict[str, Any]:
    """One image as `beaker image inspect` shows it (the seed's keys, in the seed's order).

    Optional facts (narrative, digest, size, committed) appear only when the server has them.
    """
    out: dict[str, Any] = {"id": image.id}
    user = account_json(image.author or image.owner)
    if user is not None:
        out["user"] = user
    if image.name:
        out["name"] = image.name
    if image.created:
        out["created"] = image.created
    if image.committed:
        out["committed"] = image.committed
    out["original_tag"] = image.original_tag or ""
    if image.description:
        out["description"] = image.description
    if image.narrative:
        out["narrative"] = image.narrative
    if image.digest:
        out["digest"] = image.digest
    if image.size is not None:
        out["size"] = image.size
    if image.workspace_ref is not None:
        out["workspace"] = image.workspace_ref.full_name or image.workspace_ref.id
    return out


def workspace_json(workspace: Workspace) -> dict[str, Any]:
    return {
        "id": workspace.id,
        "name": workspace.name or "",
        "full_name": workspace.full_name or "",
        "description": workspace.description or "",
        "author": account_json(workspace.author),
        "created": workspace.created or "",
        "modified": workspace.modified or "",
        "public": workspace.public,
        "archived": workspace.archived,
        "images": workspace.size.images if workspace.size else 0,
    }


def to_json(value: Any) -> str:
    # The seed's layout: four-space indents, non-ASCII kept as is.
    return json.dumps(value, indent=4, ensure_ascii=False)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, separated by three spaces; no trailing spaces."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *[list(r) for r in rows]]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def relative_time(text: str | None, now: datetime | None = None) -> str:
    """`just now`, `5m ago`, `3h ago`, `2d ago`; past a month the date itself."""
    moment = parse_time(text) if text else None
    if moment is None:
        return text or ""
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 10:
        return "just now"
    for limit, unit, size in ((60, "s", 1), (3600, "m", 60), (86400, "h", 3600)):
        if seconds < limit:
            return f"{int(seconds // size)}{unit} ago"
    if seconds < 30 * 86400:
        return f"{int(seconds // 86400)}d ago"
    return moment.strftime("%Y-%m-%d")


def shorten(text: str, width: int = 40) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _size(image: Image) -> str:
    if not image.committed:
        return "uncommitted"
    return human_bytes(image.size) if image.size is not None else "-"


def image_rows(images: Sequence[Image], now: datetime | None = None) -> list[list[str]]:
    return [
        [
            image.id,
            image.full_name or image.name or "",
            (image.author.name if image.author else ""),
            relative_time(image.created, now),
            _size(image),
            shorten(image.description or ""),
        ]
        for image in images
    ]


IMAGE_HEADERS = ("ID", "NAME", "AUTHOR", "CREATED", "SIZE", "DESCRIPTION")


def workspace_rows(workspaces: Sequence[Workspace]) -> list[list[str]]:
    return [
        [
            w.id,
            w.full_name or w.name or "",
            str(w.size.images if w.size else 0),
            "public" if w.public else "private",
            "archived" if w.archived else "",
            relative_time(w.created),
            shorten(w.description or ""),
        ]
        for w in workspaces
    ]


WORKSPACE_HEADERS = ("ID", "NAME", "IMAGES", "VISIBILITY", "STATE", "CREATED", "DESCRIPTION")


class Output:
    """The output mode chosen by the global `--format` and `-q/--quiet` options."""

    def __init__(self, fmt: str | None = None, quiet: bool = False) -> None:
        self.format = fmt
        self.quiet = quiet

    @property
    def json(self) -> bool:
        return self.format == "json"

    @property
    def silent(self) -> bool:
        """Nothing but the result: no progress, no chatter."""
        return self.json or self.quiet

    def info(self, line: str) -> None:
        """A line for people (progress, what is happening), left out of quiet or JSON output."""
        if not self.silent:
            say(line)

    def result(self, *, data: Any, text: str | None, ids: Sequence[str]) -> None:
        if self.json:
            say(to_json(data))
        elif self.quiet:
            for ident in ids:
                say(ident)
        elif text is not None:
            say(text)


def token_rows(tokens: Sequence[Token]) -> list[list[str]]:
    return [
        [t.id, t.description or "", t.created or "", t.expires or "", t.revoked or ""]
        for t in tokens
    ]


TOKEN_HEADERS = ("ID", "DESCRIPTION", "CREATED", "EXPIRES", "REVOKED")


def say(line: str) -> None:
    """A line of output, flushed at once so progress shows while an engine operation runs."""
    print(line, flush=True)


def warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
