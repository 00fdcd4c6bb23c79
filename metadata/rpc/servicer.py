"""The Beaker service for beaker-py 2.x: one short method per RPC over the domain functions
that /api/v3 uses (metadata/images.py, workspaces.py, accounts.py, organizations.py, and
permissions.py for who may see and change what).

beakerd serves the image flows (SERVED); every other RPC of the service answers UNIMPLEMENTED
naming what it does serve. Images are created and committed over REST, as beaker-py does.
A ref without `/` is an ID (beaker-py sends bare names as IDs); for images, an ID that matches
nothing is then tried as one of the caller's own image names, as beaker-py 1.x did client-side.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from beaker import beaker_pb2 as pb
from grpc import aio

from metadata.accounts import get_account
from metadata.context import MetadataContext
from metadata.errors import Forbidden, Invalid, NotFound
from metadata.images import (
    SortField,
    commit_image,
    delete_image,
    list_images,
    update_image,
)
from metadata.organizations import get_organization, organizations_of
from metadata.permissions import (
    modifiable_image,
    readable_image,
    readable_workspace,
    require_member,
    writable_workspace,
)
from metadata.records import Account, Image, Workspace
from metadata.rpc import convert
from metadata.rpc.paging import next_token, page_request, page_size
from metadata.rpc.status import rpc
from metadata.workspaces import (
    WorkspaceOrder,
    create_workspace,
    image_count,
    list_workspaces,
    transfer_images,
    update_workspace,
)
from storage.database import Database

SERVICE = pb.DESCRIPTOR.services_by_name["Beaker"]
SERVED = frozenset({
    "GetImage", "ListImages", "UpdateImage", "DeleteImages", "ResolveImageName",
    "ResolveWorkspaceName", "ResolveUserName", "ResolveOrganizationName", "GetUser",
    "GetWorkspace", "ListWorkspaces", "CreateWorkspace", "UpdateWorkspace",
    "TransferIntoWorkspace", "GetOrganization", "ListOrganizations",
})  # fmt: skip

ImageCheck = Callable[[Database, Account, str], Awaitable[Image]]


def _descending(order: pb.SortOrder, default: bool) -> bool:
    if order == pb.SORT_ORDER_UNSPECIFIED:
        return default
    return order == pb.SORT_ORDER_DESCENDING


def unimplemented_message(method: str) -> str:
    return (
        f"beakerd does not implement {method}: it serves images, workspaces, users and"
        f" organizations only ({', '.join(sorted(SERVED))}); images are created and committed"
        " over its REST API"
    )


def _unimplemented(method: str) -> Callable[[Any, aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    async def handler(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, unimplemented_message(method))

    return handler


class BeakerServicer:
    """Registered with beaker-py's `add_BeakerServicer_to_server`, which looks every method up."""

    def __init__(self, ctx: MetadataContext) -> None:
        self._ctx = ctx

    @property
    def ctx(self) -> MetadataContext:
        return self._ctx

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name in SERVICE.methods_by_name and name not in SERVED:
            return _unimplemented(name)
        raise AttributeError(name)

    # -- helpers ---------------------------------------------------------------------------

    async def _image(self, account: Account, ref: str, check: ImageCheck) -> Image:
        try:
            return await check(self.ctx.db, account, ref)
        except NotFound:
            if not ref or "/" in ref:
                raise
        try:
            return await check(self.ctx.db, account, f"{account.name}/{ref}")
        except NotFound:
            raise NotFound(f"image {ref!r} not found") from None

    def _image_message(self, image: Image) -> pb.Image:
        return convert.image(image, self.ctx.registry_address)

    async def _workspace_message(self, workspace: Workspace) -> pb.Workspace:
        return convert.workspace(workspace, await image_count(self.ctx.db, workspace.id))

    # -- images ----------------------------------------------------------------------------

    @rpc
    async def GetImage(self, request: pb.GetImageRequest, account: Account) -> pb.GetImageResponse:
        image = await self._image(account, request.image_id, readable_image)
        return pb.GetImageResponse(image=self._image_message(image))

    @rpc
    async def ResolveImageName(
        self, request: pb.ResolveImageNameRequest, account: Account
    ) -> pb.ResolveImageNameResponse:
        ref = f"{request.author_name}/{request.image_name}"
        image = await readable_image(self.ctx.db, account, ref)
        return pb.ResolveImageNameResponse(image_id=image.id)

    @rpc
    async def ListImages(
        self, request: pb.ListImagesRequest, account: Account
    ) -> pb.ListImagesResponse:
        db = self.ctx.db
        opts, offset = page_request(request, pb.ListImagesRequest.Opts)
        size = page_size(opts.page_size)
        field: SortField = "name" if opts.sort_clause.HasField("name") else "created"
        found = await list_images(
            db,
            await readable_workspace(db, account, opts.workspace_id) if opts.workspace_id else None,
            field=field,
            descending=_descending(opts.sort_clause.sort_order, default=field == "created"),
            text=opts.image_name_or_description or None,
            offset=offset,
            limit=size + 1,  # one more than the page tells whether another follows
            author=await get_account(db, opts.author_id) if opts.author_id else None,
            org=await get_organization(db, opts.organization_id) if opts.organization_id else None,
            reader=account,
        )
        return pb.ListImagesResponse(
            images=[self._image_message(image) for image in found[:size]],
            next_page_token=next_token(opts, offset, size, len(found)),
        )

    @rpc
    async def UpdateImage(
        self, request: pb.UpdateImageRequest, account: Account
    ) -> pb.UpdateImageResponse:
        image = await self._image(account, request.image_id, modifiable_image)
        if request.HasField("committed"):
            image = await commit_image(self.ctx.db, self.ctx.registry, image)
        image = await update_image(
            self.ctx.db,
            image,
            name=request.name if request.HasField("name") else None,
            description=request.description if request.HasField("description") else None,
        )
        return pb.UpdateImageResponse(image=self._image_message(image))

    @rpc
    async def DeleteImages(
        self, request: pb.DeleteImagesRequest, account: Account
    ) -> pb.DeleteImagesResponse:
        # Every image is checked before any is deleted: a refusal deletes nothing.
        images = [await self._image(account, ref, modifiable_image) for ref in request.image_ids]
        for image in images:
            await delete_image(self.ctx.db, self.ctx.registry, image)
        return pb.DeleteImagesResponse()

    # -- accounts and organizations ----------------------------------------------------------

    @rpc
    async def GetUser(self, request: pb.GetUserRequest, account: Account) -> pb.GetUserResponse:
        if request.user_id:
            account = await get_account(self.ctx.db, request.user_id)
        return pb.GetUserResponse(user=convert.user(account))

    @rpc
    async def ResolveUserName(
        self, request: pb.ResolveUserNameRequest, account: Account
    ) -> pb.ResolveUserNameResponse:
        user = await get_account(self.ctx.db, request.user_name)
        return pb.ResolveUserNameResponse(user_id=user.id)

    @rpc
    async def ResolveOrganizationName(
        self, request: pb.ResolveOrganizationNameRequest, account: Account
    ) -> pb.ResolveOrganizationNameResponse:
        org = await get_organization(self.ctx.db, request.organization_name)
        return pb.ResolveOrganizationNameResponse(organization_id=org.id)

    @rpc
    async def GetOrganization(
        self, request: pb.GetOrganizationRequest, account: Account
    ) -> pb.GetOrganizationResponse:
        org = await get_organization(self.ctx.db, request.organization_id)
        return pb.GetOrganizationResponse(organization=convert.organization(org))

    @rpc
    async def ListOrganizations(
        self, request: pb.ListOrganizationsRequest, account: Account
    ) -> pb.ListOrganizationsResponse:
        opts, offset = page_request(request, pb.ListOrganizationsRequest.Opts)
        size = page_size(opts.page_size)
        member = account
        if opts.member_user_id:
            member = await get_account(self.ctx.db, opts.member_user_id)
            if member.id != account.id and not account.admin:
                raise Forbidden(f"only {member.name} or an admin may list their organizations")
        descending = _descending(opts.sort_clause.sort_order, default=False)
        orgs = sorted(
            await organizations_of(self.ctx.db, member.id),
            key=lambda org: (org.created, org.id),
            reverse=descending,
        )
        return pb.ListOrganizationsResponse(
            organizations=[convert.organization(org) for org in orgs[offset : offset + size]],
            next_page_token=next_token(opts, offset, size, len(orgs) - offset),
        )

    # -- workspaces --------------------------------------------------------------------------

    @rpc
    async def ResolveWorkspaceName(
        self, request: pb.ResolveWorkspaceNameRequest, account: Account
    ) -> pb.ResolveWorkspaceNameResponse:
        ref = f"{request.owner_name}/{request.workspace_name}"
        workspace = await readable_workspace(self.ctx.db, account, ref)
        return pb.ResolveWorkspaceNameResponse(workspace_id=workspace.id)

    @rpc
    async def GetWorkspace(
        self, request: pb.GetWorkspaceRequest, account: Account
    ) -> pb.GetWorkspaceResponse:
        workspace = await readable_workspace(self.ctx.db, account, request.workspace_id)
        return pb.GetWorkspaceResponse(workspace=await self._workspace_message(workspace))

    @rpc
    async def ListWorkspaces(
        self, request: pb.ListWorkspacesRequest, account: Account
    ) -> pb.ListWorkspacesResponse:
        db = self.ctx.db
        opts, offset = page_request(request, pb.ListWorkspacesRequest.Opts)
        size = page_size(opts.page_size)
        clause = opts.sort_clause
        if clause.HasField("recent_workload_activity") or clause.HasField(
            "maximum_workload_priority"
        ):
            raise Invalid("beakerd has no workloads: sort workspaces by name or created")
        order: WorkspaceOrder = "created" if clause.HasField("created") else "full_name"
        found = await list_workspaces(
            db,
            account,
            await get_organization(db, opts.organization_id) if opts.organization_id else None,
            offset,
            size + 1,
            author=await get_account(db, opts.author_id) if opts.author_id else None,
            archived=True if opts.only_archived else None,
            text=opts.name_or_description_substring or None,
            order=order,
            descending=_descending(clause.sort_order, default=order == "created"),
        )
        return pb.ListWorkspacesResponse(
            workspaces=[await self._workspace_message(w) for w in found[:size]],
            next_page_token=next_token(opts, offset, size, len(found)),
        )

    @rpc
    async def CreateWorkspace(
        self, request: pb.CreateWorkspaceRequest, account: Account
    ) -> pb.CreateWorkspaceResponse:
        db = self.ctx.db
        org = await get_organization(db, request.organization_id or account.name)
        await require_member(db, account, org)
        workspace = await create_workspace(
            db, org, request.name, account, description=request.description
        )
        return pb.CreateWorkspaceResponse(workspace=await self._workspace_message(workspace))

    @rpc
    async def UpdateWorkspace(
        self, request: pb.UpdateWorkspaceRequest, account: Account
    ) -> pb.UpdateWorkspaceResponse:
        if request.HasField("budget_id") or request.HasField("maximum_workspace_priority"):
            raise Invalid("beakerd has no budgets or workload priorities")
        workspace = await writable_workspace(self.ctx.db, account, request.workspace_id)
        workspace = await update_workspace(
            self.ctx.db,
            workspace,
            name=request.name if request.HasField("name") else None,
            description=request.description if request.HasField("description") else None,
            archived=request.archived if request.HasField("archived") else None,
        )
        return pb.UpdateWorkspaceResponse(workspace=await self._workspace_message(workspace))

    @rpc
    async def TransferIntoWorkspace(
        self, request: pb.TransferIntoWorkspaceRequest, account: Account
    ) -> pb.TransferIntoWorkspaceResponse:
        """Move images (beakerd holds no other entities) into the workspace."""
        workspace = await writable_workspace(self.ctx.db, account, request.workspace_id)
        images = [await self._image(account, ref, modifiable_image) for ref in request.entity_ids]
        # All or none, with the archive rules checked in the moving transaction (as REST does).
        await transfer_images(self.ctx.db, workspace, [image.id for image in images])
        return pb.TransferIntoWorkspaceResponse(workspace=await self._workspace_message(workspace))
