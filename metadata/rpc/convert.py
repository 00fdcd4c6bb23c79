"""Domain records (metadata/records.py) as beaker-py 2.x's protobuf messages.

Names follow Beaker's: an image has `name` and `full_name` (`<author>/<name>`); a workspace's
`name` is its full name `<org>/<name>` (what beaker-py puts in `/ws/{name}` URLs). An
uncommitted image has no `committed` field at all: beaker-py tests `HasField("committed")`.
"""

from __future__ import annotations

from beaker import beaker_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from metadata.models import image_tag
from metadata.records import Account, Image, Organization, Workspace


def timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def user(account: Account) -> pb.User:
    return pb.User(
        id=account.id,
        name=account.name,
        display_name=account.display_name,
        created=timestamp(account.created),
    )


def organization(org: Organization) -> pb.Organization:
    return pb.Organization(
        id=org.id,
        name=org.name,
        display_name=org.display_name,
        description=org.description,
        created=timestamp(org.created),
    )


def workspace(record: Workspace, images: int) -> pb.Workspace:
    return pb.Workspace(
        id=record.id,
        name=record.full_name,
        description=record.description,
        created=timestamp(record.created),
        modified=timestamp(record.modified),
        archived=record.archived,
        owner_org=organization(record.org),
        author_user=user(record.author),
        size=pb.Workspace.WorkspaceItemCount(images=images),
    )


def image(record: Image, registry_address: str) -> pb.Image:
    message = pb.Image(
        id=record.id,
        name=record.name or "",
        full_name=record.full_name or "",
        workspace_id=record.workspace.id,
        author_id=record.author.id,
        created=timestamp(record.created),
        docker_tag=image_tag(registry_address, record.repository),
        original_tag=record.original_tag,
        description=record.description,
        size=record.size or 0,
    )
    if record.committed is not None:
        message.committed.CopyFrom(timestamp(record.committed))
    return message
