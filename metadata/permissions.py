"""Who may see and change what, for the API (REST and gRPC) and the registry alike.

Reading: admins; members of the owning organization; anyone for a public workspace (and its
images); an image's author. Writing a workspace (creating images in it): admins and members.
Changing or deleting an image, or getting push credentials for it: its author and admins.
Changing a workspace, or creating one in an organization: admins and its members.

Unknown refs, and objects the caller may not read, are NotFound alike, so existence never
leaks; a readable object the caller may not change is Forbidden.
"""

from __future__ import annotations

from metadata.errors import Forbidden, NotFound
from metadata.images import find_image
from metadata.organizations import is_member
from metadata.records import Account, Image, Organization, Workspace
from metadata.workspaces import find_workspace
from storage.database import Database


async def can_read_workspace(db: Database, account: Account, workspace: Workspace) -> bool:
    if account.admin or workspace.public:
        return True
    return await is_member(db, workspace.org.id, account.id)


async def can_write_workspace(db: Database, account: Account, workspace: Workspace) -> bool:
    return account.admin or await is_member(db, workspace.org.id, account.id)


async def can_read_image(db: Database, account: Account, image: Image) -> bool:
    if image.author.id == account.id:
        return True
    return await can_read_workspace(db, account, image.workspace)


def can_modify_image(account: Account, image: Image) -> bool:
    return account.admin or image.author.id == account.id


async def visible_image(db: Database, viewer: Account | None, ref: str) -> Image:
    """The image `ref` if `viewer` may read it; anonymous visitors (None) read public ones."""
    if viewer is not None:
        return await readable_image(db, viewer, ref)
    image = await find_image(db, ref)
    if image is None or not image.workspace.public:
        raise NotFound(f"image {ref!r} not found")
    return image


async def visible_workspace(db: Database, viewer: Account | None, ref: str) -> Workspace:
    """The workspace `ref` if `viewer` may read it; anonymous visitors read public ones."""
    if viewer is not None:
        return await readable_workspace(db, viewer, ref)
    workspace = await find_workspace(db, ref)
    if workspace is None or not workspace.public:
        raise NotFound(f"workspace {ref!r} not found")
    return workspace


def owns_namespace(account: Account, repository: str) -> bool:
    """An account holds the registry namespace of its name: `<account>` and `<account>/...`."""
    return repository == account.name or repository.startswith(account.name + "/")


async def readable_workspace(db: Database, account: Account, ref: str) -> Workspace:
    """The workspace `ref` (ID or `<org>/<name>`) if `account` may read it, else NotFound."""
    workspace = await find_workspace(db, ref)
    if workspace is None or not await can_read_workspace(db, account, workspace):
        raise NotFound(f"workspace {ref!r} not found")
    return workspace


async def writable_workspace(db: Database, account: Account, ref: str) -> Workspace:
    """The workspace `ref` if `account` may change it or add to it; Forbidden when archived."""
    workspace = await readable_workspace(db, account, ref)
    if not await can_write_workspace(db, account, workspace):
        raise Forbidden(f"{account.name} may not change workspace {workspace.full_name}")
    return workspace


async def readable_image(db: Database, account: Account, ref: str) -> Image:
    """The image `ref` (ID or `<author>/<name>`) if `account` may read it, else NotFound."""
    image = await find_image(db, ref)
    if image is None or not await can_read_image(db, account, image):
        raise NotFound(f"image {ref!r} not found")
    return image


async def modifiable_image(db: Database, account: Account, ref: str) -> Image:
    """The image `ref` if `account` may change or delete it (Forbidden if only readable)."""
    image = await readable_image(db, account, ref)
    if not can_modify_image(account, image):
        raise Forbidden(f"only the author of image {image.id} or an admin may change it")
    return image


async def require_member(db: Database, account: Account, org: Organization) -> None:
    """Forbidden unless `account` may create workspaces in `org` (a member, or an admin)."""
    if not account.admin and not await is_member(db, org.id, account.id):
        raise Forbidden(f"{account.name} is not a member of organization {org.name}")
