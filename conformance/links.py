"""RFC 5988 `Link` headers, as used for tag-list and referrers pagination."""

from __future__ import annotations

import re

_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
_REL = re.compile(r'rel\s*=\s*"?([^";,]+)"?')


def next_link(value: str | None) -> str | None:
    """The target of the `rel="next"` link in a Link header value, if there is one."""
    if not value:
        return None
    for m in _LINK.finditer(value):
        rel = _REL.search(m.group(2))
        if rel and "next" in rel.group(1).split():
            return m.group(1)
    return None
