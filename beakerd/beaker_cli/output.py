"""How the CLI shows things: the seed's inspect JSON, plain tables, progress lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from beakerd.beaker_cli.models import Account, Image, Token


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
    return out


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


def image_rows(images: Sequence[Image]) -> list[list[str]]:
    return [
        [
            image.id,
            image.full_name or image.name or "",
            (image.author.name if image.author else ""),
            image.created or "",
            "yes" if image.committed else "no",
        ]
        for image in images
    ]


IMAGE_HEADERS = ("ID", "NAME", "AUTHOR", "CREATED", "COMMITTED")


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
