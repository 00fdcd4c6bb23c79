"""How long the home page takes server-side: 50 images shown, 10,000 in the database.

    python -m bench.web_render_bench [--images N] [--requests N] [--postgresql]

Starts the whole app in-process on a fresh database (SQLite in a temp folder, or PostgreSQL
started by tests/backends/postgres.py), fills it with N images by 20 authors over 40 workspaces
(half public) in one transaction, then times GET requests for the first page (newest first),
a later page sorted by name, and a text search, anonymous and signed in. A request is timed
from inside the server (an aiohttp middleware around the handler), so the client's own cost is
left out. Also times the template alone (Jinja2) on the same 50 images. Prints milliseconds
(median and 95th percentile) as a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from beakerd.app import create_app
from beakerd.settings import Settings
from metadata.context import METADATA
from metadata.ids import new_id, new_repository_name
from metadata.web.visits import WEB
from tests.backends.postgres import PostgresServer

_AUTHORS = 20
_WORKSPACES = 40

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _fill(app: web.Application, count: int) -> None:
    db = app[METADATA].db
    row = await db.fetchone("SELECT id FROM organizations WHERE name = 'bench'")
    assert row is not None
    org_id = row["id"]
    admin = await db.fetchone("SELECT id FROM accounts WHERE name = 'bench'")
    assert admin is not None
    started = time.time() - count
    async with db.transaction() as conn:
        authors = [new_id("us") for _ in range(_AUTHORS)]
        await conn.executemany(
            "INSERT INTO accounts (id, name, display_name, admin, created) VALUES (?, ?, ?, 0, ?)",
            [(a, f"author{n}", f"Author {n}", started) for n, a in enumerate(authors)],
        )
        workspaces = [new_id("ws") for _ in range(_WORKSPACES)]
        await conn.executemany(
            "INSERT INTO workspaces (id, organization_id, name, description, author_id, public,"
            " archived, created, modified) VALUES (?, ?, ?, '', ?, ?, 0, ?, ?)",
            [(w, org_id, f"ws{n}", admin["id"], n % 2, started, started)
             for n, w in enumerate(workspaces)],
        )  # fmt: skip
        await conn.executemany(
            "INSERT INTO images (id, name, author_id, workspace_id, description, narrative,"
            " narrative_html, original_tag, repository, created, committed, digest, size)"
            " VALUES (?, ?, ?, ?, ?, '', '', ?, ?, ?, ?, ?, ?)",
            [(new_id("bp"), f"image{n:05}", authors[n % _AUTHORS], workspaces[n % _WORKSPACES],
              f"Benchmark image number {n}, which counts words", f"image{n:05}",
              new_repository_name(), started + n, started + n + 1, "sha256:" + "0" * 64,
              1_000_000 + n) for n in range(count)],
        )  # fmt: skip


def _timing(samples: list[float]) -> Callable[[web.Request, Handler], Awaitable[Any]]:
    @web.middleware
    async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        response = await handler(request)
        samples.append((time.perf_counter() - start) * 1000)
        return response

    return timed


def _row(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"| {label} | {statistics.median(ordered):.1f} | {p95:.1f} |"


async def _run(args: argparse.Namespace, database: str | None, folder: Path) -> list[str]:
    os.environ["HOME"] = str(folder / "home")
    (folder / "home").mkdir()
    settings: dict[str, Any] = {"data_dir": folder / "data", "bootstrap_account": "bench"}
    if database:
        settings["database"] = database
    app = create_app(Settings(**settings))
    samples: list[float] = []
    app.middlewares.insert(0, _timing(samples))
    lines = []
    async with TestClient(TestServer(app)) as client:
        await _fill(app, args.images)
        db = app[METADATA].db
        token = (home := folder / "home" / ".beaker" / "config.yml").read_text()
        secret = re.search(r"user_token: (\S+)", token)
        assert secret is not None, home
        pages = {
            "first page, newest first": "/",
            "page 40, by name": "/?sort=name&order=asc&page=40",
            "search 'number 12', by size": "/?q=number+12&sort=size",
        }
        for signed_in in (False, True):
            if signed_in:
                page = await (await client.get("/signin")).text()
                csrf = re.search(r'name="csrf" value="([^"]+)"', page)
                assert csrf is not None
                await client.post(
                    "/signin", data={"csrf": csrf.group(1), "token": secret.group(1), "next": "/"}
                )
            for label, path in pages.items():
                for _ in range(5):  # warm the caches and the statement cache
                    await client.get(path)
                samples.clear()
                for _ in range(args.requests):
                    resp = await client.get(path)
                    body = await resp.text()
                    assert resp.status == 200 and body.count('class="image-name"') > 0, path
                who = "signed in" if signed_in else "anonymous"
                lines.append(_row(f"GET {label} ({who})", samples))
        # The template alone, on the 50 images of the first page.
        from metadata.images import list_images
        from metadata.web.listing import ImageList

        images = await list_images(db, None, limit=50)
        listing = ImageList(
            images,
            1,
            True,
            "created",
            True,
            dict.fromkeys(("q", "workspace", "author", "order"), ""),
            [],
        )
        renderer = app[WEB].renderer
        context = {"listing": listing, "title": "Images", "viewer": None, "csrf": "x",
                   "path": "/"}  # fmt: skip
        times = []
        for _ in range(args.requests):
            start = time.perf_counter()
            renderer.html("home.html", context)
            times.append((time.perf_counter() - start) * 1000)
        lines.append(_row("Jinja2 render of home.html alone (50 rows)", times))
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--postgresql", action="store_true")
    args = parser.parse_args()
    server = PostgresServer().start() if args.postgresql else None
    try:
        database = await server.create_database() if server else None
        with tempfile.TemporaryDirectory() as tmp:
            lines = await _run(args, database, Path(tmp))
    finally:
        if server is not None:
            server.stop()
    engine = "PostgreSQL" if server else "SQLite"
    print(f"{args.images} images ({engine}), {args.requests} requests each, in ms\n")
    print("| request | median | p95 |\n|---|---:|---:|")
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
