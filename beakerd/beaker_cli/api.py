"""A small synchronous client of Beaker's REST API v3 (stdlib urllib: one request at a time)."""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from beakerd.beaker_cli.errors import CliError
from beakerd.beaker_cli.models import (
    Account,
    Image,
    ImageRepository,
    Page,
    Storage,
    Token,
    Workspace,
    WorkspacePermissions,
)
from beakerd.beaker_cli.tls_trust import is_untrusted, untrusted

USER_AGENT = "beakerd-beaker-cli/0.1"
FIRST_CURSOR = "AAAAAAAAAAA="

M = TypeVar("M", bound=BaseModel)


def encode_ref(ref: str) -> str:
    """One path segment: a full name's slash travels encoded (`alice%2Fhello`), as clients do."""
    return urllib.parse.quote(ref, safe="")


class ApiError(CliError):
    """An error answer from the server: its HTTP status and the `message` of its JSON body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class Forbidden(ApiError):
    pass


def _error_for(status: int, message: str) -> ApiError:
    if status == 404:
        return NotFound(status, message)
    if status == 409 or (status == 400 and "already in use" in message):
        return Conflict(status, message)
    if status == 401:
        return Unauthorized(
            status, f"{message} (check BEAKER_TOKEN or user_token in the Beaker config)"
        )
    if status == 403:
        return Forbidden(status, message)
    return ApiError(status, message)


def _message(status: int, reason: str, body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    text = body.decode("utf-8", errors="replace").strip()
    return text.splitlines()[0] if text else f"HTTP {status} {reason}".strip()


class BeakerApi:
    """The /api/v3 endpoints the CLI uses; every failure surfaces as a CliError subclass."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        timeout: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.ssl_context = ssl_context

    # -- transport --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(
                req, timeout=self.timeout, context=self.ssl_context
            ) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            with e:
                raise _error_for(e.code, _message(e.code, e.reason or "", e.read())) from None
        except urllib.error.URLError as e:
            if is_untrusted(e):
                raise untrusted(f"Beaker at {self.base_url}", e) from None
            reason = getattr(e.reason, "strerror", None) or e.reason
            raise CliError(f"cannot reach Beaker at {self.base_url}: {reason}") from None
        except TimeoutError:
            raise CliError(f"Beaker at {self.base_url} did not answer in time") from None
        except (ConnectionError, http.client.HTTPException) as e:
            raise CliError(f"connection to Beaker at {self.base_url} failed: {e}") from None
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            message = f"Beaker at {self.base_url} sent a non-JSON answer to {method} {path}"
            raise CliError(message) from None

    def _parse(self, model: type[M], data: Any, what: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise CliError(f"the server sent a malformed {what}: {where}: {first['msg']}") from None

    # -- accounts ---------------------------------------------------------------------------

    def whoami(self) -> Account:
        return self._parse(Account, self.request("GET", "/user"), "account")

    def storage(self) -> Storage | None:
        """The account's storage usage; None from a server that does not track it (Beaker)."""
        try:
            return self._parse(Storage, self.request("GET", "/user/storage"), "storage usage")
        except NotFound:
            return None

    def create_token(self, description: str | None) -> Token:
        body = {"description": description} if description else {}
        return self._parse(Token, self.request("POST", "/user/tokens", body=body), "token")

    def list_tokens(self) -> list[Token]:
        data = self.request("GET", "/user/tokens")
        items = data.get("data", []) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise CliError("the server sent a malformed token list")
        return [self._parse(Token, item, "token") for item in items]

    def revoke_token(self, token_id: str) -> None:
        self.request("DELETE", f"/user/tokens/{encode_ref(token_id)}")

    # -- workspaces -------------------------------------------------------------------------

    def workspace(self, ref: str) -> Workspace:
        try:
            data = self.request("GET", f"/workspaces/{encode_ref(ref)}")
        except NotFound as e:
            raise NotFound(404, f"workspace {ref!r} not found") from e
        return self._parse(Workspace, data, "workspace")

    def resolve_workspace(self, ref: str) -> Workspace:
        """By ID or full name; a bare name is tried as one of the caller's own org's."""
        try:
            return self.workspace(ref)
        except NotFound:
            if "/" not in ref:
                try:
                    return self.workspace(f"{self.whoami().name}/{ref}")
                except NotFound:
                    pass
            raise NotFound(404, f"workspace {ref!r} not found") from None

    def create_workspace(
        self, name: str, org: str | None, description: str | None, public: bool
    ) -> Workspace:
        body: dict[str, Any] = {"name": name, "public": public}
        if org:
            body["org"] = org
        if description:
            body["description"] = description
        try:
            data = self.request("POST", "/workspaces", body=body)
        except Conflict as e:
            full = name if "/" in name else f"{org or self.whoami().name}/{name}"
            raise Conflict(e.status, f"a workspace named {full!r} already exists") from e
        return self._parse(Workspace, data, "workspace")

    def list_workspaces(self, org: str | None) -> Iterator[Workspace]:
        cursor: str | None = FIRST_CURSOR
        while cursor:
            query = {"cursor": cursor, **({"org": org} if org else {})}
            try:
                data = self.request("GET", "/workspaces", query=query)
            except NotFound as e:
                raise NotFound(404, f"organization {org!r} not found") from e
            page = self._parse(Page, data, "workspace list")
            for item in page.data:
                yield self._parse(Workspace, item, "workspace")
            cursor = page.next_cursor

    def patch_workspace(self, workspace_id: str, patch: Mapping[str, Any]) -> Workspace:
        try:
            data = self.request(
                "PATCH", f"/workspaces/{encode_ref(workspace_id)}", body=dict(patch)
            )
        except Conflict as e:
            raise Conflict(
                e.status, f"a workspace named {patch.get('name')!r} already exists"
            ) from e
        return self._parse(Workspace, data, "workspace")

    def set_workspace_visibility(self, workspace_id: str, public: bool) -> WorkspacePermissions:
        data = self.request(
            "PATCH", f"/workspaces/{encode_ref(workspace_id)}/auth", body={"public": public}
        )
        return self._parse(WorkspacePermissions, data, "workspace permissions")

    def transfer_images(self, workspace_id: str, image_ids: list[str]) -> None:
        path = f"/workspaces/{encode_ref(workspace_id)}/transfer"
        self.request("POST", path, body={"ids": image_ids})

    def workspace_images(self, workspace_id: str) -> Iterator[Image]:
        cursor: str | None = FIRST_CURSOR
        while cursor:
            data = self.request(
                "GET",
                f"/workspaces/{encode_ref(workspace_id)}/images",
                query={"field": "created", "order": "descending", "cursor": cursor},
            )
            page = self._parse(Page, data, "image list")
            for item in page.data:
                yield self._parse(Image, item, "image")
            cursor = page.next_cursor

    # -- images -----------------------------------------------------------------------------

    def get_image(self, ref: str) -> Image:
        return self._parse(Image, self.request("GET", f"/images/{encode_ref(ref)}"), "image")

    def resolve_image(self, ref: str) -> Image:
        """By ID or full name; a bare name is tried as one of the caller's own images."""
        try:
            return self.get_image(ref)
        except NotFound:
            if "/" not in ref:
                me = self.whoami()
                try:
                    return self.get_image(f"{me.name}/{ref}")
                except NotFound:
                    pass
            raise NotFound(404, f"image {ref!r} not found") from None

    def create_image(
        self,
        *,
        name: str | None,
        workspace_id: str | None,
        image_id: str,
        image_tag: str,
        description: str | None,
        narrative: str | None,
    ) -> Image:
        body: dict[str, Any] = {"imageID": image_id, "imageTag": image_tag}
        if workspace_id:
            body["workspace"] = workspace_id
        if description is not None:
            body["description"] = description
        if narrative is not None:
            body["narrative"] = narrative
        query = {"name": name} if name else None
        try:
            data = self.request("POST", "/images", query=query, body=body)
        except Conflict as e:
            raise Conflict(e.status, f"an image named {name!r} already exists") from e
        return self._parse(Image, data, "image")

    def image_repository(self, image_id: str, upload: bool = False) -> ImageRepository:
        query = {"upload": "true"} if upload else None
        data = self.request("GET", f"/images/{encode_ref(image_id)}/repository", query=query)
        return self._parse(ImageRepository, data, "image repository")

    def patch_image(self, image_id: str, patch: Mapping[str, Any]) -> Image:
        try:
            data = self.request("PATCH", f"/images/{encode_ref(image_id)}", body=dict(patch))
        except Conflict as e:
            raise Conflict(e.status, f"an image named {patch.get('name')!r} already exists") from e
        return self._parse(Image, data, "image")

    def search_images(
        self,
        filters: list[dict[str, Any]],
        sorts: list[dict[str, str]],
        page_size: int = 100,
    ) -> Iterator[Image]:
        """POST /images/search, as the Go client sends it, page after page until a short one."""
        body = {"filterClauses": filters, "sortClauses": sorts}
        page = 0
        while True:
            query = {"page": str(page), "limit": str(page_size)}
            data = self.request("POST", "/images/search", query=query, body=body)
            if not isinstance(data, list):
                raise CliError("the server sent a malformed image search answer")
            for item in data:
                yield self._parse(Image, item, "image")
            if len(data) < page_size:
                return
            page += 1

    def delete_image(self, image_id: str) -> None:
        self.request("DELETE", f"/images/{encode_ref(image_id)}")
