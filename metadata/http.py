"""The /api/v3 plumbing: raw-path routing, token authentication, bodies, errors, cursors.

Routing is done here on the RAW path rather than by aiohttp's router, because refs carry
slashes encoded (`ai2%2Ftest`) or, from the Go client, double-encoded (`ai2%252Ftest`): the path
is split into segments first, and each segment is then decoded until it stops changing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

from aiohttp import web
from pydantic import BaseModel, ValidationError

from metadata.accounts import Session, session_for_token
from metadata.context import METADATA, MetadataContext
from metadata.errors import Invalid, MetadataError, NotFound, RequestTimeout, Unauthorized
from metadata.models import ErrorBody, WireModel
from metadata.records import Account
from registry.access import ACCOUNT_NAME
from registry.bodies import read_timeout
from storage.disk_full import disk_full_cause

log = logging.getLogger("beakerd.metadata")

API_PREFIX = "/api/v3"
FIRST_CURSOR = "AAAAAAAAAAA="  # base64url of the int64 0
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_MAX_DECODE_ROUNDS = 4

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated API call: who, the decoded path parameters, and the shared context."""

    request: web.Request
    session: Session
    params: tuple[str, ...]
    ctx: MetadataContext

    @property
    def account(self) -> Account:
        return self.session.account

    def query(self, name: str) -> str | None:
        return self.request.query.get(name)

    async def body(self, model: type[M]) -> M:
        """The JSON body as `model`. aiohttp inflates a compressed body as it reads, and
        enforces the app's client_max_size on the inflated bytes: a gzip bomb ends in 413."""
        try:
            async with asyncio.timeout(read_timeout(self.request)):
                raw = await self.request.read()
        except TimeoutError:
            raise RequestTimeout("the request body stalled; send it again") from None
        except web.HTTPRequestEntityTooLarge:
            limit = self.request.client_max_size
            raise BodyRefused(413, f"the request body exceeds {limit} bytes") from None
        except web.RequestPayloadError:
            raise BodyRefused(
                400, "the request body is malformed (bad encoding or framing)"
            ) from None
        try:
            data: Any = json.loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError):
            raise Invalid("request body is not valid JSON (or is nested too deeply)") from None
        if not isinstance(data, dict):
            raise Invalid("request body must be a JSON object")
        try:
            return model.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise Invalid(f"invalid request body: {where}: {first['msg']}") from None


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


def decode_segment(segment: str) -> str:
    """Percent-decode until stable: `ai2%252Ftest` -> `ai2%2Ftest` -> `ai2/test`."""
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(segment)
        if decoded == segment:
            break
        segment = decoded
    return segment


def path_segments(raw_path: str) -> list[str]:
    """The decoded segments of a raw /api/v3 path (query string and empty segments dropped)."""
    path = raw_path.split("?", 1)[0][len(API_PREFIX) :]
    return [decode_segment(s) for s in path.split("/") if s]


class Router:
    """Routes like `images/{}/repository`: literal segments and `{}` parameters."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, tuple[str | None, ...], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        shape = tuple(None if part == "{}" else part for part in pattern.split("/") if part)
        self._routes.append((method, shape, handler))

    def match(self, method: str, segments: list[str]) -> tuple[Handler, tuple[str, ...]]:
        path_known = False
        for route_method, shape, handler in self._routes:
            if len(shape) != len(segments):
                continue
            pairs = list(zip(shape, segments, strict=True))
            if any(part is not None and part != seg for part, seg in pairs):
                continue
            params = tuple(seg for part, seg in pairs if part is None)
            if route_method == method:
                return handler, params
            path_known = True
        if path_known:
            raise MethodNotAllowed(f"{method} is not supported on /{'/'.join(segments)}")
        raise NotFound(f"no such endpoint: /api/v3/{'/'.join(segments)}")

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            session = await _authenticate(request)
            handler, params = self.match(request.method, path_segments(request.raw_path))
            return await handler(Call(request, session, params, request.app[METADATA]))
        except (BodyRefused, RequestTimeout) as e:
            response = error_response(e.status, e.message)
            # Else aiohttp would go on reading (and inflating) the rest, for up to 10 s.
            response.force_close()
            return response
        except MetadataError as e:
            return error_response(e.status, e.message)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            return error_response(e.status, e.reason or "request failed")
        except ConnectionError:
            raise  # the client went away: nobody to answer
        except Exception as e:
            return _from_exception(request, e)


def _from_exception(request: web.Request, error: Exception) -> web.Response:
    cause = disk_full_cause(error)
    if cause is not None:
        log.warning("disk full on %s %s: %s", request.method, request.path, cause)
        return error_response(507, "the server's disk is full; try again once space is freed")
    # A bug: the client still gets {"code", "message"}, the log the traceback.
    log.exception("internal error on %s %s", request.method, request.path)
    return error_response(500, "internal server error")


class MethodNotAllowed(MetadataError):
    status = 405


class BodyRefused(MetadataError):
    """A body that could not be taken: too large or undecodable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _authenticate(request: web.Request) -> Session:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing API token: send 'Authorization: Bearer <token>'")
    session = await session_for_token(request.app[METADATA].db, token.strip())
    if session is None:
        raise Unauthorized("invalid, expired or revoked API token")
    request[ACCOUNT_NAME] = session.account.name
    return session


def json_response(model: WireModel, status: int = 200) -> web.Response:
    return web.json_response(model.wire(), status=status)


def error_response(status: int, message: str) -> web.Response:
    body = ErrorBody(code=status, message=message or "error")
    return web.json_response(body.wire(), status=status)


# -- paging ------------------------------------------------------------------------------------


def decode_cursor(cursor: str | None) -> int:
    """An offset from a cursor; a missing or empty cursor is the first page."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        (offset,) = struct.unpack(">q", raw)
    except (binascii.Error, struct.error, ValueError):
        raise Invalid(f"invalid cursor {cursor!r}") from None
    if offset < 0:
        raise Invalid(f"invalid cursor {cursor!r}")
    return int(offset)


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(struct.pack(">q", offset)).decode()


def page_size(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(value)
    except ValueError:
        raise Invalid(f"invalid limit {value!r}") from None
    if size < 1:
        raise Invalid(f"invalid limit {value!r}: must be at least 1")
    return min(size, MAX_PAGE_SIZE)
