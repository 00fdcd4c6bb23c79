"""The image lists of the home, workspace and account pages: search, filters, sorting, paging.

The query string is the whole state (`?q=&workspace=&author=&sort=&order=&page=`), so a list
can be bookmarked, and every link that changes one of them keeps the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast, get_args
from urllib.parse import urlencode

from metadata.accounts import find_account
from metadata.errors import NotFound
from metadata.images import ListOrder, list_images
from metadata.permissions import visible_workspace
from metadata.records import Account, Image, Workspace
from metadata.web.visits import Visit

PAGE_SIZE = 50
_ORDERS: tuple[str, ...] = get_args(ListOrder)
# Newest first, largest first; names in alphabetical order.
_DEFAULT_DESCENDING = {"created": True, "size": True}


@dataclass(frozen=True, slots=True)
class ImageList:
    images: list[Image]
    page: int
    has_next: bool
    sort: str
    descending: bool
    params: dict[str, str]
    notes: list[str]

    def url(self, **changes: Any) -> str:
        """This list's URL with some parameters changed (None drops one); page 1 unless told."""
        params = {**self.params, "page": None, **changes}
        kept = {k: str(v) for k, v in params.items() if v not in (None, "")}
        return "?" + urlencode(kept) if kept else "?"

    def sort_url(self, field: str) -> str:
        """The column header's link: by this column, or the other way round if it already is."""
        if field == self.sort:
            descending = not self.descending
        else:
            descending = _DEFAULT_DESCENDING.get(field, False)
        return self.url(sort=field, order="desc" if descending else "asc")

    def sort_state(self, field: str) -> str:
        """aria-sort for the column header."""
        if field != self.sort:
            return "none"
        return "descending" if self.descending else "ascending"


async def image_list(
    visit: Visit,
    *,
    workspace: Workspace | None = None,
    author: Account | None = None,
    filters: bool = True,
) -> ImageList:
    """The page of images the query asks for, among those the visitor may read."""
    db, viewer = visit.ctx.db, visit.viewer
    notes: list[str] = []
    params = {"q": visit.query("q")}
    if filters:
        params.update(workspace=visit.query("workspace"), author=visit.query("author"))
    nothing = False
    if filters and params["workspace"]:
        try:
            workspace = await visible_workspace(db, viewer, params["workspace"])
        except NotFound:
            notes.append(f"There is no workspace {params['workspace']} that you may see.")
            nothing = True
    if filters and params["author"]:
        author = await find_account(db, params["author"])
        if author is None:
            notes.append(f"There is no account {params['author']}.")
            nothing = True
    sort = visit.query("sort")
    if sort not in _ORDERS:
        sort = "created"
    order = visit.query("order")
    descending = (
        order == "desc" if order in {"asc", "desc"} else _DEFAULT_DESCENDING.get(sort, False)
    )
    params.update(sort=sort, order="desc" if descending else "asc")
    page = visit.page_number()
    found = (
        []
        if nothing
        else await list_images(
            db,
            workspace,
            field=cast(ListOrder, sort),
            descending=descending,
            search=params["q"] or None,
            offset=(page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE + 1,
            public_only=viewer is None,
            author=author,
            reader=viewer,
        )
    )
    return ImageList(
        found[:PAGE_SIZE], page, len(found) > PAGE_SIZE, sort, descending, params, notes
    )
