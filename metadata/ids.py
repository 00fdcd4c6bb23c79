"""Identifiers and names: opaque random IDs, internal repository names, and the name rule."""

from __future__ import annotations

import re
import secrets
import string
import time
from datetime import UTC, datetime

_ALPHABET = string.ascii_lowercase + string.digits
# Matched whole (fullmatch): `$` would let a final newline through.
NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
MAX_NAME_LENGTH = 128


def random_token(length: int) -> str:
    """`length` random lowercase letters and digits (about 5.2 bits each)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(prefix: str) -> str:
    """An ID in the seed's style: `bp_qbjvcda1sed7` for images, `us_...` for accounts."""
    return f"{prefix}_{random_token(12)}"


def new_repository_name() -> str:
    """An internal registry repository name like the seed's `bduufrl06q5ner2l0440`."""
    # A letter first, so a repository name never looks like an account's numeric namespace.
    return secrets.choice(string.ascii_lowercase) + random_token(19)


def is_valid_name(name: str) -> bool:
    # "." and ".." would read as path segments in URLs and full names.
    if len(name) > MAX_NAME_LENGTH or name in {".", ".."}:
        return False
    return NAME_RE.fullmatch(name) is not None


def now() -> float:
    return time.time()


def rfc3339(timestamp: float) -> str:
    """UTC with microseconds and a `Z`, as Beaker prints times: 2018-08-22T22:47:10.915236Z."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
