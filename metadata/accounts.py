"""Accounts and their API tokens, as the server and the admin CLI manage them.

A token is `bk_` + 40 random characters; only its sha256 is stored, so the secret is shown
once, when it is made. Creating an account also gives it a personal organization of the same
name (when that name is free) with a `default` workspace, which is what Beaker clients expect
to find on first use.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from metadata.errors import Conflict, Invalid, NotFound
from metadata.ids import is_valid_name, new_id, now
from metadata.records import Account, TokenInfo
from registry.names import is_path_component
from storage.database import Connection, Database, IntegrityError

TOKEN_PREFIX = "bk_"
DEFAULT_WORKSPACE = "default"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(30)


async def create_account(
    db: Database, name: str, admin: bool = False, display_name: str | None = None
) -> tuple[Account, str]:
    """A new account, its first API token, and its personal org and default workspace."""
    created = await _create_account(db, name, admin, display_name, only_first=False)
    assert created is not None  # only a first-account request yields nothing
    return created


async def create_first_account(db: Database, name: str) -> tuple[Account, str] | None:
    """The first account (an admin), as `create_account` makes it; None if any account exists.

    The check is made in the transaction that inserts, and write transactions are serialized
    on every engine, so however many processes or replicas start together exactly one first
    account (and one token) is made, whatever name each of them would have given it.
    """
    return await _create_account(db, name, True, None, only_first=True)


async def _create_account(
    db: Database, name: str, admin: bool, display_name: str | None, *, only_first: bool
) -> tuple[Account, str] | None:
    # Each account owns the registry namespace of its name, so the name must be one.
    if not is_valid_name(name) or not is_path_component(name):
        raise Invalid(
            f"invalid account name {name!r}: use lowercase letters and digits, separated by"
            " '.', '_' or '-' (the name is also the account's registry namespace)"
        )
    account = Account(new_id("us"), name, display_name or name, admin, now())
    secret = _new_secret()
    try:
        async with db.transaction() as conn:
            if only_first and list(await conn.execute_fetchall("SELECT 1 FROM accounts LIMIT 1")):
                return None
            await conn.execute(
                "INSERT INTO accounts (id, name, display_name, admin, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (account.id, account.name, account.display_name, int(admin), account.created),
            )
            await _insert_token(conn, account.id, secret, "initial token")
            await _create_personal_org(conn, account)
    except IntegrityError:
        raise Conflict(f"an account named {name!r} already exists") from None
    return account, secret


async def _create_personal_org(conn: Connection, account: Account) -> None:
    taken = await conn.execute_fetchall(
        "SELECT 1 FROM organizations WHERE name = ?", (account.name,)
    )
    if list(taken):
        return
    org_id, created = new_id("or"), now()
    await conn.execute(
        "INSERT INTO organizations (id, name, display_name, description, created)"
        " VALUES (?, ?, ?, '', ?)",
        (org_id, account.name, account.display_name, created),
    )
    await conn.execute(
        "INSERT INTO organization_members (organization_id, account_id, role)"
        " VALUES (?, ?, 'admin')",
        (org_id, account.id),
    )
    await conn.execute(
        "INSERT INTO workspaces (id, organization_id, name, description, author_id, public,"
        " archived, created, modified) VALUES (?, ?, ?, '', ?, 0, 0, ?, ?)",
        (new_id("ws"), org_id, DEFAULT_WORKSPACE, account.id, created, created),
    )


async def _insert_token(
    conn: Connection,
    account_id: str,
    secret: str,
    description: str,
    expires: float | None = None,
) -> str:
    token_id = new_id("tk")
    await conn.execute(
        "INSERT INTO api_tokens (id, account_id, secret_sha256, description, created, expires)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (token_id, account_id, hash_secret(secret), description, now(), expires),
    )
    return token_id


async def create_token(
    db: Database, account_name: str, description: str = "", expires: float | None = None
) -> str:
    """A new API token for an existing account; returns the secret (shown only now)."""
    _, secret = await issue_token(db, account_name, description, expires)
    return secret


async def issue_token(
    db: Database, account_name: str, description: str = "", expires: float | None = None
) -> tuple[TokenInfo, str]:
    """A new API token for an existing account: its record and its secret (shown only now)."""
    account = await get_account(db, account_name)
    secret = _new_secret()
    async with db.transaction() as conn:
        token_id = await _insert_token(conn, account.id, secret, description, expires)
    return TokenInfo(token_id, account.name, description, now(), expires, None), secret


async def list_tokens(db: Database, account_name: str | None = None) -> list[TokenInfo]:
    """Tokens (never their secrets), of one account or of all, oldest first."""
    sql = (
        "SELECT t.id, a.name, t.description, t.created, t.expires, t.revoked"
        " FROM api_tokens t JOIN accounts a ON a.id = t.account_id"
    )
    params: tuple[str, ...] = ()
    if account_name is not None:
        await get_account(db, account_name)
        sql += " WHERE a.name = ?"
        params = (account_name,)
    rows = await db.fetchall(sql + " ORDER BY t.created, t.id", params)
    return [TokenInfo(r[0], r[1], r[2], float(r[3]), r[4], r[5]) for r in rows]


async def revoke_token(db: Database, token_id: str) -> bool:
    """Revoke a token by ID; False when there is no such (unrevoked) token."""
    changed = await db.execute(
        "UPDATE api_tokens SET revoked = ? WHERE id = ? AND revoked IS NULL", (now(), token_id)
    )
    return changed > 0


@dataclass(frozen=True, slots=True)
class Session:
    """An API call's credential: the account and the API token it presented."""

    account: Account
    token_id: str
    # When the token expires (None: never); credentials minted from it end no later.
    expires: float | None


async def session_for_token(db: Database, secret: str) -> Session | None:
    """The account and token of a valid (unrevoked, unexpired) API token."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    row = await db.fetchone(
        "SELECT a.id, a.name, a.display_name, a.admin, a.created, t.id AS token_id, t.expires"
        " FROM api_tokens t JOIN accounts a ON a.id = t.account_id WHERE t.secret_sha256 = ?"
        " AND t.revoked IS NULL AND (t.expires IS NULL OR t.expires > ?)",
        (hash_secret(secret), now()),
    )
    if row is None:
        return None
    expires = float(row["expires"]) if row["expires"] is not None else None
    return Session(Account.from_row(row), str(row["token_id"]), expires)


async def account_for_token(db: Database, secret: str) -> Account | None:
    """The account a valid (unrevoked, unexpired) API token belongs to."""
    session = await session_for_token(db, secret)
    return session.account if session else None


async def find_account(db: Database, ref: str) -> Account | None:
    """An account by name or ID."""
    row = await db.fetchone(
        "SELECT id, name, display_name, admin, created FROM accounts WHERE name = ? OR id = ?"
        " ORDER BY name = ? DESC LIMIT 1",
        (ref, ref, ref),
    )
    return Account.from_row(row) if row else None


async def get_account(db: Database, ref: str) -> Account:
    account = await find_account(db, ref)
    if account is None:
        raise NotFound(f"account {ref!r} not found")
    return account


async def count_accounts(db: Database) -> int:
    row = await db.fetchone("SELECT count(*) FROM accounts")
    return int(row[0]) if row else 0


async def list_accounts(db: Database) -> list[Account]:
    rows = await db.fetchall(
        "SELECT id, name, display_name, admin, created FROM accounts ORDER BY name"
    )
    return [Account.from_row(row) for row in rows]


async def set_admin(db: Database, ref: str, admin: bool = True) -> Account:
    account = await get_account(db, ref)
    await db.execute("UPDATE accounts SET admin = ? WHERE id = ?", (int(admin), account.id))
    return await get_account(db, account.id)


async def set_quota(db: Database, ref: str, quota_bytes: int | None) -> Account:
    """An account's storage quota (storage/quotas.py); None: the server's default again."""
    account = await get_account(db, ref)
    await db.execute("UPDATE accounts SET quota_bytes = ? WHERE id = ?", (quota_bytes, account.id))
    return account


async def revoke_all_tokens(db: Database, ref: str) -> int:
    """Revoke every live token of an account at once: it can no longer sign in."""
    account = await get_account(db, ref)
    return await db.execute(
        "UPDATE api_tokens SET revoked = ? WHERE account_id = ? AND revoked IS NULL",
        (now(), account.id),
    )
