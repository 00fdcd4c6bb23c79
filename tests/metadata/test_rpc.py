"""The gRPC servicer in-process, through a grpc.aio channel, over the app's own data.

Images are made over REST (as beaker-py 2.x makes them); everything else is asked over gRPC.
The last tests start the real cleanup context (TLS with the auto CA, the port rules).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from beaker import beaker_pb2 as pb
from beaker import beaker_pb2_grpc
from grpc import aio

from beakerd import workers
from beakerd.listener import ListenError
from metadata.context import METADATA
from metadata.organizations import add_member, create_organization
from metadata.rpc.paging import page_token
from metadata.rpc.servicer import SERVED, BeakerServicer
from tests.metadata.conftest import config_token, make_app
from tests.metadata.helpers import Api, push_latest, repository_of

Code = grpc.StatusCode


@dataclass
class Rpc:
    stub: Any  # beaker_pb2_grpc.BeakerStub (generated, untyped)
    api: Api

    async def __call__(self, method: str, request: Any, token: str | None = None) -> Any:
        metadata = [("authorization", f"bearer {token or self.api.token}")]
        return await getattr(self.stub, method)(request, metadata=metadata)

    async def fails(
        self, method: str, request: Any, token: str | None = None
    ) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(aio.AioRpcError) as caught:
            await self(method, request, token)
        return caught.value.code(), caught.value.details() or ""


@pytest.fixture
async def rpc(api: Api) -> AsyncIterator[Rpc]:
    server = aio.server()
    servicer = BeakerServicer(api.client.app[METADATA])
    beaker_pb2_grpc.add_BeakerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Rpc(beaker_pb2_grpc.BeakerStub(channel), api)
    finally:
        await server.stop(None)


def list_images(page_size: int = 50, **opts: Any) -> pb.ListImagesRequest:
    sort = opts.pop("sort", "created")
    order = opts.pop("order", pb.SORT_ORDER_UNSPECIFIED)
    clause = pb.ListImagesRequest.Opts.SortClause(sort_order=order, **{sort: {}})
    return pb.ListImagesRequest(
        options=pb.ListImagesRequest.Opts(sort_clause=clause, page_size=page_size, **opts)
    )


async def all_pages(rpc: Rpc, request: Any, field: str, token: str | None = None) -> list[Any]:
    """Every page, as beaker-py asks them: the same request again with next_page_token."""
    found: list[Any] = []
    while True:
        response = await rpc(type(request).__name__.removesuffix("Request"), request, token)
        found += list(getattr(response, field))
        if not response.next_page_token:
            return found
        request.next_page_token = response.next_page_token


async def outsider(rpc: Rpc) -> str:
    """A token of an account with its own org, member of nothing of tester's."""
    _, token = await rpc.api.new_account("mallory")
    return token


# -- images ----------------------------------------------------------------------------------


async def test_get_image_answers_the_fields_beaker_py_reads(rpc: Rpc) -> None:
    made = await rpc.api.create_image("hello", description="says hello")
    image = (await rpc("GetImage", pb.GetImageRequest(image_id=made["id"]))).image
    assert (image.id, image.name, image.full_name) == (made["id"], "hello", "tester/hello")
    assert image.description == "says hello"
    assert image.author_id == made["author"]["id"]
    assert image.workspace_id == made["workspaceRef"]["id"]
    assert image.docker_tag == made["dockerTag"]
    assert image.created.seconds > 0
    assert not image.HasField("committed")  # beaker-py commits when this is absent


async def test_get_image_by_a_bare_name_finds_the_callers_own_image(rpc: Rpc) -> None:
    made = await rpc.api.create_image("mine")
    image = (await rpc("GetImage", pb.GetImageRequest(image_id="mine"))).image
    assert image.id == made["id"]


async def test_an_unknown_image_and_one_the_caller_may_not_read_are_both_not_found(
    rpc: Rpc,
) -> None:
    made = await rpc.api.create_image("private")
    token = await outsider(rpc)
    code, message = await rpc.fails("GetImage", pb.GetImageRequest(image_id="bp_nosuchimage"))
    assert (code, message) == (Code.NOT_FOUND, "image 'bp_nosuchimage' not found")
    code, _ = await rpc.fails("GetImage", pb.GetImageRequest(image_id=made["id"]), token)
    assert code == Code.NOT_FOUND


async def test_a_missing_or_revoked_token_is_unauthenticated(rpc: Rpc) -> None:
    request = pb.GetUserRequest()
    with pytest.raises(aio.AioRpcError) as caught:
        await rpc.stub.GetUser(request)
    assert caught.value.code() == Code.UNAUTHENTICATED
    assert "authorization" in (caught.value.details() or "")
    code, _ = await rpc.fails("GetUser", request, token="bk_not-a-real-token")
    assert code == Code.UNAUTHENTICATED


async def test_resolve_image_name_gives_the_id_of_author_and_name(rpc: Rpc) -> None:
    made = await rpc.api.create_image("named")
    request = pb.ResolveImageNameRequest(author_name="tester", image_name="named")
    assert (await rpc("ResolveImageName", request)).image_id == made["id"]
    request.image_name = "nameless"
    assert (await rpc.fails("ResolveImageName", request))[0] == Code.NOT_FOUND


async def test_list_images_pages_with_next_page_token_until_it_comes_back_empty(
    rpc: Rpc,
) -> None:
    for name in ("e", "c", "a", "d", "b"):
        await rpc.api.create_image(name)
    first = await rpc("ListImages", list_images(page_size=2, sort="name"))
    assert [i.name for i in first.images] == ["a", "b"] and first.next_page_token
    found = await all_pages(rpc, list_images(page_size=2, sort="name"), "images")
    assert [i.name for i in found] == ["a", "b", "c", "d", "e"]
    last = await rpc("ListImages", list_images(page_size=5, sort="name"))
    assert len(last.images) == 5 and last.next_page_token == ""


async def test_list_images_sorts_by_created_newest_first_and_by_name_as_asked(rpc: Rpc) -> None:
    for name in ("one", "two", "three"):
        await rpc.api.create_image(name)
    newest = await rpc("ListImages", list_images())
    assert [i.name for i in newest.images] == ["three", "two", "one"]
    oldest = await rpc("ListImages", list_images(order=pb.SORT_ORDER_ASCENDING))
    assert [i.name for i in oldest.images] == ["one", "two", "three"]
    by_name = await rpc("ListImages", list_images(sort="name", order=pb.SORT_ORDER_DESCENDING))
    assert [i.name for i in by_name.images] == ["two", "three", "one"]


async def test_list_images_filters_by_workspace_author_org_and_text(rpc: Rpc) -> None:
    api = rpc.api
    await api.ok("POST", "/workspaces", json_body={"name": "other", "org": "tester"})
    await api.create_image("in-default")
    await api.create_image("in-other", workspace="tester/other")
    bob, bob_token = await api.new_account("bob")
    await add_member(api.db, "tester", "bob")
    await api.create_image("bobs", token=bob_token)
    other = await api.ok("GET", "/workspaces/tester%2Fother")

    async def names(**opts: Any) -> set[str]:
        return {i.name for i in await all_pages(rpc, list_images(**opts), "images")}

    assert await names(workspace_id=other["id"]) == {"in-other"}
    assert await names(author_id=bob.id) == {"bobs"}
    assert await names(author_id="bob") == {"bobs"}  # a name works where an ID is asked
    assert await names(organization_id="tester") == {"in-default", "in-other", "bobs"}
    assert await names(image_name_or_description="OTHER") == {"in-other"}
    code, _ = await rpc.fails("ListImages", list_images(organization_id="no-such-org"))
    assert code == Code.NOT_FOUND


async def test_list_images_shows_only_what_the_caller_may_read(rpc: Rpc) -> None:
    await rpc.api.create_image("tester-private")
    token = await outsider(rpc)
    await rpc.api.create_image("mallory-own", token=token, workspace="mallory/default")
    found = await all_pages(rpc, list_images(), "images", token)
    assert [i.name for i in found] == ["mallory-own"]


async def test_a_bad_page_token_is_invalid_argument(rpc: Rpc) -> None:
    code, message = await rpc.fails("ListImages", pb.ListImagesRequest(next_page_token="nope"))
    assert (code, message) == (Code.INVALID_ARGUMENT, "invalid page token 'nope'")


async def test_update_image_renames_and_describes_keeping_the_id(rpc: Rpc) -> None:
    made = await rpc.api.create_image("before")
    request = pb.UpdateImageRequest(image_id=made["id"], name="after", description="new words")
    image = (await rpc("UpdateImage", request)).image
    assert (image.id, image.name, image.description) == (made["id"], "after", "new words")
    again = await rpc("UpdateImage", pb.UpdateImageRequest(image_id=made["id"]))
    assert (again.image.name, again.image.description) == ("after", "new words")
    rest = await rpc.api.ok("GET", "/images/tester%2Fafter")
    assert rest["id"] == made["id"]


async def test_renaming_onto_a_taken_name_is_already_exists(rpc: Rpc) -> None:
    await rpc.api.create_image("taken")
    made = await rpc.api.create_image("free")
    request = pb.UpdateImageRequest(image_id=made["id"], name="taken")
    code, message = await rpc.fails("UpdateImage", request)
    assert code == Code.ALREADY_EXISTS and "already exists" in message


async def test_only_the_author_or_an_admin_may_update_or_delete(rpc: Rpc) -> None:
    api = rpc.api
    _, bob_token = await api.new_account("bob")
    await add_member(api.db, "tester", "bob")
    made = await api.create_image("testers")
    update = pb.UpdateImageRequest(image_id=made["id"], description="bob was here")
    assert (await rpc.fails("UpdateImage", update, bob_token))[0] == Code.PERMISSION_DENIED
    delete = pb.DeleteImagesRequest(image_ids=[made["id"]])
    assert (await rpc.fails("DeleteImages", delete, bob_token))[0] == Code.PERMISSION_DENIED


async def test_update_image_commits_only_what_was_pushed_and_commit_is_idempotent(
    rpc: Rpc,
) -> None:
    made = await rpc.api.create_image("pushed")
    commit = pb.UpdateImageRequest(image_id=made["id"], committed={})
    code, message = await rpc.fails("UpdateImage", commit)
    assert code == Code.INVALID_ARGUMENT and "nothing was pushed" in message
    await push_latest(rpc.api.client, repository_of(made), [b"layer"], rpc.api.admin_basic)
    first = (await rpc("UpdateImage", commit)).image
    second = (await rpc("UpdateImage", commit)).image
    assert first.HasField("committed") and first.committed == second.committed
    assert first.size > 0


async def test_delete_images_checks_every_image_before_deleting_any(rpc: Rpc) -> None:
    api = rpc.api
    keep = await api.create_image("keep")
    drop = await api.create_image("drop")
    request = pb.DeleteImagesRequest(image_ids=[keep["id"], "bp_nosuchimage"])
    assert (await rpc.fails("DeleteImages", request))[0] == Code.NOT_FOUND
    await rpc("GetImage", pb.GetImageRequest(image_id=keep["id"]))
    await rpc("DeleteImages", pb.DeleteImagesRequest(image_ids=[drop["id"]]))
    gone = await rpc.fails("GetImage", pb.GetImageRequest(image_id=drop["id"]))
    assert gone[0] == Code.NOT_FOUND
    assert (await api.call("GET", f"/images/{drop['id']}")).status == 404


# -- accounts and organizations ---------------------------------------------------------------


async def test_get_user_without_an_id_is_whoami_and_with_one_another_user(rpc: Rpc) -> None:
    me = (await rpc("GetUser", pb.GetUserRequest())).user
    assert me.name == "tester" and me.id.startswith("us_")
    bob, _ = await rpc.api.new_account("bob")
    assert (await rpc("GetUser", pb.GetUserRequest(user_id=bob.id))).user.name == "bob"
    missing = await rpc.fails("GetUser", pb.GetUserRequest(user_id="us_nobody"))
    assert missing[0] == Code.NOT_FOUND


async def test_resolve_user_and_organization_names(rpc: Rpc) -> None:
    me = (await rpc("GetUser", pb.GetUserRequest())).user
    user = await rpc("ResolveUserName", pb.ResolveUserNameRequest(user_name="tester"))
    assert user.user_id == me.id
    org = await rpc(
        "ResolveOrganizationName", pb.ResolveOrganizationNameRequest(organization_name="tester")
    )
    assert org.organization_id.startswith("or_")
    got = await rpc(
        "GetOrganization", pb.GetOrganizationRequest(organization_id=org.organization_id)
    )
    assert got.organization.name == "tester"
    request = pb.ResolveOrganizationNameRequest(organization_name="ai2")
    assert (await rpc.fails("ResolveOrganizationName", request))[0] == Code.NOT_FOUND


async def test_list_organizations_lists_the_callers_own_in_pages(rpc: Rpc) -> None:
    for name in ("org-a", "org-b"):
        await create_organization(rpc.api.db, name)
        await add_member(rpc.api.db, name, "tester")
    request = pb.ListOrganizationsRequest(options=pb.ListOrganizationsRequest.Opts(page_size=2))
    found = await all_pages(rpc, request, "organizations")
    assert [o.name for o in found] == ["tester", "org-a", "org-b"]  # oldest first
    token = await outsider(rpc)
    theirs = await all_pages(rpc, pb.ListOrganizationsRequest(), "organizations", token)
    assert [o.name for o in theirs] == ["mallory"]


# -- workspaces -------------------------------------------------------------------------------


async def test_resolve_and_get_workspace_with_its_full_name_and_image_count(rpc: Rpc) -> None:
    await rpc.api.create_image("counted")
    request = pb.ResolveWorkspaceNameRequest(owner_name="tester", workspace_name="default")
    workspace_id = (await rpc("ResolveWorkspaceName", request)).workspace_id
    workspace = await rpc("GetWorkspace", pb.GetWorkspaceRequest(workspace_id=workspace_id))
    workspace = workspace.workspace
    assert (workspace.id, workspace.name) == (workspace_id, "tester/default")
    assert workspace.owner_org.name == "tester" and workspace.author_user.name == "tester"
    assert workspace.size.images == 1
    token = await outsider(rpc)
    hidden = await rpc.fails(
        "GetWorkspace", pb.GetWorkspaceRequest(workspace_id=workspace_id), token
    )
    assert hidden[0] == Code.NOT_FOUND


async def test_create_workspace_then_a_second_time_is_already_exists(rpc: Rpc) -> None:
    request = pb.CreateWorkspaceRequest(name="fresh", organization_id="tester", description="d")
    workspace = (await rpc("CreateWorkspace", request)).workspace
    assert (workspace.name, workspace.description) == ("tester/fresh", "d")
    code, message = await rpc.fails("CreateWorkspace", request)
    assert code == Code.ALREADY_EXISTS and "already exists" in message
    token = await outsider(rpc)
    assert (await rpc.fails("CreateWorkspace", request, token))[0] == Code.PERMISSION_DENIED


async def test_list_workspaces_by_org_sorted_and_paged(rpc: Rpc) -> None:
    for name in ("zeta", "alpha"):
        await rpc("CreateWorkspace", pb.CreateWorkspaceRequest(name=name, organization_id="tester"))

    def request(**clause: Any) -> pb.ListWorkspacesRequest:
        return pb.ListWorkspacesRequest(
            options=pb.ListWorkspacesRequest.Opts(
                organization_id="tester",
                page_size=2,
                sort_clause=pb.ListWorkspacesRequest.Opts.SortClause(**clause),
            )
        )

    by_name = await all_pages(rpc, request(name={}), "workspaces")
    assert [w.name for w in by_name] == ["tester/alpha", "tester/default", "tester/zeta"]
    newest = await all_pages(rpc, request(created={}), "workspaces")
    assert [w.name for w in newest] == ["tester/alpha", "tester/zeta", "tester/default"]
    unsupported = request(recent_workload_activity={})
    assert (await rpc.fails("ListWorkspaces", unsupported))[0] == Code.INVALID_ARGUMENT


async def test_update_workspace_renames_describes_and_archives(rpc: Rpc) -> None:
    created = await rpc(
        "CreateWorkspace", pb.CreateWorkspaceRequest(name="old", organization_id="tester")
    )
    request = pb.UpdateWorkspaceRequest(
        workspace_id=created.workspace.id, name="new", description="words", archived=True
    )
    workspace = (await rpc("UpdateWorkspace", request)).workspace
    assert (workspace.name, workspace.description, workspace.archived) == (
        "tester/new", "words", True,
    )  # fmt: skip
    budget = pb.UpdateWorkspaceRequest(workspace_id=created.workspace.id, budget_id="b")
    assert (await rpc.fails("UpdateWorkspace", budget))[0] == Code.INVALID_ARGUMENT


async def test_transfer_into_workspace_moves_images(rpc: Rpc) -> None:
    made = await rpc.api.create_image("mover")
    target = await rpc(
        "CreateWorkspace", pb.CreateWorkspaceRequest(name="target", organization_id="tester")
    )
    request = pb.TransferIntoWorkspaceRequest(
        workspace_id=target.workspace.id, entity_ids=[made["id"]]
    )
    assert (await rpc("TransferIntoWorkspace", request)).workspace.size.images == 1
    image = (await rpc("GetImage", pb.GetImageRequest(image_id=made["id"]))).image
    assert image.workspace_id == target.workspace.id


# -- what beakerd does not serve ------------------------------------------------------------


async def test_every_other_rpc_is_unimplemented_naming_what_beakerd_serves(rpc: Rpc) -> None:
    code, message = await rpc.fails("GetDataset", pb.GetDatasetRequest(dataset_id="x"))
    assert code == Code.UNIMPLEMENTED
    assert "GetDataset" in message and "GetImage" in message and "ListWorkspaces" in message
    with pytest.raises(aio.AioRpcError) as caught:
        async for _ in rpc.stub.StreamJobLogs(pb.StreamJobLogsRequest(job_id="j")):
            pass
    assert caught.value.code() == Code.UNIMPLEMENTED


def test_the_served_rpcs_are_all_in_beaker_py_s_service() -> None:
    service = pb.DESCRIPTOR.services_by_name["Beaker"]
    assert SERVED <= set(service.methods_by_name)
    assert len(SERVED) == 16


async def test_a_page_token_alone_carries_the_query_as_beaker_py_sends_it(rpc: Rpc) -> None:
    for name in ("p1", "p2", "p3", "other"):
        await rpc.api.create_image(name)
    opts = list_images(sort="name", image_name_or_description="p").options
    request = pb.ListImagesRequest(next_page_token=page_token(opts, 2))
    assert not request.HasField("options")  # a oneof: setting the token cleared them
    page = await rpc("ListImages", request)
    assert [i.name for i in page.images] == ["p3"] and page.next_page_token == ""


# -- the server beside HTTP -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _start(tmp_path: Path, **settings: Any) -> TestClient[Any, Any]:
    app = make_app(tmp_path, host="127.0.0.1", **settings)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    try:
        await client.start_server()
    except BaseException:
        await client.close()  # the contexts that started (the database) close again
        raise
    return client


@pytest.fixture
def serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a process that `beakerd serve` runs (workers.run_server)."""
    monkeypatch.setattr(workers, "_serving", True)


@pytest.mark.usefixtures("serving")
async def test_grpc_is_served_over_tls_with_the_auto_ca_made_on_first_start(
    tmp_path: Path, home: Path
) -> None:
    port = _free_port()
    client = await _start(tmp_path, grpc_port=port)
    try:
        ca = (tmp_path / "data" / "tls" / "ca.crt").read_bytes()
        config = yaml.safe_load((home / ".beaker" / "config.yml").read_text())
        assert config["rpc_address"] == f"127.0.0.1:{port}"
        credentials = grpc.ssl_channel_credentials(root_certificates=ca)
        async with aio.secure_channel(config["rpc_address"], credentials) as channel:
            stub = beaker_pb2_grpc.BeakerStub(channel)
            metadata = [("authorization", f"bearer {config_token(home)}")]
            me = await stub.GetUser(pb.GetUserRequest(), metadata=metadata)
        assert me.user.name == "tester"
    finally:
        await client.close()


@pytest.mark.usefixtures("serving")
async def test_a_taken_derived_port_turns_grpc_off_but_a_chosen_one_stops_the_server(
    tmp_path: Path, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        with caplog.at_level(logging.WARNING, "beakerd.grpc"):
            client = await _start(tmp_path / "derived", port=port - 1)
            await client.close()
        assert "gRPC off: cannot listen" in caplog.text
        with pytest.raises(ListenError, match="cannot serve gRPC"):
            await _start(tmp_path / "chosen", grpc_port=port)


async def test_no_grpc_server_where_the_app_is_not_served(tmp_path: Path, home: Path) -> None:
    port = _free_port()
    client = await _start(tmp_path, grpc_port=port)
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # free: nothing listens there
        assert not (tmp_path / "data" / "tls").exists()
    finally:
        await client.close()


@pytest.mark.usefixtures("serving")
async def test_with_workers_a_grpc_port_of_0_turns_grpc_off(
    tmp_path: Path, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "beakerd.grpc"):
        client = await _start(tmp_path, workers=2, grpc_port=0)
        await client.close()
    assert "grpc_port must be a port number" in caplog.text
