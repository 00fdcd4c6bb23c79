"""Image search as the Go client sends it (POST /images/search): filters and sorts over fields.

Visibility follows metadata/permissions.py, as SQL: admins see everything; others their own
images, and those of public workspaces and of the organizations they are members of.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from metadata.errors import Invalid
from metadata.images import SELECT_IMAGE, image_from_row
from metadata.records import Account, Image
from storage.database import Database

SearchField = Literal["id", "name", "description", "author", "created", "committed", "workspace"]
SearchOperator = Literal["eq", "neq", "gt", "gte", "lt", "lte", "ctn", "nctn"]
_SEARCH_COLUMNS: dict[str, str] = {
    "id": "i.id",
    "name": "coalesce(i.name, '')",
    "description": "i.description",
    "author": "ia.name",
    # Whole microseconds, as the API shows times: a shown time then matches its own image.
    "created": "CAST(round(i.created * 1000000) AS BIGINT)",
    "committed": "CAST(round(i.committed * 1000000) AS BIGINT)",
}
_SORT_COLUMNS = {**_SEARCH_COLUMNS, "workspace": "o.name || '/' || w.name"}
_COMPARISONS = {"eq": "=", "neq": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass(frozen=True, slots=True)
class Filter:
    """One condition; a time field's value is whole UNIX microseconds, any other's a string."""

    field: SearchField
    operator: SearchOperator
    value: str | int


@dataclass(frozen=True, slots=True)
class Sort:
    field: SearchField
    descending: bool


def _condition(clause: Filter) -> tuple[str, list[Any]]:
    """SQL for one filter. Text matches are case-insensitive, by instr() (no LIKE wildcards)."""
    if clause.field == "workspace":
        if clause.operator not in {"eq", "neq"}:
            raise Invalid("the workspace field takes only the operators eq and neq")
        org, _, name = str(clause.value).rpartition("/")
        test = "(i.workspace_id = ? OR (o.name = ? AND w.name = ?))"
        params: list[Any] = [clause.value, org, name]
        return (test if clause.operator == "eq" else f"NOT {test}"), params
    column = _SEARCH_COLUMNS[clause.field]
    if clause.field == "author":
        # An author is named by account name or ID; ctn matches names.
        if clause.operator in {"eq", "neq"}:
            test = "(ia.name = ? OR ia.id = ?)"
            return (test if clause.operator == "eq" else f"NOT {test}"), [clause.value] * 2
    if clause.operator in {"ctn", "nctn"}:
        if isinstance(clause.value, int):
            raise Invalid(f"the {clause.field} field cannot be searched for text")
        test = f"instr(lower({column}), lower(?)) > 0"
        return (test if clause.operator == "ctn" else f"NOT {test}"), [clause.value]
    if clause.field == "committed" and clause.operator in {"neq", "lt", "lte"}:
        # An uncommitted image has no time: it is before any time, and unequal to each.
        op = _COMPARISONS[clause.operator]
        return f"({column} IS NULL OR {column} {op} ?)", [clause.value]
    return f"{column} {_COMPARISONS[clause.operator]} ?", [clause.value]


async def search_images(
    db: Database,
    reader: Account,
    filters: list[Filter],
    sorts: list[Sort],
    *,
    any_filter: bool = False,
    offset: int = 0,
    limit: int = 100,
) -> list[Image]:
    """Images `reader` may see that match the filters (all, or any), in the sorts' order.

    Visible: everything to admins; otherwise one's own images, and those of public workspaces
    and of the organizations one is a member of (the rules of metadata/permissions.py).
    """
    conditions: list[str] = []
    params: list[Any] = []
    for clause in filters:
        sql, values = _condition(clause)
        conditions.append(sql)
        params += values
    where: list[str] = []
    if conditions:
        where.append("(" + (" OR " if any_filter else " AND ").join(conditions) + ")")
    if not reader.admin:
        where.append(
            "(i.author_id = ? OR w.public = 1 OR EXISTS (SELECT 1 FROM organization_members m"
            " WHERE m.organization_id = w.organization_id AND m.account_id = ?))"
        )
        params += [reader.id, reader.id]
    order = [
        f"{_SORT_COLUMNS[s.field]} {'DESC' if s.descending else 'ASC'}"
        for s in sorts or [Sort("created", True)]
    ]
    sql = SELECT_IMAGE + (f" WHERE {' AND '.join(where)}" if where else "")
    sql += f" ORDER BY {', '.join(order)}, i.id LIMIT ? OFFSET ?"
    rows = await db.fetchall(sql, (*params, limit, offset))
    return [image_from_row(row) for row in rows]
