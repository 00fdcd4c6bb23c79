"""The /api/v3 endpoints (see BEAKER_API.md), mounted with `add_routes(app)`.

Unknown refs, and objects the caller may not read, answer 404 alike, so existence never leaks;
a readable object the caller may not change answers 403 (metadata/permissions.py decides both,
for gRPC too).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import cast, get_args

from aiohttp import web

from metadata.accounts import (
    DEFAULT_WORKSPACE,
    get_account,
    issue_token,
    list_tokens,
    revoke_token,
)
from metadata.errors import Forbidden, Invalid, NotFound
from metadata.http import (
    API_PREFIX,
    Call,
    Router,
    decode_cursor,
    encode_cursor,
    json_response,
    page_size,
)
from metadata.image_search import Filter, SearchField, Sort, search_images
from metadata.images import (
    SortField,
    commit_image,
    create_image,
    delete_image,
    list_images,
    update_image,
)
from metadata.models import (
    AccountModel,
    ImageModel,
    ImagePatch,
    ImageRepoModel,
    ImageSearchSpec,
    ImageSpec,
    OrganizationModel,
    PageModel,
    RegistryAuthModel,
    StorageModel,
    TokenModel,
    TokenSpec,
    WorkspaceModel,
    WorkspacePatch,
    WorkspacePermissionsModel,
    WorkspacePermissionsPatch,
    WorkspaceSpec,
    WorkspaceTransferSpec,
    image_tag,
)
from metadata.narratives import check_narrative
from metadata.organizations import (
    find_organization,
    get_organization,
    organizations_of,
)
from metadata.permissions import (
    can_write_workspace,
    modifiable_image,
    readable_image,
    readable_workspace,
    require_member,
)
from metadata.records import Image, Workspace
from metadata.workspaces import (
    create_workspace,
    image_count,
    list_workspaces,
    transfer_images,
    update_workspace,
)
from registry.access import PULL, PUSH
from registry.tokens import TOKENS, Grant

_SORT_FIELDS: tuple[str, ...] = get_args(SortField)
_TRUE = {"true", "1", "yes"}
_MAX_SECONDS = 1e11  # about the year 5000
_PAGE_DIGITS = 6


# -- accounts and organizations ------------------------------------------------------------------


async def whoami(call: Call) -> web.Response:
    return json_response(AccountModel.of(call.account))


async def my_storage(call: Call) -> web.Response:
    quotas = call.ctx.registry.repositories.quotas
    usage = await quotas.usage(call.account.name) if quotas is not None else None
    if usage is None:
        raise NotFound("this server does not track storage usage")
    return json_response(StorageModel.of(usage))


async def get_user(call: Call) -> web.Response:
    return json_response(AccountModel.of(await get_account(call.ctx.db, call.params[0])))


async def my_organizations(call: Call) -> web.Response:
    orgs = await organizations_of(call.ctx.db, call.account.id)
    return json_response(PageModel(data=[OrganizationModel.of(o).wire() for o in orgs]))


async def create_my_token(call: Call) -> web.Response:
    spec = await call.body(TokenSpec)
    info, secret = await issue_token(call.ctx.db, call.account.name, spec.description)
    return json_response(TokenModel.of(info, secret))


async def list_my_tokens(call: Call) -> web.Response:
    tokens = await list_tokens(call.ctx.db, call.account.name)
    return json_response(PageModel(data=[TokenModel.of(t).wire() for t in tokens]))


async def revoke_my_token(call: Call) -> web.Response:
    token_id = call.params[0]
    mine = {t.id for t in await list_tokens(call.ctx.db, call.account.name)}
    if token_id not in mine or not await revoke_token(call.ctx.db, token_id):
        raise NotFound(f"token {token_id!r} not found")
    # Registry tokens derived from it are checked against this counter: they stop now.
    await call.ctx.registry.changed()
    return web.Response(status=204)


async def get_org(call: Call) -> web.Response:
    return json_response(OrganizationModel.of(await get_organization(call.ctx.db, call.params[0])))


# -- workspaces ----------------------------------------------------------------------------------


async def _readable_workspace(call: Call, ref: str) -> Workspace:
    return await readable_workspace(call.ctx.db, call.account, ref)


async def _workspace_model(call: Call, workspace: Workspace) -> WorkspaceModel:
    return WorkspaceModel.of(workspace, await image_count(call.ctx.db, workspace.id))


async def get_workspace(call: Call) -> web.Response:
    workspace = await _readable_workspace(call, call.params[0])
    return json_response(await _workspace_model(call, workspace))


async def create_workspace_route(call: Call) -> web.Response:
    spec = await call.body(WorkspaceSpec)
    if not spec.name:
        raise Invalid("a workspace needs a name")
    org_name, name = spec.org, spec.name
    if "/" in name:  # a full name given as the name
        org_name, _, name = name.partition("/")
    org = await find_organization(call.ctx.db, org_name or call.account.name)
    if org is None:
        raise NotFound(f"organization {org_name or call.account.name!r} not found")
    db = call.ctx.db
    await require_member(db, call.account, org)
    workspace = await create_workspace(
        db, org, name, call.account, description=spec.description or "", public=spec.public
    )
    return json_response(await _workspace_model(call, workspace))


async def list_workspaces_route(call: Call) -> web.Response:
    org_ref = call.query("org")
    org = await get_organization(call.ctx.db, org_ref) if org_ref else None
    offset, limit = decode_cursor(call.query("cursor")), page_size(call.query("limit"))
    # One row more than the page tells whether another page follows.
    found = await list_workspaces(call.ctx.db, call.account, org, offset, limit + 1)
    data = [(await _workspace_model(call, w)).wire() for w in found[:limit]]
    more = encode_cursor(offset + limit) if len(found) > limit else None
    return json_response(PageModel(data=data, next_cursor=more))


async def list_workspace_images(call: Call) -> web.Response:
    workspace = await _readable_workspace(call, call.params[0])
    field = call.query("field") or "created"
    if field not in _SORT_FIELDS:
        raise Invalid(f"invalid sort field {field!r}: use one of {', '.join(_SORT_FIELDS)}")
    order = (call.query("order") or "descending").lower()
    if order not in {"descending", "ascending"}:
        raise Invalid(f"invalid order {order!r}: use descending or ascending")
    offset, limit = decode_cursor(call.query("cursor")), page_size(call.query("limit"))
    found = await list_images(
        call.ctx.db, workspace, field=cast(SortField, field), descending=order == "descending",
        text=call.query("q"), offset=offset, limit=limit + 1,
    )  # fmt: skip
    address = call.ctx.registry_address
    data = [ImageModel.of(image, address).wire() for image in found[:limit]]
    more = encode_cursor(offset + limit) if len(found) > limit else None
    return json_response(PageModel(data=data, next_cursor=more))


async def _writable_workspace(call: Call, ref: str) -> Workspace:
    workspace = await _readable_workspace(call, ref)
    if not await can_write_workspace(call.ctx.db, call.account, workspace):
        raise Forbidden(f"{call.account.name} may not change workspace {workspace.full_name}")
    return workspace


async def patch_workspace(call: Call) -> web.Response:
    """Rename, describe, archive or unarchive (beaker-py's WorkspacePatch), or set `public`."""
    spec = await call.body(WorkspacePatch)
    workspace = await _writable_workspace(call, call.params[0])
    workspace = await update_workspace(
        call.ctx.db, workspace, name=spec.name, description=spec.description,
        archived=spec.archive, public=spec.public,
    )  # fmt: skip
    return json_response(await _workspace_model(call, workspace))


async def _permissions_model(call: Call, workspace: Workspace) -> WorkspacePermissionsModel:
    db = call.ctx.db
    if call.account.admin:
        level = "all"
    elif await can_write_workspace(db, call.account, workspace):
        level = "write"
    else:
        level = "read"
    return WorkspacePermissionsModel(requester_auth=level, public=workspace.public)


async def get_workspace_permissions(call: Call) -> web.Response:
    workspace = await _readable_workspace(call, call.params[0])
    return json_response(await _permissions_model(call, workspace))


async def patch_workspace_permissions(call: Call) -> web.Response:
    """Visibility, as beaker-py's set_visibility sends it: `{"public": true|false}`."""
    spec = await call.body(WorkspacePermissionsPatch)
    workspace = await _writable_workspace(call, call.params[0])
    workspace = await update_workspace(call.ctx.db, workspace, public=spec.public)
    return json_response(await _permissions_model(call, workspace))


async def transfer_into_workspace(call: Call) -> web.Response:
    """Move images in: each must be one the caller may change (the rules of PATCH /images)."""
    spec = await call.body(WorkspaceTransferSpec)
    workspace = await _writable_workspace(call, call.params[0])
    ids = [(await _modifiable_image(call, ref)).id for ref in spec.ids]
    await transfer_images(call.ctx.db, workspace, list(dict.fromkeys(ids)))
    return web.Response(status=204)


# -- images --------------------------------------------------------------------------------------


async def _readable_image(call: Call, ref: str) -> Image:
    return await readable_image(call.ctx.db, call.account, ref)


async def _modifiable_image(call: Call, ref: str) -> Image:
    return await modifiable_image(call.ctx.db, call.account, ref)


def _image_response(call: Call, image: Image) -> web.Response:
    return json_response(ImageModel.of(image, call.ctx.registry_address))


async def create_image_route(call: Call) -> web.Response:
    spec = await call.body(ImageSpec)
    db = call.ctx.db
    workspace_ref = spec.workspace or f"{call.account.name}/{DEFAULT_WORKSPACE}"
    workspace = await _readable_workspace(call, workspace_ref)
    if not await can_write_workspace(db, call.account, workspace):
        raise Forbidden(f"{call.account.name} may not create images in {workspace.full_name}")
    if workspace.archived:
        raise Forbidden(f"workspace {workspace.full_name} is archived")
    image = await create_image(
        db, call.account, workspace, call.query("name") or None,
        original_tag=spec.image_tag or "", description=spec.description or "",
        narrative=spec.narrative or "", local_image_id=spec.image_id,
    )  # fmt: skip
    return _image_response(call, image)


async def get_image(call: Call) -> web.Response:
    return _image_response(call, await _readable_image(call, call.params[0]))


async def patch_image(call: Call) -> web.Response:
    spec = await call.body(ImagePatch)
    if spec.narrative is not None:
        check_narrative(spec.narrative)  # before a commit that a refused narrative would follow
    image = await _modifiable_image(call, call.params[0])
    if spec.commit:
        image = await commit_image(call.ctx.db, call.ctx.registry, image)
    if spec.name is not None or spec.description is not None or spec.narrative is not None:
        image = await update_image(
            call.ctx.db, image, name=spec.name, description=spec.description,
            narrative=spec.narrative,
        )  # fmt: skip
    return _image_response(call, image)


async def delete_image_route(call: Call) -> web.Response:
    image = await _modifiable_image(call, call.params[0])
    await delete_image(call.ctx.db, call.ctx.registry, image)
    return web.Response(status=204)


async def image_repository(call: Call) -> web.Response:
    """Registry credentials for the image: push+pull with `upload=true`, else pull only."""
    upload = (call.query("upload") or "").lower() in _TRUE
    if upload:
        image = await _modifiable_image(call, call.params[0])
        if image.committed is not None:
            raise Forbidden(
                f"image {image.id} is committed: its content can no longer change"
                " (create a new image instead)"
            )
        actions = frozenset({PULL, PUSH})
    else:
        image = await _readable_image(call, call.params[0])
        actions = frozenset({PULL})
    ctx = call.ctx
    # Tied to the API token that asked for it and to the image: revoking the one or deleting
    # the other stops it at once (registry/auth.py), and it never outlives the token.
    ttl = ctx.token_ttl_seconds
    if call.session.expires is not None:
        ttl = min(ttl, call.session.expires - time.time())
    grant = Grant(image.repository, actions)
    password = call.request.app[TOKENS].issue(
        call.account.name,
        [grant],
        ttl,
        limit=[grant],
        token_id=call.session.token_id,
        image_id=image.id,
    )
    return json_response(
        ImageRepoModel(
            image_tag=image_tag(ctx.registry_address, image.repository),
            auth=RegistryAuthModel(
                server_address=ctx.registry_address, user=call.account.name, password=password
            ),
        )
    )


def _search_value(field: str, value: str | int | float | bool) -> str | int:
    """A filter value for the domain: times (RFC 3339, or UNIX seconds) in whole microseconds."""
    if isinstance(value, bool):
        raise Invalid(f"invalid value {value!r} for field {field}")
    if field not in {"created", "committed"}:
        return str(value)
    try:
        seconds = (
            value if isinstance(value, int | float) else datetime.fromisoformat(value).timestamp()
        )
    except (ValueError, OverflowError):
        raise Invalid(f"invalid time {value!r} for field {field}: use RFC 3339") from None
    # Also keeps inf, NaN and huge numbers away from SQLite's 64-bit integers.
    if not -_MAX_SECONDS <= seconds <= _MAX_SECONDS:
        raise Invalid(f"invalid time {value!r} for field {field}: out of range")
    return round(seconds * 1_000_000)


def _search_field(field: str) -> SearchField:
    return cast(SearchField, "author" if field == "user" else field)


async def search_images_route(call: Call) -> web.Response:
    """The Go client's image search: a JSON array (no cursor), paged by `page` from 0."""
    spec = await call.body(ImageSearchSpec)
    filters = [
        Filter(_search_field(c.field), c.operator, _search_value(c.field, c.value))
        for c in spec.filter_clauses
    ]
    sorts = [Sort(_search_field(c.field), c.order == "descending") for c in spec.sort_clauses]
    page_number = call.query("page") or "0"
    if not (page_number.isascii() and page_number.isdigit()) or len(page_number) > _PAGE_DIGITS:
        raise Invalid(f"invalid page {page_number!r}")
    limit = page_size(call.query("limit"))
    found = await search_images(
        call.ctx.db, call.account, filters, sorts, any_filter=spec.filter_combinator == "or",
        offset=int(page_number) * limit, limit=limit,
    )  # fmt: skip
    address = call.ctx.registry_address
    return web.json_response([ImageModel.of(image, address).wire() for image in found])


def build_router() -> Router:
    router = Router()
    router.add("GET", "user", whoami)
    router.add("GET", "user/orgs", my_organizations)
    router.add("GET", "user/storage", my_storage)
    router.add("GET", "user/tokens", list_my_tokens)
    router.add("POST", "user/tokens", create_my_token)
    router.add("DELETE", "user/tokens/{}", revoke_my_token)
    router.add("GET", "users/{}", get_user)
    router.add("GET", "orgs/{}", get_org)
    router.add("GET", "workspaces", list_workspaces_route)
    router.add("POST", "workspaces", create_workspace_route)
    router.add("GET", "workspaces/{}", get_workspace)
    router.add("GET", "workspaces/{}/images", list_workspace_images)
    router.add("PATCH", "workspaces/{}", patch_workspace)
    router.add("GET", "workspaces/{}/auth", get_workspace_permissions)
    router.add("PATCH", "workspaces/{}/auth", patch_workspace_permissions)
    router.add("POST", "workspaces/{}/transfer", transfer_into_workspace)
    router.add("POST", "images", create_image_route)
    router.add("POST", "images/search", search_images_route)
    router.add("GET", "images/{}", get_image)
    router.add("PATCH", "images/{}", patch_image)
    router.add("DELETE", "images/{}", delete_image_route)
    router.add("GET", "images/{}/repository", image_repository)
    # Older Go clients ask for credentials with POST.
    router.add("POST", "images/{}/repository", image_repository)
    return router


def add_routes(app: web.Application) -> None:
    """Mount /api/v3 (routed on the raw path, see metadata/http.py)."""
    router = build_router()
    app.router.add_route("*", API_PREFIX, router.dispatch)
    # [\s\S], not `.`: a newline in a ref must reach the router and get a JSON 404.
    app.router.add_route("*", API_PREFIX + "/{tail:[\\s\\S]*}", router.dispatch)
