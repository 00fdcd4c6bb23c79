"""Signing in with an API token, and out. The session cookie is HttpOnly and SameSite=Strict
(and Secure under TLS); it holds only the session's random ID (metadata/web_sessions.py)."""

from __future__ import annotations

from aiohttp import web

from metadata.ids import now
from metadata.web.visits import SESSION_COOKIE, Visit, local_target, see_other
from metadata.web_sessions import sign_in, sign_out


async def signin_form(visit: Visit) -> web.Response:
    return visit.render(
        "signin.html", title="Sign in", next=local_target(visit.query("next")), problem=None
    )


async def signin(visit: Visit) -> web.StreamResponse:
    target = local_target(visit.field("next"))
    ttl = visit.site.settings.session_ttl_seconds
    started = await sign_in(visit.ctx.db, visit.field("token"), ttl)
    if started is None:
        return visit.render(
            "signin.html", status=401, title="Sign in", next=target,
            problem="That is not a valid API token: it may be mistyped, expired or revoked.",
        )  # fmt: skip
    secret, session = started
    response = see_other(target)
    response.set_cookie(
        SESSION_COOKIE, secret, httponly=True, samesite="Strict", secure=visit.secure, path="/",
        max_age=max(1, int(session.expires - now())),
    )  # fmt: skip
    return response


async def signout(visit: Visit) -> web.StreamResponse:
    secret = visit.request.cookies.get(SESSION_COOKIE, "")
    if secret:
        await sign_out(visit.ctx.db, secret)
    response = see_other("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response
