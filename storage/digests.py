"""Content digests: parsing the `algorithm:hex` form and hashing streams."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# The spec's grammar for a digest; only the algorithms below are ever computed.
# Matched whole (fullmatch): `$` would let a final newline through.
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_HEX_RE = re.compile(r"[a-f0-9]+")


class InvalidDigest(ValueError):
    """A digest that is malformed or uses an algorithm this store does not compute."""


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        if not _DIGEST_RE.fullmatch(text):
            raise InvalidDigest(f"malformed digest {text!r}")
        algorithm, _, encoded = text.partition(":")
        length = _HEX_LENGTHS.get(algorithm)
        if length is None:
            raise InvalidDigest(f"unsupported digest algorithm {algorithm!r}")
        if len(encoded) != length or not _HEX_RE.fullmatch(encoded):
            raise InvalidDigest(f"{algorithm} digest must be {length} lowercase hex characters")
        return cls(algorithm, encoded)

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())
