"""CSRF tokens: every form that changes something sends one back, and a POST without the right
one is refused before its handler runs.

A signed-in visitor's token is its session's (a synchronizer token, kept in the session row).
The one form an anonymous visitor can send, sign-in, is guarded by a double-submit cookie: a
random value set as an HttpOnly, SameSite=Strict cookie when the form is shown, which the form
repeats. Another site can neither read the cookie nor make the browser send it.
"""

from __future__ import annotations

import hmac
import secrets

from metadata.web_sessions import WebSession

FIELD = "csrf"
SIGNIN_COOKIE = "beakerd_signin"


def new_signin_token() -> str:
    return secrets.token_urlsafe(32)


def expected(session: WebSession | None, signin_cookie: str | None) -> str | None:
    """The token a form must carry: the session's, or for sign-in the double-submit cookie."""
    if session is not None:
        return session.csrf_token
    return signin_cookie or None


def is_valid(sent: str | None, session: WebSession | None, signin_cookie: str | None) -> bool:
    want = expected(session, signin_cookie)
    if not sent or not want:
        return False
    return hmac.compare_digest(sent.encode(), want.encode())
