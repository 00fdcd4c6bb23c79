"""One page request ("a visit"): who is visiting, the form it sent, and how its answer is made.

`page(handler)` wraps every view: it finds the visitor's session from the cookie, reads and
checks the form of a POST (refusing one without its CSRF token), runs the view, and turns
domain errors into error pages with their status. Bad input never gives a traceback: anything
unexpected is logged and answered with a plain 500 page.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy

from metadata.context import METADATA, MetadataContext
from metadata.errors import MetadataError
from metadata.records import Account
from metadata.web import csrf
from metadata.web.render import Renderer
from metadata.web_sessions import WebSession, find_session
from registry.bodies import read_timeout

log = logging.getLogger("beakerd.web")

SESSION_COOKIE = "beakerd_session"
_ERROR_HEADINGS = {
    400: "Bad request", 401: "Sign-in needed", 403: "Not allowed", 404: "Not found",
    408: "Too slow", 409: "Conflict", 413: "Too large",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class WebSettings:
    session_ttl_seconds: float
    # Cookies get `Secure` under TLS (also when a request arrives over TLS anyway).
    secure_cookies: bool


@dataclass
class WebContext:
    settings: WebSettings
    renderer: Renderer = field(default_factory=Renderer)


WEB = web.AppKey("web", WebContext)


class SignInRequired(Exception):
    """The page is for signed-in visitors: send this one to the sign-in form, and back."""


@dataclass
class Visit:
    request: web.Request
    ctx: MetadataContext
    site: WebContext
    session: WebSession | None
    form: MultiDictProxy[str | bytes | Any] | None = None
    # A sign-in token set as a cookie by this answer (the sign-in form's double submit).
    new_signin_token: str | None = None

    @property
    def viewer(self) -> Account | None:
        return self.session.account if self.session else None

    def require_viewer(self) -> Account:
        if self.session is None:
            raise SignInRequired
        return self.session.account

    def field(self, name: str) -> str:
        """A text field of the form (empty when absent)."""
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else ""

    def query(self, name: str) -> str:
        return self.request.query.get(name, "").strip()

    def page_number(self) -> int:
        raw = self.query("page") or "1"
        return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 100_000 else 1

    @property
    def secure(self) -> bool:
        return self.site.settings.secure_cookies or self.request.secure

    def csrf_token(self) -> str:
        token = csrf.expected(self.session, self.request.cookies.get(csrf.SIGNIN_COOKIE))
        if token is None:
            token = self.new_signin_token = csrf.new_signin_token()
        return token

    def render(self, template: str, status: int = 200, **context: Any) -> web.Response:
        context.update(viewer=self.viewer, csrf=self.csrf_token(), path=self.request.path_qs)
        response = self.site.renderer.response(template, context, status)
        if self.new_signin_token is not None:
            response.set_cookie(
                csrf.SIGNIN_COOKIE, self.new_signin_token, httponly=True, samesite="Strict",
                secure=self.secure, path="/",
            )  # fmt: skip
        return response

    def error(self, status: int, message: str) -> web.Response:
        heading = _ERROR_HEADINGS.get(status, "Something went wrong")
        return self.render("error.html", status=status, title=heading, message=message)


def see_other(location: str) -> web.Response:
    """The answer to a POST that worked (or a page that needs sign-in): the browser loads
    `location` with a GET."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def local_target(path: str) -> str:
    """`path` if it is a path on this site, else `/`: a `next=` never leads elsewhere."""
    if path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/"


def signin_url(request: web.Request) -> str:
    return "/signin?" + urlencode({"next": request.path_qs})


View = Callable[[Visit], Awaitable[web.StreamResponse]]


def page(view: View) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        ctx = request.app[METADATA]
        cookie = request.cookies.get(SESSION_COOKIE, "")
        session = await find_session(ctx.db, cookie) if cookie else None
        visit = Visit(request, ctx, request.app[WEB], session)
        try:
            if _has_nul(request.path, *request.query.values()):
                return visit.error(400, "the address holds a NUL character")
            if request.method == "POST":
                refusal = await _read_form(visit)
                if refusal is not None:
                    return refusal
            response = await view(visit)
        except SignInRequired:
            response = see_other(signin_url(request))
        except MetadataError as e:
            response = visit.error(e.status, e.message)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            response = visit.error(e.status, e.reason)
        except ConnectionError:
            raise  # the visitor went away
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            response = visit.error(500, "internal server error")
        if cookie and session is None:
            # Signed out elsewhere, expired or revoked: forget the dead cookie.
            response.del_cookie(SESSION_COOKIE, path="/")
        return response

    return handle


async def _read_form(visit: Visit) -> web.Response | None:
    """Read the POST's form; an error page if it cannot be read or lacks its CSRF token."""
    request = visit.request
    try:
        async with asyncio.timeout(read_timeout(request)):
            visit.form = await request.post()
    except TimeoutError:
        return visit.error(408, "the form stalled on its way; send it again")
    except web.HTTPRequestEntityTooLarge:
        return visit.error(413, f"the form exceeds {request.client_max_size} bytes")
    except (ValueError, web.RequestPayloadError, UnicodeDecodeError):
        return visit.error(400, "the form could not be read")
    if _has_nul(*(v for v in visit.form.values() if isinstance(v, str))):
        return visit.error(400, "the form holds a NUL character, which no field may hold")
    signin_cookie = request.cookies.get(csrf.SIGNIN_COOKIE)
    if not csrf.is_valid(visit.field(csrf.FIELD), visit.session, signin_cookie):
        return visit.error(
            403, "this form is missing its security token or it has expired: reload the page"
            " and send it again",
        )  # fmt: skip
    return None


def _has_nul(*texts: str) -> bool:
    """NUL is in no name or text, and PostgreSQL refuses it in any string: refuse it first."""
    return any("\x00" in text for text in texts)
