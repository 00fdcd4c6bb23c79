"""The spec's grammar for repository names, tags and references."""

from __future__ import annotations

import re

from registry.errors import ErrorCode, RegistryError
from storage.digests import Digest, InvalidDigest

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
# Matched with fullmatch: `$` also matches before a final newline, so `re.match(...$)` would
# take `latest\n` for a tag.
_NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_COMPONENT_RE = re.compile(_COMPONENT)
_TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
# Docker limits the whole name, host included, to 255 characters.
MAX_NAME_LENGTH = 255


def is_path_component(text: str) -> bool:
    """Whether `text` can be one segment of a repository name, e.g. an account's namespace."""
    return len(text) <= MAX_NAME_LENGTH and _COMPONENT_RE.fullmatch(text) is not None


def check_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.fullmatch(name):
        raise RegistryError(ErrorCode.NAME_INVALID, detail={"name": name[:MAX_NAME_LENGTH]})
    return name


def is_tag(reference: str) -> bool:
    return _TAG_RE.fullmatch(reference) is not None


def check_tag(tag: str) -> str:
    if not is_tag(tag):
        raise RegistryError(ErrorCode.TAG_INVALID, "invalid tag", detail={"tag": tag[:256]})
    return tag


def parse_digest(text: str, code: ErrorCode = ErrorCode.DIGEST_INVALID) -> Digest:
    try:
        return Digest.parse(text)
    except InvalidDigest as e:
        raise RegistryError(code, str(e), detail={"digest": text[:256]}) from None


def is_digest_like(reference: str) -> bool:
    """A reference with a colon is a digest (tags cannot contain one)."""
    return ":" in reference
