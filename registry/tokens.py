"""Registry bearer tokens: short-lived JWTs (ES256) signed with the server's own key.

The claims follow Docker's token spec (`access: [{type, name, actions}]`). The same format serves
as the push credential minted for a Beaker image: `docker login` sends it as a Basic password,
and whatever the token endpoint issues from it can never exceed its grants (`lim`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from storage.database import Database
from storage.secrets import shared_secret

ISSUER = "beakerd"
_ALGORITHM = "ES256"
_VERIFIED_CACHE_SIZE = 4096


class InvalidToken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Grant:
    repository: str
    actions: frozenset[str]


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    grants: tuple[Grant, ...]
    # For a token derived from a minted credential: the most it may ever grant.
    limit: tuple[Grant, ...] | None
    catalog: bool
    admin: bool
    # The API token it was issued from, so revoking that token revokes this one too.
    token_id: str | None
    expires: float
    # The Beaker image it was minted for, so deleting the image stops it.
    image_id: str | None = None

    def actions_for(self, repository: str) -> frozenset[str]:
        return _actions(self.grants, repository)


def _actions(grants: Sequence[Grant], repository: str) -> frozenset[str]:
    found: frozenset[str] = frozenset()
    for grant in grants:
        if grant.repository == repository:
            found |= grant.actions
    return found


def granted(grants: Sequence[Grant], repository: str) -> frozenset[str]:
    return _actions(grants, repository)


def _encode_grants(grants: Sequence[Grant]) -> list[dict[str, Any]]:
    return [
        {"type": "repository", "name": g.repository, "actions": sorted(g.actions)} for g in grants
    ]


def _decode_grants(raw: Any) -> tuple[Grant, ...]:
    if not isinstance(raw, list):
        raise InvalidToken("malformed access claim")
    grants = []
    for entry in raw:
        if not isinstance(entry, dict) or entry.get("type") != "repository":
            continue
        name, actions = entry.get("name"), entry.get("actions")
        if isinstance(name, str) and isinstance(actions, list):
            grants.append(Grant(name, frozenset(a for a in actions if isinstance(a, str))))
    return tuple(grants)


def new_key_pem() -> bytes:
    """A fresh signing key, as unencrypted PKCS#8 PEM."""
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def key_from_pem(pem: bytes, where: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{where} does not hold an EC private key")
    return key


async def server_key(db: Database, key_file: Path) -> ec.EllipticCurvePrivateKey:
    """The key every process of this server signs with.

    Replicas (PostgreSQL) share it through the database, made by whichever starts first; on
    SQLite it stays a file of the data folder, shared by the worker processes of one machine.
    """
    if db.dialect == "postgresql":
        pem = await shared_secret(db, "registry_signing_key", new_key_pem)
        return key_from_pem(pem, "the database's registry_signing_key")
    return await asyncio.to_thread(load_or_create_key, key_file)


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The server's signing key file, made on first start and readable by the owner only."""
    if path.exists():
        return key_from_pem(path.read_bytes(), str(path))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staged = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(new_key_pem())
        f.flush()
        os.fsync(f.fileno())
    # Another worker may have won the race: keep whichever key landed first.
    try:
        os.link(staged, path)
    except FileExistsError:
        pass
    staged.unlink()
    return load_or_create_key(path)


class TokenIssuer:
    def __init__(self, key: ec.EllipticCurvePrivateKey, service: str) -> None:
        self._key = key
        self._public = key.public_key()
        self.service = service
        self._verified: OrderedDict[str, Claims] = OrderedDict()

    def issue(
        self,
        subject: str,
        grants: Sequence[Grant],
        ttl: float,
        *,
        limit: Sequence[Grant] | None = None,
        catalog: bool = False,
        admin: bool = False,
        token_id: str | None = None,
        image_id: str | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": subject,
            "aud": self.service,
            "iat": now,
            "nbf": now - 5,
            "exp": now + int(ttl),
            "jti": secrets.token_hex(8),
            "access": _encode_grants(grants),
        }
        if limit is not None:
            claims["lim"] = _encode_grants(limit)
        if catalog:
            claims["catalog"] = True
        if admin:
            claims["adm"] = True
        if token_id is not None:
            claims["tid"] = token_id
        if image_id is not None:
            claims["img"] = image_id
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM)

    def verify(self, token: str) -> Claims:
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires > time.time():
                self._verified.move_to_end(token)
                return cached
            del self._verified[token]
        try:
            raw = jwt.decode(
                token,
                self._public,
                algorithms=[_ALGORITHM],
                audience=self.service,
                issuer=ISSUER,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError as e:
            raise InvalidToken(str(e)) from None
        claims = Claims(
            subject=str(raw["sub"]),
            grants=_decode_grants(raw.get("access", [])),
            limit=_decode_grants(raw["lim"]) if "lim" in raw else None,
            catalog=bool(raw.get("catalog")),
            admin=bool(raw.get("adm")),
            token_id=str(raw["tid"]) if raw.get("tid") else None,
            expires=float(raw["exp"]),
            image_id=str(raw["img"]) if raw.get("img") else None,
        )
        self._verified[token] = claims
        if len(self._verified) > _VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims


TOKENS = web.AppKey("tokens", TokenIssuer)
