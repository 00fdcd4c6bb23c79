"""A client that hangs up mid-request: one info line and a count, not a 500 and a traceback.

When the peer goes away, aiohttp fails the handler's next read of the body (or write of the
answer) with ConnectionResetError. Left alone, that reaches aiohttp as an unhandled error: a
traceback in the log and a 500 in the access log and metrics, as if the server had failed.
This middleware, the outermost, turns it into a response with nginx's status 499 ("client
closed request"), which is never sent (nobody is left to read it) but tells the access logger
(beakerd/access_log.py) to log "client closed the connection" and count the request in
`beakerd_http_client_disconnects_total`, apart from the answered ones.

A ConnectionError while the client is still there is a real failure and goes on up.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

CLIENT_CLOSED = 499


def client_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@web.middleware
async def client_disconnects(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ConnectionError:
        if not client_gone(request):
            raise
        return web.Response(status=CLIENT_CLOSED)
