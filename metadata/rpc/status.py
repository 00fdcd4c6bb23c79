"""Metadata errors as gRPC status codes, and the caller's account from `authorization`.

beaker-py turns NOT_FOUND, PERMISSION_DENIED and INVALID_ARGUMENT into its own exceptions and
retries INTERNAL (5 times, with backoff) and UNAVAILABLE (forever): so a refusal is never sent
as either of those, and every status carries a message (the same text REST sends).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Protocol, TypeVar

import grpc
from grpc import aio

from metadata.accounts import account_for_token
from metadata.context import MetadataContext
from metadata.errors import (
    Conflict,
    Forbidden,
    Invalid,
    MetadataError,
    NotFound,
    RequestTimeout,
    Unauthorized,
)
from metadata.records import Account
from storage.database import Database

STATUS_FOR_ERROR: dict[type[MetadataError], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    Invalid: grpc.StatusCode.INVALID_ARGUMENT,
    Conflict: grpc.StatusCode.ALREADY_EXISTS,
    Unauthorized: grpc.StatusCode.UNAUTHENTICATED,
    RequestTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_for(error: MetadataError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_FOR_ERROR:
            return STATUS_FOR_ERROR[cls]
    return grpc.StatusCode.INTERNAL


async def authenticate(db: Database, metadata: aio.Metadata | None) -> Account:
    """The account of the `authorization: bearer <token>` metadata; the check REST makes."""
    values = [v for k, v in (metadata or ()) if k == "authorization"]
    header = values[0] if values and isinstance(values[0], str) else ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing API token: send the metadata 'authorization: bearer <token>'")
    account = await account_for_token(db, token.strip())
    if account is None:
        raise Unauthorized("invalid, expired or revoked API token")
    return account


class Servicer(Protocol):
    @property
    def ctx(self) -> MetadataContext: ...


S = TypeVar("S", bound=Servicer)
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Method = Callable[[S, Req, Account], Awaitable[Resp]]
Handler = Callable[[S, Req, "aio.ServicerContext[Req, Resp]"], Awaitable[Resp]]


def rpc(method: Method[S, Req, Resp]) -> Handler[S, Req, Resp]:
    """An RPC handler from `method(self, request, caller)`: authenticates, maps errors."""

    @wraps(method)
    async def handler(self: S, request: Req, context: aio.ServicerContext[Req, Resp]) -> Resp:
        try:
            account = await authenticate(self.ctx.db, context.invocation_metadata())
            return await method(self, request, account)
        except MetadataError as e:
            await context.abort(status_for(e), e.message)

    return handler
