"""Pydantic models of every /api/v3 request and response body (camelCase on the wire)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from metadata.ids import rfc3339
from metadata.records import Account, Image, Organization, TokenInfo, Workspace
from storage.quotas import Usage


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    def wire(self) -> dict[str, Any]:
        """The JSON body: camelCase keys, absent optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# -- responses ---------------------------------------------------------------------------------


class ErrorBody(WireModel):
    code: int
    message: str = Field(min_length=1)


class AccountModel(WireModel):
    id: str
    name: str
    display_name: str
    created: str | None = None

    @classmethod
    def of(cls, account: Account) -> AccountModel:
        return cls(
            id=account.id, name=account.name, display_name=account.display_name,
            created=rfc3339(account.created),
        )  # fmt: skip

    @classmethod
    def of_org(cls, org: Organization) -> AccountModel:
        """An organization as an owner: Beaker clients read owners as accounts."""
        return cls(id=org.id, name=org.name, display_name=org.display_name)


class StorageModel(WireModel):
    """An account's storage: distinct blob bytes held, and its quota (absent: unlimited)."""

    account: str
    used_bytes: int
    quota_bytes: int | None = None

    @classmethod
    def of(cls, usage: Usage) -> StorageModel:
        return cls(account=usage.account, used_bytes=usage.used, quota_bytes=usage.limit)


class OrganizationModel(WireModel):
    id: str
    name: str
    display_name: str
    description: str
    created: str

    @classmethod
    def of(cls, org: Organization) -> OrganizationModel:
        return cls(
            id=org.id, name=org.name, display_name=org.display_name,
            description=org.description, created=rfc3339(org.created),
        )  # fmt: skip


class WorkspaceRefModel(WireModel):
    id: str
    name: str
    full_name: str

    @classmethod
    def of(cls, workspace: Workspace) -> WorkspaceRefModel:
        return cls(id=workspace.id, name=workspace.name, full_name=workspace.full_name)


class WorkspaceSizeModel(WireModel):
    datasets: int = 0
    experiments: int = 0
    groups: int = 0
    images: int = 0


class WorkspaceModel(WireModel):
    id: str
    name: str
    full_name: str
    description: str
    author: AccountModel
    owner: AccountModel
    created: str
    modified: str
    archived: bool
    public: bool
    size: WorkspaceSizeModel

    @classmethod
    def of(cls, workspace: Workspace, images: int) -> WorkspaceModel:
        return cls(
            id=workspace.id, name=workspace.name, full_name=workspace.full_name,
            description=workspace.description, author=AccountModel.of(workspace.author),
            owner=AccountModel.of_org(workspace.org), created=rfc3339(workspace.created),
            modified=rfc3339(workspace.modified), archived=workspace.archived,
            public=workspace.public, size=WorkspaceSizeModel(images=images),
        )  # fmt: skip


class ImageModel(WireModel):
    id: str
    name: str | None = None
    full_name: str | None = None
    owner: AccountModel
    author: AccountModel
    workspace_ref: WorkspaceRefModel
    created: str
    # Absent until committed (clients also accept 0001-01-01T00:00:00Z for "not yet").
    committed: str | None = None
    original_tag: str
    docker_tag: str
    description: str
    narrative: str
    digest: str | None = None
    size: int | None = None

    @classmethod
    def of(cls, image: Image, registry_address: str) -> ImageModel:
        author = AccountModel.of(image.author)
        return cls(
            id=image.id, name=image.name, full_name=image.full_name, owner=author,
            author=author, workspace_ref=WorkspaceRefModel.of(image.workspace),
            created=rfc3339(image.created),
            committed=rfc3339(image.committed) if image.committed is not None else None,
            original_tag=image.original_tag,
            docker_tag=image_tag(registry_address, image.repository),
            description=image.description, narrative=image.narrative, digest=image.digest,
            size=image.size,
        )  # fmt: skip


def image_tag(registry_address: str, repository: str) -> str:
    """Where clients push and pull the image: `host:port/repo` (they add `:latest`)."""
    return f"{registry_address}/{repository}"


class RegistryAuthModel(BaseModel):
    # Beaker's ImageRepo mixes cases exactly so: `imageTag` beside snake_case auth fields.
    server_address: str
    user: str
    password: str


class ImageRepoModel(WireModel):
    image_tag: str
    auth: RegistryAuthModel


class PageModel(WireModel):
    data: list[Any]
    next_cursor: str | None = None


# -- requests ----------------------------------------------------------------------------------


class LenientKeys(BaseModel):
    """Accepts keys in any case (`imageID`, `imageId`, `ImageID`, `image_id`) and explicit nulls."""

    model_config = ConfigDict(extra="ignore")
    # lower-cased wire key without underscores -> field name
    KEYS: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _fold_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        folded: dict[str, Any] = {}
        for key, value in data.items():
            field = cls.KEYS.get(str(key).replace("_", "").lower())
            if field is not None and value is not None:
                folded[field] = value
        return folded


class ImageSpec(LenientKeys):
    KEYS: ClassVar[dict[str, str]] = {
        "workspace": "workspace", "imageid": "image_id", "imagetag": "image_tag",
        "description": "description", "narrative": "narrative", "budget": "budget",
    }  # fmt: skip
    workspace: str | None = None
    image_id: str | None = None
    image_tag: str | None = None
    description: str | None = None
    narrative: str | None = None
    budget: str | None = None


class ImagePatch(LenientKeys):
    KEYS: ClassVar[dict[str, str]] = {
        "commit": "commit", "name": "name", "description": "description",
        "narrative": "narrative",
    }  # fmt: skip
    commit: bool | None = None
    name: str | None = None
    description: str | None = None
    narrative: str | None = None


class TokenModel(WireModel):
    """An API token; `token`, the secret, is present only in the answer to its creation."""

    id: str
    description: str
    created: str
    expires: str | None = None
    revoked: str | None = None
    token: str | None = None

    @classmethod
    def of(cls, info: TokenInfo, secret: str | None = None) -> TokenModel:
        return cls(
            id=info.id, description=info.description, created=rfc3339(info.created),
            expires=rfc3339(info.expires) if info.expires else None,
            revoked=rfc3339(info.revoked) if info.revoked else None, token=secret,
        )  # fmt: skip


class TokenSpec(LenientKeys):
    KEYS: ClassVar[dict[str, str]] = {"description": "description"}
    description: str = Field(default="", max_length=200)


class WorkspaceSpec(LenientKeys):
    KEYS: ClassVar[dict[str, str]] = {
        "name": "name", "org": "org", "description": "description", "public": "public",
    }  # fmt: skip
    name: str | None = None
    org: str | None = None
    description: str | None = None
    public: bool = False


class WorkspacePatch(LenientKeys):
    """PATCH /workspaces/{ws}: beaker-py's WorkspacePatch (name, description, archive)."""

    KEYS: ClassVar[dict[str, str]] = {
        "name": "name", "description": "description", "archive": "archive", "public": "public",
    }  # fmt: skip
    name: str | None = None
    description: str | None = None
    archive: bool | None = None
    public: bool | None = None


class WorkspacePermissionsPatch(LenientKeys):
    """PATCH /workspaces/{ws}/auth: only `public` is kept (per-account grants are not modelled)."""

    KEYS: ClassVar[dict[str, str]] = {"public": "public"}
    public: bool | None = None


class WorkspacePermissionsModel(WireModel):
    requester_auth: str
    public: bool
    authorizations: dict[str, str] = Field(default_factory=dict)


class WorkspaceTransferSpec(LenientKeys):
    """POST /workspaces/{ws}/transfer: `{"ids": [...]}` of images to move in."""

    KEYS: ClassVar[dict[str, str]] = {"ids": "ids"}
    ids: list[str] = Field(default_factory=list, max_length=1000)


class SearchFilterClause(LenientKeys):
    KEYS: ClassVar[dict[str, str]] = {"field": "field", "operator": "operator", "value": "value"}
    # The Go client names the author `user`.
    field: Literal[
        "id", "name", "description", "user", "author", "created", "committed", "workspace"
    ]
    operator: Literal["eq", "neq", "gt", "gte", "lt", "lte", "ctn", "nctn"] = "eq"
    value: str | int | float | bool


class SearchSortClause(LenientKeys):
    KEYS: ClassVar[dict[str, str]] = {"field": "field", "order": "order"}
    field: Literal[
        "id", "name", "description", "user", "author", "created", "committed", "workspace"
    ]
    order: Literal["ascending", "descending"] = "ascending"


class ImageSearchSpec(LenientKeys):
    """The Go client's ImageSearchOptions: `sortClauses`, `filterClauses`, `filterCombinator`
    (older releases spell them `sort_clauses`, ...; keys are matched in any case)."""

    KEYS: ClassVar[dict[str, str]] = {
        "sortclauses": "sort_clauses", "filterclauses": "filter_clauses",
        "filtercombinator": "filter_combinator",
    }  # fmt: skip
    sort_clauses: list[SearchSortClause] = Field(default_factory=list, max_length=10)
    filter_clauses: list[SearchFilterClause] = Field(default_factory=list, max_length=50)
    filter_combinator: Literal["and", "or"] = "and"
