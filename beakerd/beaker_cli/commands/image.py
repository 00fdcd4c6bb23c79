"""`beaker image create|commit|get|inspect|update|pull|rename|delete|list`."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from beakerd.beaker_cli.context import Context
from beakerd.beaker_cli.daemonless import is_output, pull_to, push_source
from beakerd.beaker_cli.errors import CliError
from beakerd.beaker_cli.image_sources import ImageSource, is_transport, open_source
from beakerd.beaker_cli.models import Image, ImageRepository
from beakerd.beaker_cli.output import (
    IMAGE_HEADERS,
    image_json,
    image_rows,
    say,
    table,
    to_json,
    warn,
)
from beakerd.beaker_cli.parsing import USAGE_ERROR, Commands
from beakerd.beaker_cli.progress import Display, display_for

REF_HELP = "image ID, full name AUTHOR/NAME, or one of your own images by NAME"


def add_parser(commands: Commands) -> None:
    image = commands.add_parser("image", help="manage Beaker images")
    verbs = image.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    create = verbs.add_parser("create", help="upload a local Docker image as a Beaker image")
    create.add_argument("--name", "-n", help="the image's name (unique among your images)")
    create.add_argument("--description", "-d", help="a one-line description")
    create.add_argument("--narrative", metavar="FILE.md", help="a markdown file describing it")
    create.add_argument("--workspace", "-w", help="workspace (ID or ORG/NAME) to create it in")
    create.add_argument(
        "--no-commit", action="store_true",
        help="push but leave the image uncommitted (commit it later with 'beaker image commit')",
    )  # fmt: skip
    create.add_argument(
        "docker_image",
        metavar="IMAGE",
        help="local Docker image or ID, or, without a Docker engine, docker-archive:PATH.tar,"
        " oci:DIR[:TAG] or oci-archive:PATH.tar[:TAG]",
    )
    create.set_defaults(run=create_image)

    commit = verbs.add_parser("commit", help="commit a pushed image: its content is then fixed")
    commit.add_argument("ref", metavar="IMAGE", help=REF_HELP)
    commit.set_defaults(run=commit_image)

    get = verbs.add_parser("get", aliases=["inspect"], help="show images' metadata as JSON")
    get.add_argument("refs", nargs="+", metavar="IMAGE", help=REF_HELP)
    get.set_defaults(run=inspect_images)

    update = verbs.add_parser("update", help="change an image's description or narrative")
    update.add_argument("ref", metavar="IMAGE", help=REF_HELP)
    update.add_argument("--description", "-d", help="the new one-line description")
    update.add_argument("--narrative", metavar="FILE.md", help="a markdown file describing it")
    update.set_defaults(run=update_image)

    pull = verbs.add_parser("pull", help="pull an image into the local Docker engine")
    pull.add_argument("ref", metavar="IMAGE", help=REF_HELP)
    pull.add_argument("tag", nargs="?", metavar="TAG", help="local tag to give it")
    pull.add_argument(
        "--output",
        "-o",
        metavar="DEST",
        help="write it to docker-archive:PATH.tar or oci:DIR instead (no Docker engine needed)",
    )
    pull.set_defaults(run=pull_image)

    rename = verbs.add_parser("rename", help="give an image a new name (its ID stays)")
    rename.add_argument("ref", metavar="IMAGE", help=REF_HELP)
    rename.add_argument("name", metavar="NAME", help="the new name")
    rename.set_defaults(run=rename_image)

    delete = verbs.add_parser("delete", help="delete an image")
    delete.add_argument("ref", metavar="IMAGE", help=REF_HELP)
    delete.set_defaults(run=delete_image)

    listing = verbs.add_parser("list", help="list images, newest first")
    listing.add_argument("--workspace", "-w", help="workspace (default: default_workspace)")
    listing.add_argument("--author", "-a", help="only images of this account (name or ID)")
    listing.add_argument("--text", "-t", help="only images whose name contains this text")
    listing.add_argument("--sort", choices=("created", "name"), default="created")
    listing.set_defaults(run=list_images)


def display_name(image: Image) -> str:
    return image.full_name or image.name or image.id


def label(image: Image) -> str:
    return f"{display_name(image)} ({image.id})"


def split_tag(reference: str) -> tuple[str, str]:
    """`repo[:tag]` → (repo, tag), minding registry ports (`host:5000/repo` has no tag)."""
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, "latest"


def read_narrative(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text()
    except OSError as e:
        raise CliError(f"cannot read narrative {path}: {e.strerror or e}") from None


def workspace_id(ctx: Context, given: str | None) -> str | None:
    ref = given or ctx.config.default_workspace
    if not ref:
        return None
    return ctx.api.resolve_workspace(ref).id


def create_image(args: argparse.Namespace, ctx: Context) -> None:
    narrative = read_narrative(args.narrative)
    with contextlib.ExitStack() as stack:
        if is_transport(args.docker_image):
            source = stack.enter_context(open_source(args.docker_image))
            local_id, push = _image_id(source), _pusher_from_file(ctx, source)
        else:
            local_id = ctx.engine.image_id(args.docker_image)
            push = _pusher_from_engine(ctx, local_id)
        _create_and_push(args, ctx, narrative, local_id, push)


Pusher = Callable[[ImageRepository, Display], None]


def _image_id(source: ImageSource) -> str:
    """What Docker would call the image: its config's digest (an index's own, for several)."""
    top = source.graph.top
    return top.digest if top.is_index else top.blobs()[0].digest


def _pusher_from_engine(ctx: Context, local_id: str) -> Pusher:
    def push(repo: ImageRepository, display: Display) -> None:
        engine = ctx.engine
        engine.tag(local_id, repo.image_tag, "latest")
        try:
            engine.push(repo.image_tag, repo.auth, display)
        finally:
            engine.untag(f"{repo.image_tag}:latest")

    return push


def _pusher_from_file(ctx: Context, source: ImageSource) -> Pusher:
    def push(repo: ImageRepository, display: Display) -> None:
        client, repository = ctx.registry(repo)
        push_source(source, client, repository, display)

    return push


def _create_and_push(
    args: argparse.Namespace, ctx: Context, narrative: str | None, local_id: str, push: Pusher
) -> None:
    api = ctx.api
    image = api.create_image(
        name=args.name,
        workspace_id=workspace_id(ctx, args.workspace),
        image_id=local_id,
        image_tag=args.docker_image,
        description=args.description,
        narrative=narrative,
    )
    shown = f"{image.name} ({image.id})" if image.name else image.id
    ctx.out.info(f"Pushing {args.docker_image} as {shown}...")
    try:
        repo = api.image_repository(image.id, upload=True)
        display = display_for("push", silent=ctx.out.silent, show=say)
        try:
            push(repo, display)
        except BaseException:
            display.close(finished=False)
            raise
        display.close()
        if not args.no_commit:
            image = api.patch_image(image.id, {"commit": True})
    except BaseException as e:
        # An image that never got its content is of no use to anyone: take it back.
        _discard(ctx, image)
        if isinstance(e, CliError):
            raise CliError(f"{e.message} (image {image.id} was deleted)", e.exit_code) from None
        raise
    if args.no_commit:
        ctx.out.info(f"Not committed: run 'beaker image commit {image.id}' to commit it.")
    ctx.out.result(data=image_json(image), text="Done.", ids=[image.id])


def _discard(ctx: Context, image: Image) -> None:
    try:
        ctx.api.delete_image(image.id)
    except CliError as e:
        warn(f"Warning: could not delete the unfinished image {image.id}: {e.message}")


def commit_image(args: argparse.Namespace, ctx: Context) -> None:
    image = ctx.api.resolve_image(args.ref)
    committed = ctx.api.patch_image(image.id, {"commit": True})
    ctx.out.result(
        data=image_json(committed), text=f"Committed {label(committed)}.", ids=[committed.id]
    )


def inspect_images(args: argparse.Namespace, ctx: Context) -> None:
    """JSON unless asked otherwise: the seed's `inspect` output is its human form too."""
    images = [ctx.api.resolve_image(ref) for ref in args.refs]
    if ctx.out.quiet:
        for image in images:
            say(image.id)
    elif ctx.out.format in {"table", "text"}:
        say(table(IMAGE_HEADERS, image_rows(images)))
    else:
        say(to_json([image_json(image) for image in images]))


def update_image(args: argparse.Namespace, ctx: Context) -> None:
    patch: dict[str, Any] = {}
    if args.description is not None:
        patch["description"] = args.description
    narrative = read_narrative(args.narrative)
    if narrative is not None:
        patch["narrative"] = narrative
    if not patch:
        raise CliError("nothing to update: give --description or --narrative", USAGE_ERROR)
    image = ctx.api.resolve_image(args.ref)
    updated = ctx.api.patch_image(image.id, patch)
    ctx.out.result(data=image_json(updated), text=f"Updated {label(updated)}.", ids=[updated.id])


def pull_image(args: argparse.Namespace, ctx: Context) -> None:
    image = ctx.api.resolve_image(args.ref)
    if not image.committed:
        raise CliError(f"image {label(image)} is not committed yet")
    repo = ctx.api.image_repository(image.id)
    if args.output:
        _pull_to_file(args, ctx, repo)
        return
    engine = ctx.engine
    internal = f"{repo.image_tag}:latest"
    # A plain pull before this one made the internal tag: it is the user's now, and stays.
    had_internal = engine.has_reference(internal)
    ctx.out.info(f"Pulling {repo.image_tag} ...")
    display = display_for("pull", silent=ctx.out.silent, show=say)
    try:
        engine.pull(repo.image_tag, repo.auth, display)
    except BaseException:
        display.close(finished=False)
        raise
    display.close()
    tag = internal
    if args.tag:
        repository, version = split_tag(args.tag)
        engine.tag(internal, repository, version)
        tag = f"{repository}:{version}"
        if not had_internal:
            engine.untag(internal)
        ctx.out.info(f"Tagged {tag}.")
    ctx.out.result(data={"id": image.id, "tag": tag}, text="Done.", ids=[tag])


def _pull_to_file(args: argparse.Namespace, ctx: Context, repo: ImageRepository) -> None:
    if not is_output(args.output):
        raise CliError(
            f"unknown output {args.output!r}: use docker-archive:PATH.tar or oci:DIR", USAGE_ERROR
        )
    name = f"{repo.image_tag}:latest"
    if args.tag:
        repository, version = split_tag(args.tag)
        name = f"{repository}:{version}"
    client, repository = ctx.registry(repo)
    ctx.out.info(f"Pulling {repo.image_tag} ...")
    display = display_for("pull", silent=ctx.out.silent, show=say)
    try:
        pull_to(client, repository, args.output, name, display)
    except BaseException:
        display.close(finished=False)
        raise
    display.close()
    ctx.out.result(data={"tag": name, "output": args.output}, text="Done.", ids=[name])


def rename_image(args: argparse.Namespace, ctx: Context) -> None:
    image = ctx.api.resolve_image(args.ref)
    renamed = ctx.api.patch_image(image.id, {"name": args.name})
    ctx.out.result(
        data=image_json(renamed),
        text=f"Renamed {display_name(image)} to {label(renamed)}.",
        ids=[renamed.id],
    )


def delete_image(args: argparse.Namespace, ctx: Context) -> None:
    image = ctx.api.resolve_image(args.ref)
    ctx.api.delete_image(image.id)
    ctx.out.result(
        data={"id": image.id, "deleted": True}, text=f"Deleted {label(image)}.", ids=[image.id]
    )


def search_clauses(
    ctx: Context, *, workspace: str | None, author: str | None, text: str | None, sort: str
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The Go client's filter and sort clauses for a listing."""
    filters: list[dict[str, Any]] = []
    if workspace:
        ws = ctx.api.resolve_workspace(workspace)
        filters.append({"field": "workspace", "operator": "eq", "value": ws.id})
    if author:
        filters.append({"field": "author", "operator": "eq", "value": author})
    if text:
        filters.append({"field": "name", "operator": "ctn", "value": text})
    order = "descending" if sort == "created" else "ascending"
    return filters, [{"field": sort, "order": order}]


def show_images(ctx: Context, images: list[Image]) -> None:
    ctx.out.result(
        data=[image_json(image) for image in images],
        text=table(IMAGE_HEADERS, image_rows(images)),
        ids=[image.id for image in images],
    )


def list_images(args: argparse.Namespace, ctx: Context) -> None:
    """Images of a workspace (the default one unless given), or of every workspace one sees."""
    filters, sorts = search_clauses(
        ctx, workspace=args.workspace or ctx.config.default_workspace, author=args.author,
        text=args.text, sort=args.sort,
    )  # fmt: skip
    show_images(ctx, list(ctx.api.search_images(filters, sorts)))
