"""The domain objects as read from the database (the wire models live in models.py)."""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Row


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    display_name: str
    admin: bool
    created: float

    @classmethod
    def from_row(cls, row: Row, prefix: str = "") -> Account:
        return cls(
            row[prefix + "id"],
            row[prefix + "name"],
            row[prefix + "display_name"],
            bool(row[prefix + "admin"]),
            float(row[prefix + "created"]),
        )


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """An API token without its secret (which is never stored)."""

    id: str
    account_name: str
    description: str
    created: float
    expires: float | None
    revoked: float | None


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    name: str
    display_name: str
    description: str
    created: float

    @classmethod
    def from_row(cls, row: Row, prefix: str = "") -> Organization:
        return cls(
            row[prefix + "id"],
            row[prefix + "name"],
            row[prefix + "display_name"],
            row[prefix + "description"],
            float(row[prefix + "created"]),
        )


@dataclass(frozen=True, slots=True)
class Workspace:
    id: str
    name: str
    description: str
    public: bool
    archived: bool
    created: float
    modified: float
    org: Organization
    author: Account

    @property
    def full_name(self) -> str:
        return f"{self.org.name}/{self.name}"


@dataclass(frozen=True, slots=True)
class Image:
    id: str
    name: str | None
    description: str
    narrative: str
    original_tag: str
    repository: str
    created: float
    committed: float | None
    digest: str | None
    size: int | None
    author: Account
    workspace: Workspace

    @property
    def full_name(self) -> str | None:
        return f"{self.author.name}/{self.name}" if self.name else None
