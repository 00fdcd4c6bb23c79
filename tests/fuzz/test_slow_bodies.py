"""A body that stalls is abandoned after the read timeout (1 s here): the client gets 408,
the upload session stays at its last acknowledged offset, and nothing partial is published."""

from __future__ import annotations

import hashlib
import json

from tests.fuzz.conftest import Harness

REPO = "tester/slow/bodies"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _error(resp_body: bytes) -> str:
    return str(json.loads(resp_body)["errors"][0]["code"])


def test_stalled_chunk_is_cut_off_and_the_session_resumes(harness: Harness) -> None:
    resp = harness.raw("POST", f"/v2/{REPO}/blobs/uploads/")
    location = resp.headers["location"]
    assert harness.raw("PATCH", location, body=b"first").status == 202
    # Ten bytes of a promised hundred, then silence (the connection stays open).
    resp = harness.raw("PATCH", location, body=b"0123456789", content_length="100")
    assert resp.status == 408
    assert _error(resp.body) == "BLOB_UPLOAD_INVALID"
    status = harness.raw("GET", location)
    assert status.status == 204 and status.headers["range"] == "0-4"
    assert harness.raw("PATCH", location, {"Content-Range": "5-9"}, b"-rest").status == 202
    resp = harness.raw("PUT", f"{location}?digest={sha256(b'first-rest')}")
    assert resp.status == 201
    blob = harness.raw("GET", f"/v2/{REPO}/blobs/{sha256(b'first-rest')}")
    assert blob.body == b"first-rest"


def test_stalled_last_chunk_of_a_finish_publishes_nothing(harness: Harness) -> None:
    location = harness.raw("POST", f"/v2/{REPO}/blobs/uploads/").headers["location"]
    whole = b"abc" * 10
    resp = harness.raw("PUT", f"{location}?digest={sha256(whole)}", body=whole[:5],
                       content_length=str(len(whole)))  # fmt: skip
    assert resp.status == 408
    assert harness.raw("HEAD", f"/v2/{REPO}/blobs/{sha256(whole)}").status == 404
    assert harness.raw("GET", location).headers["range"] == "0-0"


def test_stalled_monolithic_upload_publishes_nothing(harness: Harness) -> None:
    whole = b"monolithic" * 100
    resp = harness.raw("POST", f"/v2/{REPO}/blobs/uploads/?digest={sha256(whole)}",
                       body=whole[:100], content_length=str(len(whole)))  # fmt: skip
    assert resp.status == 408
    assert harness.raw("HEAD", f"/v2/{REPO}/blobs/{sha256(whole)}").status == 404


def test_stalled_manifest_is_refused_and_not_stored(harness: Harness) -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).encode()
    resp = harness.raw("PUT", f"/v2/{REPO}/manifests/stalled", {"Content-Type": OCI_MANIFEST},
                       body[:10], content_length=str(len(body)))  # fmt: skip
    assert resp.status == 408
    assert _error(resp.body) == "MANIFEST_INVALID"
    assert harness.raw("GET", f"/v2/{REPO}/manifests/stalled").status == 404
