"""OCI artifacts and the referrers API, driven through the oras Python SDK (oras-py).

oras-py 0.2 has no `artifactType` argument and no attach command, so artifacts are assembled here
from the SDK's pieces (blob upload, manifest upload) and one manifest is PUT by digest through the
SDK's authenticated request helper, as `oras attach` does.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oras.auth.utils
import oras.client
import oras.main.login
import oras.oci
import oras.utils
import pytest

from tests.e2e.docker_engine import DockerEngine
from tests.e2e.oci_layout import OCI_INDEX, OCI_MANIFEST, canonical_json, sha256_digest
from tests.e2e.tools import Registry

pytestmark = pytest.mark.e2e

EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
TITLE = "org.opencontainers.image.title"
SBOM_TYPE = "application/vnd.e2e.sbom.v1+json"
SIGNATURE_TYPE = "application/vnd.e2e.signature.v1"
REPOSITORY = "tester/e2e/oras-artifact"


@dataclass(frozen=True)
class Pushed:
    digest: str
    size: int
    manifest: dict[str, Any]

    def as_subject(self) -> dict[str, Any]:
        return {"mediaType": OCI_MANIFEST, "digest": self.digest, "size": self.size}


class Artifacts:
    """Pushes and reads artifacts in one repository through an oras-py client."""

    def __init__(self, registry: Registry, workdir: Path) -> None:
        self.registry = registry
        self.workdir = workdir
        self.client = oras.client.OrasClient(hostname=registry.address, insecure=True)
        if registry.password is not None:
            # Not client.login(): it goes through a Docker daemon and writes ~/.docker/config.json.
            self.client.auth.set_basic_auth(registry.username, registry.password)
            self._authorize_push()

    def _authorize_push(self) -> None:
        """Get one bearer token for pull+push on the repository, through the SDK's token auth.

        oras-py 0.2 keeps the first token it is given and, on a later 401 asking for a wider
        scope (`error="insufficient_scope"`), retries with that same token: it only asks again
        after a 403. Its first request is a blob HEAD, answered with a pull-only challenge, so
        every push would then fail. Asking for the push scope up front sidesteps that.
        """
        challenge = self.client.session.get(f"http://{self.registry.address}/v2/")
        assert challenge.status_code == 401, challenge.text
        header = oras.auth.utils.parse_auth_header(challenge.headers["WWW-Authenticate"])
        header.scope = f"repository:{REPOSITORY}:pull,push"
        token = self.client.auth.request_token(header)
        assert token, "the token endpoint refused the test credentials"
        self.client.auth.set_token_auth(token)

    def target(self, reference: str) -> str:
        return f"{self.registry.address}/{REPOSITORY}{reference}"

    def url(self, path: str) -> str:
        return f"http://{self.registry.address}/v2/{REPOSITORY}/{path}"

    def upload_blobs(self, files: dict[str, bytes], media_type: str) -> list[dict[str, Any]]:
        """Upload each file as a layer blob; return the layer descriptors (titled, as oras does)."""
        container = self.client.get_container(self.target(":unused"))
        layers = []
        for name, content in files.items():
            path = self.workdir / name
            path.write_bytes(content)
            layer: dict[str, Any] = oras.oci.NewLayer(str(path), media_type=media_type)
            layer["annotations"] = {TITLE: name}
            response = self.client.upload_blob(str(path), container, layer)
            assert response.status_code in (200, 201, 202), response.text
            layers.append(layer)
        return layers

    def empty_config(self) -> dict[str, Any]:
        path = self.workdir / "empty-config.json"
        path.write_bytes(b"{}")
        config = {"mediaType": EMPTY_CONFIG, "digest": sha256_digest(b"{}"), "size": 2}
        container = self.client.get_container(self.target(":unused"))
        response = self.client.upload_blob(str(path), container, config)
        assert response.status_code in (200, 201, 202), response.text
        return config

    def fetch_manifest(self, reference: str) -> bytes:
        response = self.client.do_request(
            self.url(f"manifests/{reference}"), "GET", headers={"Accept": OCI_MANIFEST}
        )
        assert response.status_code == 200, response.text
        return bytes(response.content)

    def push_tagged(self, tag: str, manifest: dict[str, Any]) -> Pushed:
        """PUT a manifest under a tag with the SDK's manifest upload; read back what was stored."""
        container = self.client.get_container(self.target(f":{tag}"))
        response = self.client.upload_manifest(manifest, container)
        assert response.status_code == 201, response.text
        stored = self.fetch_manifest(tag)
        assert json.loads(stored) == manifest
        return Pushed(sha256_digest(stored), len(stored), manifest)

    def push_by_digest(self, manifest: dict[str, Any]) -> tuple[Pushed, dict[str, str]]:
        """PUT a manifest by its digest, untagged, the way `oras attach` pushes a referrer."""
        body = canonical_json(manifest)
        digest = sha256_digest(body)
        response = self.client.do_request(
            self.url(f"manifests/{digest}"),
            "PUT",
            data=body,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert response.status_code == 201, response.text
        return Pushed(digest, len(body), manifest), dict(response.headers)

    def referrers(
        self, digest: str, artifact_type: str | None = None
    ) -> tuple[dict[str, Any], Any]:
        query = f"?artifactType={artifact_type}" if artifact_type else ""
        response = self.client.do_request(self.url(f"referrers/{digest}{query}"), "GET")
        assert response.status_code == 200, f"{response.status_code} {response.text}"
        assert response.headers["Content-Type"].split(";")[0] == OCI_INDEX
        index: dict[str, Any] = response.json()
        return index, response.headers

    def pull(self, reference: str, outdir: Path) -> dict[str, bytes]:
        paths = self.client.pull(target=self.target(reference), outdir=str(outdir))
        return {Path(p).name: Path(p).read_bytes() for p in paths}


def artifact_manifest(
    # An artifact without files lists the empty descriptor as its one layer, as OCI 1.1 advises.
    artifact_type: str,
    config: dict[str, Any],
    layers: list[dict[str, Any]],
    subject: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config,
        "layers": layers,
    }
    if subject is not None:
        manifest["subject"] = subject
    if annotations:
        manifest["annotations"] = annotations
    return manifest


@pytest.fixture
def artifacts(registry: Registry, tmp_path: Path) -> Artifacts:
    if os.environ.get("E2E_REGISTRY") == "reference":
        pytest.skip("the reference registry (distribution 2.8) predates the referrers API")
    return Artifacts(registry, tmp_path)


def test_artifact_and_its_referrer_round_trip_and_are_listed(
    artifacts: Artifacts, tmp_path: Path
) -> None:
    config = artifacts.empty_config()
    sbom_files = {"sbom.json": json.dumps({"packages": [os.urandom(8).hex()]}).encode()}
    sbom = artifacts.push_tagged(
        "sbom",
        artifact_manifest(
            SBOM_TYPE, config, artifacts.upload_blobs(sbom_files, "application/json")
        ),
    )

    signature_files = {"signature.sig": os.urandom(256)}
    signature, headers = artifacts.push_by_digest(
        artifact_manifest(
            SIGNATURE_TYPE,
            config,
            artifacts.upload_blobs(signature_files, "application/octet-stream"),
            subject=sbom.as_subject(),
            annotations={"e2e.signed-by": "tester"},
        )
    )
    assert artifacts.pull(":sbom", tmp_path / "sbom") == sbom_files
    assert artifacts.pull(f"@{signature.digest}", tmp_path / "signature") == signature_files

    # OCI 1.1: a registry that indexes `subject` says so, or clients fall back to tag schemes.
    assert headers.get("OCI-Subject") == sbom.digest

    index, _ = artifacts.referrers(sbom.digest)
    listed = {d["digest"]: d for d in index["manifests"]}
    assert signature.digest in listed, index
    entry = listed[signature.digest]
    assert entry["artifactType"] == SIGNATURE_TYPE
    assert entry["mediaType"] == OCI_MANIFEST
    assert entry["size"] == signature.size
    assert entry.get("annotations", {}).get("e2e.signed-by") == "tester"


def test_referrers_filter_by_artifact_type_when_the_registry_says_it_filtered(
    artifacts: Artifacts,
) -> None:
    config = artifacts.empty_config()
    subject = artifacts.push_tagged(
        "filtered-subject",
        artifact_manifest(
            SBOM_TYPE, config, artifacts.upload_blobs({"s.json": b"{}"}, "application/json")
        ),
    )
    signature, _ = artifacts.push_by_digest(
        artifact_manifest(SIGNATURE_TYPE, config, [config], subject=subject.as_subject())
    )
    other, _ = artifacts.push_by_digest(
        artifact_manifest(SBOM_TYPE, config, [config], subject=subject.as_subject())
    )

    everything, _ = artifacts.referrers(subject.digest)
    assert {d["digest"] for d in everything["manifests"]} == {signature.digest, other.digest}

    filtered, headers = artifacts.referrers(subject.digest, artifact_type=SIGNATURE_TYPE)
    if "artifactType" in headers.get("OCI-Filters-Applied", ""):
        assert [d["digest"] for d in filtered["manifests"]] == [signature.digest]
    else:
        # Filtering is optional in the spec; unfiltered answers must still list everything.
        assert {d["digest"] for d in filtered["manifests"]} == {signature.digest, other.digest}


def test_referrer_pushed_by_the_sdk_reports_its_config_media_type_as_artifact_type(
    artifacts: Artifacts, tmp_path: Path
) -> None:
    config = artifacts.empty_config()
    subject = artifacts.push_tagged(
        "sdk-subject",
        artifact_manifest(
            SBOM_TYPE, config, artifacts.upload_blobs({"x.json": b"[]"}, "application/json")
        ),
    )
    note = tmp_path / "note.txt"
    note.write_bytes(os.urandom(64))
    # oras-py's own push: no artifactType, so the spec says referrers report config.mediaType.
    artifacts.client.push(
        target=artifacts.target(":sdk-note"),
        files=[f"{note}:text/plain"],
        subject=oras.oci.Subject(OCI_MANIFEST, subject.digest, subject.size),
        manifest_config=f"{tmp_path / 'none.json'}:application/vnd.e2e.note.config.v1+json",
        disable_path_validation=True,
    )
    pushed = artifacts.fetch_manifest("sdk-note")

    index, _ = artifacts.referrers(subject.digest)
    listed = {d["digest"]: d for d in index["manifests"]}
    assert sha256_digest(pushed) in listed, index
    assert (
        listed[sha256_digest(pushed)]["artifactType"] == "application/vnd.e2e.note.config.v1+json"
    )


def test_referrers_of_a_digest_nobody_refers_to_is_an_empty_index(artifacts: Artifacts) -> None:
    config = artifacts.empty_config()
    lonely = artifacts.push_tagged("lonely", artifact_manifest(SBOM_TYPE, config, [config]))

    index, _ = artifacts.referrers(lonely.digest)

    assert index["schemaVersion"] == 2
    assert index["manifests"] == []


def test_oras_login_through_the_docker_engine_then_pull(
    artifacts: Artifacts,
    registry: Registry,
    dockerd: DockerEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if registry.password is None:
        pytest.skip("the registry under test has no login")
    files = {"notes.txt": os.urandom(64)}
    artifacts.push_tagged(
        "login",
        artifact_manifest(
            SBOM_TYPE, artifacts.empty_config(), artifacts.upload_blobs(files, "text/plain")
        ),
    )
    # oras-py builds its Docker client for the default socket; ours listens elsewhere.
    monkeypatch.setattr(oras.utils, "get_docker_client", lambda **_: dockerd.client)

    def no_fallback(*args: Any, **kwargs: Any) -> dict[str, str]:
        # oras-py falls back to writing the config unchecked when the engine refuses.
        raise AssertionError("the Docker engine refused the login")

    monkeypatch.setattr(oras.main.login.DockerClient, "login", no_fallback)
    client = oras.client.OrasClient(hostname=registry.address, insecure=True)
    config = str(tmp_path / "docker-config.json")
    where: dict[str, Any] = {
        "hostname": registry.address,
        "tls_verify": False,
        "config_path": config,
    }
    with pytest.raises(AssertionError, match="engine refused"):
        client.login(registry.username, "not-the-token", **where)
    answer = client.login(registry.username, registry.password, **where)
    assert answer.get("Status") == "Login Succeeded", answer
    pulled = client.pull(target=artifacts.target(":login"), outdir=str(tmp_path / "out"))
    assert {Path(p).name: Path(p).read_bytes() for p in pulled} == files
