"""Metadata errors, each with its HTTP status; on the wire `{"code": N, "message": "..."}`.

beaker-py reads `message`, and retries a 4xx GET that lacks one for about 31 s, so every error
carries a non-empty message.
"""

from __future__ import annotations


class MetadataError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message or "error"


class Invalid(MetadataError):
    status = 400


class Unauthorized(MetadataError):
    status = 401


class Forbidden(MetadataError):
    status = 403


class NotFound(MetadataError):
    status = 404


class RequestTimeout(MetadataError):
    status = 408


class Conflict(MetadataError):
    status = 409
