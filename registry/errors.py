"""The spec's error codes and their JSON form: `{"errors": [{"code", "message", "detail"}]}`."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from aiohttp import web


class ErrorCode(Enum):
    """The spec's table of codes (and distribution's TAG_INVALID), each with its usual status.

    Clients switch on these codes, so no others are sent: an out-of-order chunk is
    BLOB_UPLOAD_INVALID with status 416, a full disk BLOB_UPLOAD_INVALID with 507.
    """

    BLOB_UNKNOWN = (404, "blob unknown to registry")
    BLOB_UPLOAD_INVALID = (400, "blob upload invalid")
    BLOB_UPLOAD_UNKNOWN = (404, "blob upload unknown to registry")
    DIGEST_INVALID = (400, "provided digest did not match uploaded content")
    MANIFEST_BLOB_UNKNOWN = (400, "manifest references a manifest or blob unknown to registry")
    MANIFEST_INVALID = (400, "manifest invalid")
    MANIFEST_UNKNOWN = (404, "manifest unknown to registry")
    NAME_INVALID = (400, "invalid repository name")
    NAME_UNKNOWN = (404, "repository name not known to registry")
    SIZE_INVALID = (400, "provided length did not match content length")
    TAG_INVALID = (400, "manifest tag did not match URI")
    UNAUTHORIZED = (401, "authentication required")
    DENIED = (403, "requested access to the resource is denied")
    UNSUPPORTED = (405, "the operation is unsupported")
    TOOMANYREQUESTS = (429, "too many requests")

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def default_message(self) -> str:
        return self.value[1]


class RegistryError(Exception):
    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        detail: Any = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or code.default_message)
        self.code = code
        self.message = message or code.default_message
        self.detail = detail
        self.status = status or code.status
        self.headers = headers or {}

    def response(self) -> web.Response:
        return error_response(self.code, self.message, self.detail, self.status, self.headers)


def error_response(
    code: ErrorCode,
    message: str | None = None,
    detail: Any = None,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    entry: dict[str, Any] = {"code": code.name, "message": message or code.default_message}
    if detail is not None:
        entry["detail"] = detail
    return web.Response(
        status=status or code.status,
        body=json.dumps({"errors": [entry]}).encode(),
        content_type="application/json",
        headers=headers,
    )
