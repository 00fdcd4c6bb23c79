"""`beaker image create|inspect|pull|rename|delete|list`."""

from __future__ import annotations

import argparse
from pathlib import Path

from beakerd.beaker_cli.context import Context
from beakerd.beaker_cli.errors import CliError
from beakerd.beaker_cli.models import Image
from beakerd.beaker_cli.output import (
    IMAGE_HEADERS,
    image_json,
    image_rows,
    say,
    table,
    to_json,
    warn,
)
from beakerd.beaker_cli.parsing import Commands


def add_parser(commands: Commands) -> None:
    image = commands.add_parser("image", help="manage Beaker images")
    verbs = image.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    create = verbs.add_parser("create", help="upload a local Docker image as a Beaker image")
    create.add_argument("--name", "-n", help="the image's name (unique among your images)")
    create.add_argument("--description", "-d", help="a one-line description")
    create.add_argument("--narrative", metavar="FILE.md", help="a markdown file describing it")
    create.add_argument("--workspace", "-w", help="workspace (ID or ORG/NAME) to create it in")
    create.add_argument("docker_image", metavar="DOCKER_IMAGE", help="local Docker image or ID")
    create.set_defaults(run=create_image)

    inspect = verbs.add_parser("inspect", help="show images' metadata as JSON")
    inspect.add_argument("refs", nargs="+", metavar="IMAGE", help="image ID or full name")
    inspect.set_defaults(run=inspect_images)

    pull = verbs.add_parser("pull", help="pull an image into the local Docker engine")
    pull.add_argument("ref", metavar="IMAGE", help="image ID or full name")
    pull.add_argument("tag", nargs="?", metavar="TAG", help="local tag to give it")
    pull.set_defaults(run=pull_image)

    rename = verbs.add_parser("rename", help="give an image a new name (its ID stays)")
    rename.add_argument("ref", metavar="IMAGE", help="image ID or full name")
    rename.add_argument("name", metavar="NAME", help="the new name")
    rename.set_defaults(run=rename_image)

    delete = verbs.add_parser("delete", help="delete an image")
    delete.add_argument("ref", metavar="IMAGE", help="image ID or full name")
    delete.set_defaults(run=delete_image)

    listing = verbs.add_parser("list", help="list the images of a workspace")
    listing.add_argument("--workspace", "-w", help="workspace (default: default_workspace)")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(run=list_images)


def display_name(image: Image) -> str:
    return image.full_name or image.name or image.id


def split_tag(reference: str) -> tuple[str, str]:
    """`repo[:tag]` → (repo, tag), minding registry ports (`host:5000/repo` has no tag)."""
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, "latest"


def _workspace_id(ctx: Context, given: str | None) -> str | None:
    ref = given or ctx.config.default_workspace
    if not ref:
        return None
    return ctx.api.workspace(ref).id


def create_image(args: argparse.Namespace, ctx: Context) -> None:
    narrative = None
    if args.narrative:
        try:
            narrative = Path(args.narrative).read_text()
        except OSError as e:
            raise CliError(f"cannot read narrative {args.narrative}: {e.strerror or e}") from None
    api = ctx.api
    engine = ctx.engine
    local_id = engine.image_id(args.docker_image)
    workspace_id = _workspace_id(ctx, args.workspace)
    image = api.create_image(
        name=args.name,
        workspace_id=workspace_id,
        image_id=local_id,
        image_tag=args.docker_image,
        description=args.description,
        narrative=narrative,
    )
    label = f"{image.name} ({image.id})" if image.name else image.id
    say(f"Pushing {args.docker_image} as {label}...")
    try:
        repo = api.image_repository(image.id, upload=True)
        engine.tag(local_id, repo.image_tag, "latest")
        try:
            engine.push(repo.image_tag, repo.auth, say)
        finally:
            engine.untag(f"{repo.image_tag}:latest")
        api.patch_image(image.id, {"commit": True})
    except BaseException as e:
        # An image that never got its content is of no use to anyone: take it back.
        _discard(ctx, image)
        if isinstance(e, CliError):
            raise CliError(f"{e.message} (image {image.id} was deleted)", e.exit_code) from None
        raise
    say("Done.")


def _discard(ctx: Context, image: Image) -> None:
    try:
        ctx.api.delete_image(image.id)
    except CliError as e:
        warn(f"Warning: could not delete the unfinished image {image.id}: {e.message}")


def inspect_images(args: argparse.Namespace, ctx: Context) -> None:
    images = [ctx.api.resolve_image(ref) for ref in args.refs]
    say(to_json([image_json(image) for image in images]))


def pull_image(args: argparse.Namespace, ctx: Context) -> None:
    image = ctx.api.resolve_image(args.ref)
    if not image.committed:
        raise CliError(f"image {display_name(image)} ({image.id}) is not committed yet")
    repo = ctx.api.image_repository(image.id)
    engine = ctx.engine
    say(f"Pulling {repo.image_tag} ...")
    engine.pull(repo.image_tag, repo.auth, say)
    if args.tag:
        repository, tag = split_tag(args.tag)
        engine.tag(f"{repo.image_tag}:latest", repository, tag)
        engine.untag(f"{repo.image_tag}:latest")
    say("Done.")


def rename_image(args: argparse.Namespace, ctx: Context) -> None:
    image = ctx.api.resolve_image(args.ref)
    renamed = ctx.api.patch_image(image.id, {"name": args.name})
    say(f"Renamed {display_name(image)} to {display_name(renamed)} ({renamed.id}).")


def delete_image(args: argparse.Namespace, ctx: Context) -> None:
    image = ctx.api.resolve_image(args.ref)
    ctx.api.delete_image(image.id)
    say(f"Deleted {display_name(image)} ({image.id}).")


def list_images(args: argparse.Namespace, ctx: Context) -> None:
    ref = args.workspace or ctx.config.default_workspace
    if not ref:
        raise CliError(
            "no workspace given: pass --workspace ORG/NAME or run "
            "'beaker config set default_workspace ORG/NAME'"
        )
    workspace = ctx.api.workspace(ref)
    images = list(ctx.api.workspace_images(workspace.id))
    if args.format == "json":
        say(to_json([image_json(image) for image in images]))
    else:
        say(table(IMAGE_HEADERS, image_rows(images)))
