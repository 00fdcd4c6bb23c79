"""The web interface: server-rendered pages from Jinja2 templates, mounted by `add_routes`.

Anonymous visitors see images of public workspaces; signing in with an API token
(metadata/web_sessions.py) shows what that account may read and lets it change what it may
change, through the same domain functions as the API (metadata/images.py, permissions.py).
Every page is escaped by the templates' autoescaping, sent under a strict Content-Security-Policy
(scripts and styles from beakerd itself only: no inline code), and every form that changes
something carries the session's CSRF token (metadata/web/csrf.py).
"""

from __future__ import annotations

from aiohttp import web

from metadata.web import browse, image_pages, registry_pages, signin
from metadata.web.visits import WEB, WebContext, WebSettings, page


def add_routes(app: web.Application, settings: WebSettings) -> None:
    context = WebContext(settings)
    app[WEB] = context
    routes = app.router
    routes.add_get("/static/{name}", context.renderer.assets.serve)
    routes.add_get("/", page(browse.home))
    routes.add_get("/workspaces", page(browse.workspaces))
    routes.add_get("/ws/{org}/{name}", page(browse.workspace))
    routes.add_get("/accounts/{name}", page(browse.account))
    routes.add_get("/im/{image_id}", page(image_pages.image_page))
    routes.add_get("/im/{image_id}/edit", page(image_pages.edit_form))
    routes.add_post("/im/{image_id}/edit", page(image_pages.edit))
    routes.add_post("/im/{image_id}/preview", page(image_pages.preview))
    routes.add_post("/im/{image_id}/commit", page(image_pages.commit))
    routes.add_get("/im/{image_id}/delete", page(image_pages.delete_form))
    routes.add_post("/im/{image_id}/delete", page(image_pages.delete))
    routes.add_get("/registry", page(registry_pages.repositories))
    routes.add_post("/registry/delete-tag", page(registry_pages.delete_tag))
    routes.add_get("/registry/{name:[a-z0-9][a-z0-9._/-]*}", page(registry_pages.repository))
    routes.add_get("/signin", page(signin.signin_form))
    routes.add_post("/signin", page(signin.signin))
    routes.add_post("/signout", page(signin.signout))
