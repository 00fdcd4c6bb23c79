"""The registry's view of Beaker accounts: who is calling /v2, and what they may do where.

Rights on a repository, for an account with its own API token (minted image credentials carry
their grants and are judged by the registry itself, without asking here):
- admins: everything;
- the repository of a Beaker image: pull for those who may read the image (its author,
  admins, members of its workspace's organization, anyone for a public workspace); push and
  delete never (images are pushed only with the credentials minted for them);
- the account's own namespace, `<account>` and `<account>/...`: pull, push and delete;
- anything else, and anonymous callers: nothing (the registry adds anonymous pulls itself
  when the server allows them).
"""

from __future__ import annotations

import time

from metadata.accounts import TOKEN_PREFIX, find_account, hash_secret
from metadata.images import image_for_repository, images_for_repositories
from metadata.permissions import can_read_image, owns_namespace
from registry.access import DELETE, PULL, PUSH
from registry.auth import Principal
from storage.database import Database

ALL_ACTIONS = frozenset({PULL, PUSH, DELETE})
NO_ACTIONS: frozenset[str] = frozenset()


class BeakerAuthority:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def authenticate(self, username: str, secret: str) -> Principal | None:
        """The account `username` when `secret` is one of its live API tokens."""
        if not secret.startswith(TOKEN_PREFIX):
            return None
        row = await self.db.fetchone(
            "SELECT t.id, t.expires, a.admin FROM api_tokens t"
            " JOIN accounts a ON a.id = t.account_id"
            " WHERE t.secret_sha256 = ? AND a.name = ? AND t.revoked IS NULL"
            " AND (t.expires IS NULL OR t.expires > ?)",
            (hash_secret(secret), username, time.time()),
        )
        if row is None:
            return None
        expires = float(row["expires"]) if row["expires"] is not None else None
        return Principal(username, bool(row["admin"]), None, row["id"], expires)

    async def allowed_actions(self, principal: Principal | None, repository: str) -> frozenset[str]:
        if principal is None:
            return NO_ACTIONS
        account = await find_account(self.db, principal.name)
        if account is None or account.name != principal.name:
            return NO_ACTIONS
        if account.admin:
            return ALL_ACTIONS
        image = await image_for_repository(self.db, repository)
        if image is not None:
            readable = await can_read_image(self.db, account, image)
            return frozenset({PULL}) if readable else NO_ACTIONS
        if owns_namespace(account, repository):
            return ALL_ACTIONS
        return NO_ACTIONS

    async def readable_repositories(
        self, principal: Principal | None, repositories: list[str]
    ) -> frozenset[str]:
        """Which of `repositories` the principal may pull: one account look-up for the lot."""
        if principal is None:
            return NO_ACTIONS
        account = await find_account(self.db, principal.name)
        if account is None or account.name != principal.name:
            return NO_ACTIONS
        if account.admin:
            return frozenset(repositories)
        images = await images_for_repositories(self.db, repositories)
        readable = set()
        for repository in repositories:
            image = images.get(repository)
            if image is not None:
                if await can_read_image(self.db, account, image):
                    readable.add(repository)
            elif owns_namespace(account, repository):
                readable.add(repository)
        return frozenset(readable)

    async def token_is_live(self, token_id: str) -> bool:
        """False once the API token a registry token was derived from is revoked or expired."""
        row = await self.db.fetchone(
            "SELECT 1 FROM api_tokens WHERE id = ? AND revoked IS NULL"
            " AND (expires IS NULL OR expires > ?)",
            (token_id, time.time()),
        )
        return row is not None

    async def image_is_live(self, image_id: str) -> bool:
        """False once the image a minted credential was made for is deleted."""
        row = await self.db.fetchone("SELECT 1 FROM images WHERE id = ?", (image_id,))
        return row is not None

    async def namespace_exists(self, repository: str) -> bool:
        """Whether the first component of `repository` is an account's name (its namespace)."""
        row = await self.db.fetchone(
            "SELECT 1 FROM accounts WHERE name = ?", (repository.split("/", 1)[0],)
        )
        return row is not None
