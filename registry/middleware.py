"""Every /v2 answer carries the API version header, and every failure is the spec's JSON."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from registry.context import WRITE_REFUSALS, write_refused
from registry.errors import ErrorCode, RegistryError, error_response
from storage.disk_full import disk_full_cause

log = logging.getLogger("beakerd.registry")

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    if exc.status == 405:
        return error_response(
            ErrorCode.UNSUPPORTED, f"{request.method} is not supported here", status=405
        )
    if exc.status == 404:
        return error_response(ErrorCode.NAME_UNKNOWN, "no such endpoint", status=404)
    if exc.status == 413:
        return error_response(
            ErrorCode.SIZE_INVALID,
            "request body too large",
            status=413,
            headers={"Connection": "close"},
        )
    if exc.status == 416:
        return error_response(
            ErrorCode.BLOB_UPLOAD_INVALID, exc.reason, status=416, headers=dict(exc.headers)
        )
    return error_response(ErrorCode.UNSUPPORTED, exc.reason, status=exc.status)


def _from_exception(request: web.Request, error: Exception) -> web.Response:
    cause = disk_full_cause(error)
    if cause is not None:
        log.warning("disk full on %s %s: %s", request.method, request.path, cause)
        return error_response(
            ErrorCode.BLOB_UPLOAD_INVALID, "the registry's disk is full", status=507
        )
    # A bug or a failing disk: the client still gets the spec's JSON, the log the traceback.
    log.exception("internal error on %s %s", request.method, request.path)
    return error_response(ErrorCode.UNSUPPORTED, "internal server error", status=500)


@web.middleware
async def registry_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/v2"):
        return await handler(request)
    try:
        response = await handler(request)
    except RegistryError as e:
        response = e.response()
    except WRITE_REFUSALS as e:
        # Raised by the transaction that writes: a commit or delete landed while the request
        # was on its way, the account's quota would be passed, or an immutable tag touched.
        response = write_refused(e).response()
    except web.HTTPException as e:
        if e.status < 400:
            raise
        response = _from_http_exception(request, e)
    except web.RequestPayloadError:
        # aiohttp could not decode the body it was inflating or de-chunking for a handler.
        response = error_response(
            ErrorCode.UNSUPPORTED,
            "the request body is malformed (bad encoding or chunk framing)",
            status=400,
            headers={"Connection": "close"},
        )
    except ConnectionError:
        raise  # the client went away: nobody to answer
    except Exception as e:
        response = _from_exception(request, e)
    if response.headers.get("Connection", "").lower() == "close":
        # Else aiohttp would go on reading (and inflating) a body nobody wants, for up to 10 s.
        response.force_close()
    response.headers[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
    return response
