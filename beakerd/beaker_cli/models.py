"""The Beaker API v3 objects the CLI reads, parsed at the wire boundary (camelCase on the wire)."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

# Go's zero time: how older servers say "not committed".
ZERO_TIME_PREFIX = "0001-01-01"


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Account(WireModel):
    id: str
    name: str
    display_name: str | None = None


class Storage(WireModel):
    """beakerd's `/user/storage`: distinct blob bytes held, and the quota (None: unlimited)."""

    used_bytes: int
    quota_bytes: int | None = None


class WorkspaceRef(WireModel):
    id: str
    name: str | None = None
    full_name: str | None = None


class Image(WireModel):
    id: str
    name: str | None = None
    full_name: str | None = None
    owner: Account | None = None
    author: Account | None = None
    workspace_ref: WorkspaceRef | None = None
    created: str | None = None
    committed: str | None = None
    original_tag: str | None = None
    docker_tag: str | None = None
    description: str | None = None
    narrative: str | None = None
    digest: str | None = None
    size: int | None = None

    @field_validator("committed")
    @classmethod
    def _zero_time_is_unset(cls, value: str | None) -> str | None:
        if value is None or value.startswith(ZERO_TIME_PREFIX):
            return None
        return value

    @field_validator("name", "description", "narrative", "digest", "original_tag")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None


class RepositoryAuth(BaseModel):
    # Mixed case on the wire exactly so (server_address, user, password).
    model_config = ConfigDict(extra="ignore")

    server_address: str
    user: str
    password: str


class ImageRepository(WireModel):
    image_tag: str
    auth: RepositoryAuth


class WorkspaceSize(WireModel):
    images: int = 0


class Workspace(WireModel):
    id: str
    name: str | None = None
    full_name: str | None = None
    description: str | None = None
    author: Account | None = None
    created: str | None = None
    modified: str | None = None
    archived: bool = False
    public: bool = False
    size: WorkspaceSize | None = None


class WorkspacePermissions(WireModel):
    requester_auth: str | None = None
    public: bool = False


class Page(WireModel):
    data: list[dict[str, object]] = Field(default_factory=list)
    next_cursor: str | None = None


class Token(WireModel):
    """An API token of the caller's: the secret is only present in the answer to create."""

    id: str
    description: str | None = None
    # Servers name the secret `token` or `secret`; either is read.
    token: str | None = Field(default=None, validation_alias=AliasChoices("token", "secret"))
    created: str | None = None
    expires: str | None = None
    revoked: str | None = None
