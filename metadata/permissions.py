"""Who may see and change what, for the API and the registry alike.

Reading: admins; members of the owning organization; anyone for a public workspace (and its
images); an image's author. Writing a workspace (creating images in it): admins and members.
Changing or deleting an image, or getting push credentials for it: its author and admins.
"""

from __future__ import annotations

from metadata.organizations import is_member
from metadata.records import Account, Image, Workspace
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
