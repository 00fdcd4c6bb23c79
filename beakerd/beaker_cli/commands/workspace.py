"""`beaker workspace create|get|list|images|move|set-visibility|rename|archive|unarchive`.

A workspace is named by ID, by full name ORG/NAME, or by NAME alone for one of your own org's.
"""

from __future__ import annotations

import argparse

from beakerd.beaker_cli.commands.image import search_clauses, show_images
from beakerd.beaker_cli.context import Context
from beakerd.beaker_cli.errors import CliError
from beakerd.beaker_cli.models import Workspace
from beakerd.beaker_cli.output import WORKSPACE_HEADERS, say, table, to_json, workspace_json
from beakerd.beaker_cli.output import workspace_rows as rows
from beakerd.beaker_cli.parsing import USAGE_ERROR, Commands

WS_HELP = "workspace ID, full name ORG/NAME, or NAME in your own org"


def add_parser(commands: Commands) -> None:
    workspace = commands.add_parser("workspace", help="manage workspaces")
    verbs = workspace.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    create = verbs.add_parser("create", help="make a workspace")
    create.add_argument("name", metavar="NAME", help="NAME (in your own org) or ORG/NAME")
    create.add_argument("--org", "-o", help="the organization (default: your own)")
    create.add_argument("--description", "-d", help="what it holds")
    create.add_argument("--public", action="store_true", help="readable by every account")
    create.set_defaults(run=create_workspace)

    get = verbs.add_parser("get", aliases=["inspect"], help="show workspaces as JSON")
    get.add_argument("refs", nargs="+", metavar="WORKSPACE", help=WS_HELP)
    get.set_defaults(run=get_workspaces)

    listing = verbs.add_parser("list", help="list the workspaces you can see")
    listing.add_argument("org", nargs="?", metavar="ORG", help="only this organization's")
    listing.add_argument("--archived", action="store_true", help="only archived ones")
    listing.set_defaults(run=list_workspaces)

    images = verbs.add_parser("images", help="list a workspace's images, newest first")
    images.add_argument("ref", metavar="WORKSPACE", help=WS_HELP)
    images.add_argument("--text", "-t", help="only images whose name contains this text")
    images.set_defaults(run=list_images)

    move = verbs.add_parser("move", help="move images into a workspace")
    move.add_argument("ref", metavar="WORKSPACE", help=WS_HELP)
    move.add_argument("images", nargs="+", metavar="IMAGE", help="image IDs or names")
    move.set_defaults(run=move_images)

    visibility = verbs.add_parser("set-visibility", help="make a workspace public or private")
    visibility.add_argument("ref", metavar="WORKSPACE", help=WS_HELP)
    visibility.add_argument("visibility", choices=("public", "private"))
    visibility.set_defaults(run=set_visibility)

    rename = verbs.add_parser("rename", help="give a workspace a new name (its ID stays)")
    rename.add_argument("ref", metavar="WORKSPACE", help=WS_HELP)
    rename.add_argument("name", metavar="NAME", help="the new name, without the org")
    rename.set_defaults(run=rename_workspace)

    archive = verbs.add_parser("archive", help="make a workspace read-only")
    archive.add_argument("ref", metavar="WORKSPACE", help=WS_HELP)
    archive.set_defaults(run=archive_workspace, archive=True)

    unarchive = verbs.add_parser("unarchive", help="make an archived workspace writable again")
    unarchive.add_argument("ref", metavar="WORKSPACE", help=WS_HELP)
    unarchive.set_defaults(run=archive_workspace, archive=False)


def full_name(workspace: Workspace) -> str:
    return workspace.full_name or workspace.name or workspace.id


def report(ctx: Context, workspace: Workspace, text: str) -> None:
    ctx.out.result(data=workspace_json(workspace), text=text, ids=[workspace.id])


def create_workspace(args: argparse.Namespace, ctx: Context) -> None:
    if "/" in args.name and args.org:
        raise CliError("give the org in NAME (ORG/NAME) or with --org, not both", USAGE_ERROR)
    made = ctx.api.create_workspace(args.name, args.org, args.description, args.public)
    report(ctx, made, f"Workspace {full_name(made)} created ({made.id}).")


def get_workspaces(args: argparse.Namespace, ctx: Context) -> None:
    """JSON unless asked otherwise, like `beaker image inspect`."""
    found = [ctx.api.resolve_workspace(ref) for ref in args.refs]
    if ctx.out.quiet:
        for workspace in found:
            say(workspace.id)
    elif ctx.out.format in {"table", "text"}:
        say(table(WORKSPACE_HEADERS, rows(found)))
    else:
        say(to_json([workspace_json(w) for w in found]))


def list_workspaces(args: argparse.Namespace, ctx: Context) -> None:
    found = [w for w in ctx.api.list_workspaces(args.org) if w.archived or not args.archived]
    ctx.out.result(
        data=[workspace_json(w) for w in found],
        text=table(WORKSPACE_HEADERS, rows(found)),
        ids=[w.id for w in found],
    )


def list_images(args: argparse.Namespace, ctx: Context) -> None:
    filters, sorts = search_clauses(
        ctx, workspace=args.ref, author=None, text=args.text, sort="created"
    )
    show_images(ctx, list(ctx.api.search_images(filters, sorts)))


def move_images(args: argparse.Namespace, ctx: Context) -> None:
    workspace = ctx.api.resolve_workspace(args.ref)
    ids = [ctx.api.resolve_image(ref).id for ref in args.images]
    ctx.api.transfer_images(workspace.id, ids)
    count = f"{len(ids)} image" + ("" if len(ids) == 1 else "s")
    ctx.out.result(
        data={"workspace": workspace.id, "moved": ids},
        text=f"Moved {count} into workspace {full_name(workspace)}.",
        ids=ids,
    )


def set_visibility(args: argparse.Namespace, ctx: Context) -> None:
    workspace = ctx.api.resolve_workspace(args.ref)
    ctx.api.set_workspace_visibility(workspace.id, args.visibility == "public")
    changed = ctx.api.workspace(workspace.id)
    report(ctx, changed, f"Workspace {full_name(changed)} is now {args.visibility}.")


def rename_workspace(args: argparse.Namespace, ctx: Context) -> None:
    if "/" in args.name:
        raise CliError("a workspace keeps its org: give the new NAME without ORG/", USAGE_ERROR)
    workspace = ctx.api.resolve_workspace(args.ref)
    renamed = ctx.api.patch_workspace(workspace.id, {"name": args.name})
    report(ctx, renamed, f"Renamed workspace {full_name(workspace)} to {full_name(renamed)}.")


def archive_workspace(args: argparse.Namespace, ctx: Context) -> None:
    workspace = ctx.api.resolve_workspace(args.ref)
    changed = ctx.api.patch_workspace(workspace.id, {"archive": args.archive})
    state = "archived" if args.archive else "unarchived"
    report(ctx, changed, f"Workspace {full_name(changed)} {state}.")
