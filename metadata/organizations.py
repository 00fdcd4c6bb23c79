"""Organizations and their members; workspaces belong to an organization."""

from __future__ import annotations

from metadata.accounts import get_account
from metadata.errors import Conflict, Invalid, NotFound
from metadata.ids import is_valid_name, new_id, now
from metadata.records import Organization
from storage.database import Database, IntegrityError

_COLUMNS = "o.id, o.name, o.display_name, o.description, o.created"


async def create_organization(
    db: Database, name: str, display_name: str | None = None, description: str = ""
) -> Organization:
    if not is_valid_name(name):
        raise Invalid(f"invalid organization name {name!r}")
    org = Organization(new_id("or"), name, display_name or name, description, now())
    try:
        await db.execute(
            "INSERT INTO organizations (id, name, display_name, description, created)"
            " VALUES (?, ?, ?, ?, ?)",
            (org.id, org.name, org.display_name, org.description, org.created),
        )
    except IntegrityError:
        raise Conflict(f"an organization named {name!r} already exists") from None
    return org


async def find_organization(db: Database, ref: str) -> Organization | None:
    """An organization by name or ID."""
    row = await db.fetchone(
        f"SELECT {_COLUMNS} FROM organizations o WHERE o.name = ? OR o.id = ?"
        " ORDER BY o.name = ? DESC LIMIT 1",
        (ref, ref, ref),
    )
    return Organization.from_row(row) if row else None


async def get_organization(db: Database, ref: str) -> Organization:
    org = await find_organization(db, ref)
    if org is None:
        raise NotFound(f"organization {ref!r} not found")
    return org


async def add_member(db: Database, org_ref: str, account_name: str, role: str = "member") -> None:
    if role not in {"member", "admin"}:
        raise Invalid("role must be 'member' or 'admin'")
    org = await get_organization(db, org_ref)
    account = await get_account(db, account_name)
    await db.execute(
        "INSERT INTO organization_members (organization_id, account_id, role) VALUES (?, ?, ?)"
        " ON CONFLICT (organization_id, account_id) DO UPDATE SET role = excluded.role",
        (org.id, account.id, role),
    )


async def is_member(db: Database, org_id: str, account_id: str) -> bool:
    row = await db.fetchone(
        "SELECT 1 FROM organization_members WHERE organization_id = ? AND account_id = ?",
        (org_id, account_id),
    )
    return row is not None


async def organizations_of(db: Database, account_id: str) -> list[Organization]:
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM organizations o JOIN organization_members m"
        " ON m.organization_id = o.id WHERE m.account_id = ? ORDER BY o.name",
        (account_id,),
    )
    return [Organization.from_row(row) for row in rows]
