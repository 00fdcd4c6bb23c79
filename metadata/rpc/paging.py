"""Paging as beaker-py pages: the first List request carries `options` (filters, sort and
`page_size`: 50, or less for a `limit`); each next one carries only `next_page_token`, since
the two are a oneof (`opts`) and setting the token clears the options. So the token holds the
query itself, the options serialized after the offset of the next page, and the domain pages
by offset. A token the client alters only changes the query: every page is checked as the first.
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message

from metadata.errors import Invalid

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_OFFSET = struct.Struct(">Q")

Options = TypeVar("Options", bound=Message)


def page_request(request: Any, options_type: type[Options]) -> tuple[Options, int]:
    """The options and offset a List request asks for (`request`: any generated List*Request,
    whose stubs share no base type)."""
    if request.WhichOneof("opts") != "next_page_token" or not request.next_page_token:
        options: Options = request.options
        return options, 0
    token: str = request.next_page_token
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
        (offset,) = _OFFSET.unpack_from(raw)
        return options_type.FromString(raw[_OFFSET.size :]), int(offset)
    except (binascii.Error, UnicodeError, ValueError, struct.error, DecodeError):
        raise Invalid(f"invalid page token {token!r}") from None


def page_token(options: Message, offset: int) -> str:
    return base64.urlsafe_b64encode(_OFFSET.pack(offset) + options.SerializeToString()).decode()


def next_token(options: Message, offset: int, size: int, found: int) -> str:
    """The token of the page after `offset`, when `found` (size + 1 were asked) shows one."""
    return page_token(options, offset + size) if found > size else ""


def page_size(requested: int) -> int:
    """The page size asked for (0 or unset: the default), at most MAX_PAGE_SIZE."""
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
