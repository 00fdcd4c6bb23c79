"""Image narratives: markdown of at most MAX_NARRATIVE_BYTES, rendered to HTML off the loop.

Rendering is pure Python and slow on hostile input (markdown-it-py takes about 15 s over a
million `[`), so it never runs on the event loop: a narrative is rendered in a thread when it
is written, and its HTML stored beside it (images.narrative_html); a row written before that
column existed is rendered, the same way, the first time its page is shown.

One thread renders, so hostile narratives queue behind each other rather than take the threads
that file I/O uses; the event loop keeps the GIL in turns with it and goes on answering.
Renders of the same text in flight at once are shared: the pages need no login, and a hundred
visits to a not-yet-rendered page cost one render.

The dialect is CommonMark with GitHub's tables, strikethrough and task lists. Raw HTML is
disabled, so HTML in a narrative comes out as text; the result is then sanitized (nh3) to the
elements markdown makes, with http(s) and mailto links only, as a second line behind the
renderer's own link checks and the pages' Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import nh3
from markdown_it import MarkdownIt
from mdit_py_plugins.tasklists import tasklists_plugin

from metadata.errors import Invalid

# The API refuses a longer narrative with 400 and says so. A million `[` (within the limit)
# is the worst case known: about 15 s of rendering, in the background.
MAX_NARRATIVE_BYTES = 1 << 20

_markdown = (
    MarkdownIt("commonmark", {"html": False})
    .enable(["table", "strikethrough"])
    .use(tasklists_plugin)
)
_TAGS = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "img", "hr", "br", "table", "thead", "tbody", "tr", "th", "td",
    "input",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"}}
# A task list's boxes show a state and take no input: always disabled checkboxes.
_TASK_BOX = {"input": {"checked": {"checked"}, "class": {"task-list-item-checkbox"}}}
_TASK_CLASSES = {"ul": {"contains-task-list"}, "li": {"task-list-item"}}


def _render(text: str) -> str:
    return nh3.clean(
        _markdown.render(text),
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        tag_attribute_values=_TASK_BOX,
        set_tag_attribute_values={"input": {"type": "checkbox", "disabled": "disabled"}},
        allowed_classes=_TASK_CLASSES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


_renderer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="narrative")
_in_flight: dict[str, asyncio.Future[str]] = {}


def check_narrative(text: str) -> str:
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        raise Invalid("narrative is not valid Unicode text (it holds a lone surrogate)") from None
    if size > MAX_NARRATIVE_BYTES:
        raise Invalid(f"narrative is {size} bytes; the limit is {MAX_NARRATIVE_BYTES} bytes")
    return text


async def render_narrative(text: str) -> str:
    """The narrative as HTML, rendered in the narrative thread."""
    if not text:
        return ""
    loop = asyncio.get_running_loop()
    future = _in_flight.get(text)
    if future is None or future.get_loop() is not loop:
        future = loop.run_in_executor(_renderer, _render, text)
        _in_flight[text] = future
        future.add_done_callback(lambda done: _forget(text, done))
    # Shielded: a visitor who leaves does not cancel the render the others wait for.
    return await asyncio.shield(future)


def _forget(text: str, done: asyncio.Future[str]) -> None:
    if _in_flight.get(text) is done:
        del _in_flight[text]
