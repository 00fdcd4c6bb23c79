"""Web sessions: a browser signs in with an API token and gets a server-side session.

The cookie holds a random session ID; the row holds only its sha256, so a copy of the database
gives no logins. A session ends at sign-out (its row is deleted), at its own expiry, and when the
API token it was signed in with is revoked or expires: every look-up joins the token, so there
is no second place to revoke. Each session carries a CSRF token that every form which changes
something must send back (metadata/web/csrf.py).

Expired rows are deleted by the next sign-in, in its transaction: nothing is left that a later
pass does not clean.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from metadata.accounts import hash_secret, session_for_token
from metadata.ids import now
from metadata.records import Account
from storage.database import Database


@dataclass(frozen=True, slots=True)
class WebSession:
    account: Account
    csrf_token: str
    expires: float


async def sign_in(
    db: Database, api_token: str, ttl_seconds: float
) -> tuple[str, WebSession] | None:
    """A new session for the holder of a live API token: its secret cookie value and record.

    None when the token is not a live one. The session never outlives the token.
    """
    token = await session_for_token(db, api_token.strip())
    if token is None:
        return None
    started = now()
    expires = started + ttl_seconds
    if token.expires is not None:
        expires = min(expires, token.expires)
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM web_sessions WHERE expires <= ?", (started,))
        await conn.execute(
            "INSERT INTO web_sessions (id_sha256, account_id, token_id, csrf_token, created,"
            " expires) VALUES (?, ?, ?, ?, ?, ?)",
            (hash_secret(secret), token.account.id, token.token_id, csrf, started, expires),
        )
    return secret, WebSession(token.account, csrf, expires)


async def find_session(db: Database, secret: str) -> WebSession | None:
    """The live session a cookie names: unexpired, its API token unrevoked and unexpired."""
    if not secret:
        return None
    moment = now()
    row = await db.fetchone(
        "SELECT a.id, a.name, a.display_name, a.admin, a.created, s.csrf_token, s.expires"
        " FROM web_sessions s JOIN api_tokens t ON t.id = s.token_id"
        " JOIN accounts a ON a.id = s.account_id"
        " WHERE s.id_sha256 = ? AND s.expires > ? AND t.revoked IS NULL"
        " AND (t.expires IS NULL OR t.expires > ?)",
        (hash_secret(secret), moment, moment),
    )
    if row is None:
        return None
    return WebSession(Account.from_row(row), str(row["csrf_token"]), float(row["expires"]))


async def sign_out(db: Database, secret: str) -> None:
    """End the session the cookie names (nothing happens for an unknown one)."""
    await db.execute("DELETE FROM web_sessions WHERE id_sha256 = ?", (hash_secret(secret),))
