"""Where blobs live, from a URL: `file:///PATH` (a folder) or `s3://BUCKET[/PREFIX]`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

# S3's own rule for bucket names (lowercase letters, digits, dots and hyphens, 3 to 63).
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class BadLocation(ValueError):
    """A blob store URL that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class FileLocation:
    root: Path


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ends with "/"


def parse_location(url: str) -> FileLocation | S3Location:
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise BadLocation("a file store is file:///ABSOLUTE/PATH")
        return FileLocation(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        if not _BUCKET_RE.fullmatch(parts.netloc):
            raise BadLocation(f"{parts.netloc!r} is not a valid S3 bucket name")
        if parts.query or parts.fragment:
            raise BadLocation("an S3 store is s3://BUCKET[/PREFIX], with no query")
        prefix = parts.path.strip("/")
        return S3Location(parts.netloc, f"{prefix}/" if prefix else "")
    raise BadLocation("a blob store URL starts with file:// or s3://")
