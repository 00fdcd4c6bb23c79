"""Hostile input on /v2: every answer is the spec's JSON error with a 4xx, never a 500.

Paths are sent byte for byte (tests/fuzz/rawhttp.py), so `..`, `%2e%2e`, `%2f`, NUL and
absolute paths reach the server as a hostile client would send them. After the module, the
data folder holds nothing unexpected, nothing landed outside it, and every blob file hashes
to its name (no partial blob was ever published).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.errors import RegistryError
from registry.names import check_name
from tests.fuzz.conftest import MARKER, Harness, assert_protocol_error
from tests.fuzz.rawhttp import RawResponse

REPO = "tester/fuzz/target"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYER = b"the only layer" * 100

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

HOSTILE_SEGMENTS = [
    "..", ".", "%2e%2e", "%2E%2E", "..%2f..", "%2e%2e%2f%2e%2e", "%2f", "%2F", "%00", "a%00b",
    "/etc/passwd", "%2fetc%2fpasswd", "..%5c..", "\\..\\", f"..%2f..%2f{MARKER}",
    f"%2ftmp%2f{MARKER}", "~root", "%252e%252e", "%c0%ae%c0%ae", "a" * 300, "A", "-a", "a-",
    "a..b", "a__b", "%ff", "%", "%zz", "*", "?", "#",
]  # fmt: skip


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _manifest() -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(CONFIG), "size": len(CONFIG)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(LAYER), "size": len(LAYER)}],
    }).encode()  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def target(harness: Harness) -> None:
    """Something real to aim at: a repository with two blobs and a tagged manifest."""
    for data in (CONFIG, LAYER):
        resp = harness.raw("POST", f"/v2/{REPO}/blobs/uploads/?digest={sha256(data)}", body=data)
        assert resp.status == 201, resp
    resp = harness.raw(
        "PUT", f"/v2/{REPO}/manifests/v1", {"Content-Type": OCI_MANIFEST}, _manifest()
    )
    assert resp.status == 201, resp


@pytest.fixture(autouse=True)
def no_server_errors(harness: Harness) -> Any:
    before = len(harness.errors.records)
    yield
    assert harness.server_errors()[before:] == []


def _new_session(h: Harness) -> str:
    resp = h.raw("POST", f"/v2/{REPO}/blobs/uploads/")
    assert resp.status == 202, resp
    return resp.headers["location"]


def _offset(h: Harness, location: str) -> int:
    resp = h.raw("GET", location)
    assert resp.status == 204, resp
    return int(resp.headers["range"].split("-")[1]) + 1 if resp.headers["range"] != "0-0" else 0


def _send(
    h: Harness,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    **kwargs: Any,
) -> RawResponse:
    resp = h.raw(method, target, headers, body, **kwargs)
    assert_protocol_error(resp, target, method)
    return resp


# -- paths -------------------------------------------------------------------------------------

PATH_TEMPLATES = [
    ("GET", "/v2/{x}/tags/list"),
    ("GET", "/v2/{x}/manifests/latest"),
    ("GET", "/v2/" + REPO + "/manifests/{x}"),
    ("HEAD", "/v2/" + REPO + "/manifests/{x}"),
    ("PUT", "/v2/" + REPO + "/manifests/{x}"),
    ("DELETE", "/v2/" + REPO + "/manifests/{x}"),
    ("GET", "/v2/" + REPO + "/blobs/{x}"),
    ("HEAD", "/v2/" + REPO + "/blobs/{x}"),
    ("DELETE", "/v2/" + REPO + "/blobs/{x}"),
    ("GET", "/v2/{x}/blobs/" + sha256(LAYER)),
    ("POST", "/v2/{x}/blobs/uploads/"),
    ("GET", "/v2/" + REPO + "/blobs/uploads/{x}"),
    ("PATCH", "/v2/" + REPO + "/blobs/uploads/{x}"),
    ("PUT", "/v2/" + REPO + "/blobs/uploads/{x}?digest=" + sha256(b"")),
    ("DELETE", "/v2/" + REPO + "/blobs/uploads/{x}"),
    ("GET", "/v2/" + REPO + "/referrers/{x}"),
    ("GET", "/v2/{x}"),
    ("GET", "/{x}/v2/"),
]


@pytest.mark.parametrize("segment", HOSTILE_SEGMENTS)
@pytest.mark.parametrize(("method", "template"), PATH_TEMPLATES)
def test_traversal_in_any_path_part_gets_a_registry_error(
    harness: Harness, method: str, template: str, segment: str
) -> None:
    target = template.replace("{x}", segment)
    if template.startswith("/{x}"):
        # Outside /v2 the registry's format does not apply (`/?/v2/` is the index page).
        resp = harness.raw(method, target)
        assert not resp.dropped and resp.status < 500, (target, resp.status)
        return
    body = b"x" * 10 if method in {"PUT", "PATCH"} else b""
    resp = _send(harness, method, target, body=body)
    if resp.status < 400:
        # Only a name the grammar allows may succeed (`a__b` is one), or a path that
        # normalises to the real repository, and then only to read.
        assert _valid_name(segment) or method in {"GET", "HEAD"}, (target, resp.status)


def _valid_name(name: str) -> bool:
    try:
        check_name(name)
    except RegistryError:
        return False
    return True


segment_text = st.one_of(
    st.sampled_from(HOSTILE_SEGMENTS),
    st.text(min_size=1, max_size=40).map(lambda s: quote(s, safe="")),
    st.text(alphabet="abc./%2eEfF0-_:", min_size=1, max_size=20),
)


@FUZZ
@given(
    segments=st.lists(segment_text, min_size=1, max_size=5),
    where=st.sampled_from(PATH_TEMPLATES[:16]),
)
def test_fuzzed_paths_never_fail_inside_the_server(
    harness: Harness, segments: list[str], where: tuple[str, str]
) -> None:
    method, template = where
    _send(harness, method, template.replace("{x}", "/".join(segments)), body=b"{}")


# -- digests -----------------------------------------------------------------------------------

BAD_DIGESTS = [
    "", "sha256", "sha256:", "sha256:" + "0" * 63, "sha256:" + "0" * 65, "sha256:" + "A" * 64,
    "sha256:" + "g" * 64, "md5:d41d8cd98f00b204e9800998ecf8427e", "sha512:abc",
    "sha256:../../../../etc/passwd", f"sha256:..%2f..%2f{MARKER}", "sha256:%00" + "0" * 61,
    "SHA256:" + "0" * 64, "sha256::" + "0" * 64, ":" + "0" * 64, "sha256:" + "0" * 64 + "%0a",
    "blake3:" + "0" * 64, "sha256+b64:AAAA", "sha256:" + "0" * 10000,
]  # fmt: skip


@pytest.mark.parametrize("digest", BAD_DIGESTS, ids=[d[:40] for d in BAD_DIGESTS])
def test_invalid_digests_are_refused_everywhere(harness: Harness, digest: str) -> None:
    for method, target in [
        ("GET", f"/v2/{REPO}/blobs/{digest}"),
        ("HEAD", f"/v2/{REPO}/blobs/{digest}"),
        ("DELETE", f"/v2/{REPO}/blobs/{digest}"),
        ("GET", f"/v2/{REPO}/manifests/{digest}"),
        ("DELETE", f"/v2/{REPO}/manifests/{digest}"),
        ("GET", f"/v2/{REPO}/referrers/{digest}"),
        ("POST", f"/v2/{REPO}/blobs/uploads/?digest={digest}"),
        ("POST", f"/v2/{REPO}/blobs/uploads/?mount={digest}&from={REPO}"),
    ]:
        resp = _send(harness, method, target, body=b"data" if method == "POST" else b"")
        assert resp.status >= 400 or (resp.status == 202 and "mount=" in target), (target, resp)
    location = _new_session(harness)
    resp = _send(harness, "PUT", f"{location}?digest={digest}", body=b"data")
    assert resp.status >= 400
    # The session is still there, and nothing was published under any name.
    assert _offset(harness, location) >= 0


@FUZZ
@given(digest=st.one_of(
    st.text(max_size=80),
    st.builds(lambda a, h: f"{a}:{h}", st.text(max_size=10), st.text(max_size=130)),
))  # fmt: skip
def test_fuzzed_digests_get_registry_errors(harness: Harness, digest: str) -> None:
    quoted = quote(digest, safe=":")
    _send(harness, "GET", f"/v2/{REPO}/blobs/{quoted}")
    _send(harness, "PUT", f"/v2/{REPO}/manifests/{quoted}", body=_manifest(),
          headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
    _send(harness, "POST", f"/v2/{REPO}/blobs/uploads/?digest={quote(digest, safe='')}", body=b"x")


# -- lengths and ranges ------------------------------------------------------------------------

BAD_LENGTHS = ["-1", "abc", "1e3", "0x10", "99999999999999999999999999", "5, 5", "+5", "", "\u0665"]


@pytest.mark.parametrize("length", BAD_LENGTHS)
def test_bogus_content_length_is_refused(harness: Harness, length: str) -> None:
    location = _new_session(harness)
    resp = _send(harness, "PATCH", location, body=b"hello", content_length=length)
    assert resp.status >= 400
    assert _offset(harness, location) == 0


def test_content_length_far_beyond_the_body_ends_by_timeout(harness: Harness) -> None:
    """A client claims 10^15 bytes and sends five: the read timeout ends it, nothing is kept."""
    location = _new_session(harness)
    resp = _send(harness, "PATCH", location, body=b"hello", content_length=str(10**15))
    assert resp.status == 408 or resp.status == 400
    assert _offset(harness, location) == 0
    data = b"never whole"
    resp = _send(harness, "POST", f"/v2/{REPO}/blobs/uploads/?digest={sha256(data)}",
                 body=data[:4], content_length=str(len(data)))  # fmt: skip
    assert resp.status >= 400
    assert harness.raw("HEAD", f"/v2/{REPO}/blobs/{sha256(data)}").status == 404


BAD_RANGES = [
    "bytes 0-99999999999999999999999999", "bytes 5-1", "0-", "-5", "bytes=0-4", "garbage",
    "bytes 1-5", "bytes -1-3", "bytes 0-4, 5-9", "0-3", "bytes 0-\u0664", "0-²",
    "0-" + "4" * 5000, "0" * 5000 + "-4",
    "4294967296-4294967300",
]  # fmt: skip


@pytest.mark.parametrize("content_range", BAD_RANGES)
def test_bogus_content_range_is_refused_and_the_session_survives(
    harness: Harness, content_range: str
) -> None:
    location = _new_session(harness)
    resp = _send(harness, "PATCH", location, {"Content-Range": content_range}, b"hello")
    assert resp.status in {400, 416}, (content_range, resp)
    assert _offset(harness, location) == 0
    # The session goes on from where it was.
    resp = _send(harness, "PATCH", location, {"Content-Range": "0-4"}, b"hello")
    assert resp.status == 202


@FUZZ
@given(content_range=st.text(max_size=60), length=st.integers(0, 64))
def test_fuzzed_content_ranges_never_fail_inside_the_server(
    harness: Harness, content_range: str, length: int
) -> None:
    safe = content_range.encode("latin-1", "replace").decode("latin-1")
    safe = safe.replace("\r", "").replace("\n", "")
    location = _new_session(harness)
    _send(harness, "PATCH", location, {"Content-Range": safe}, b"x" * length)
    harness.raw("DELETE", location)


def test_truncated_chunk_leaves_the_session_at_its_last_offset(harness: Harness) -> None:
    location = _new_session(harness)
    assert _send(harness, "PATCH", location, body=b"first").status == 202
    # Claims 100 bytes, sends 10, then stops sending: a client that died mid-chunk.
    resp = harness.raw("PATCH", location, body=b"0123456789", content_length="100",
                       half_close=True)  # fmt: skip
    assert resp.dropped or 400 <= resp.status < 500, resp
    assert _offset(harness, location) == 5
    assert _send(harness, "PATCH", location, body=b"-rest").status == 202
    resp = _send(harness, "PUT", f"{location}?digest={sha256(b'first-rest')}")
    assert resp.status == 201


def test_truncated_monolithic_upload_publishes_nothing(harness: Harness) -> None:
    data = b"a whole blob that never arrives whole" * 10
    resp = harness.raw("POST", f"/v2/{REPO}/blobs/uploads/?digest={sha256(data)}",
                       body=data[:50], content_length=str(len(data)), half_close=True)  # fmt: skip
    assert resp.dropped or 400 <= resp.status < 500
    assert harness.raw("HEAD", f"/v2/{REPO}/blobs/{sha256(data)}").status == 404
    assert harness.raw("GET", f"/v2/{REPO}/blobs/{sha256(data)}").status == 404


# -- manifests ---------------------------------------------------------------------------------


def _put_manifest(h: Harness, body: bytes, content_type: str = OCI_MANIFEST) -> RawResponse:
    return _send(h, "PUT", f"/v2/{REPO}/manifests/fuzzed", {"Content-Type": content_type}, body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"null",
        b"[]",
        b"1",
        b'"x"',
        b"{",
        b"\xff\xfe{}",
        b'{"schemaVersion":2}\x00',
        '{"a":"\udcff"}'.encode("utf-8", "surrogatepass"),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"schemaVersion":"2","config":{},"layers":[]}',
        b'{"schemaVersion":2,"config":{"digest":1,"size":"x","mediaType":[]},"layers":{}}',
        b'{"schemaVersion":2,"config":{"digest":"sha256:x","size":-1,"mediaType":"a"},"layers":[]}',
        b'{"schemaVersion":2,"mediaType":7,"config":null,"layers":null}',
        b'{"schemaVersion":2,"manifests":"x"}',
        b'{"schemaVersion":2,"manifests":[{"digest":"../../x","size":1,"mediaType":"a"}]}',
        b'{"schemaVersion":2,"config":{"digest":"%s","size":1e400,"mediaType":"a"},"layers":[]}'
        % sha256(CONFIG).encode(),
        b'{"schemaVersion":2,"config":{"digest":"%s","size":true,"mediaType":"a"},"layers":[]}'
        % sha256(CONFIG).encode(),
        b'{"schemaVersion":2,"config":{"digest":"%s","size":%d,"mediaType":"a"},"layers":[],'
        b'"subject":{"digest":"../x","size":1,"mediaType":"a"}}'
        % (sha256(CONFIG).encode(), len(CONFIG)),
        b'{"schemaVersion":2,"config":{"digest":"%s","size":%d,"mediaType":"a"},"layers":[],'
        b'"annotations":{"a":1}}' % (sha256(CONFIG).encode(), len(CONFIG)),
    ],
)
def test_malformed_manifests_are_manifest_invalid(harness: Harness, body: bytes) -> None:
    resp = _put_manifest(harness, body)
    assert resp.status == 400, (body[:80], resp)
    assert resp.json()["errors"][0]["code"] in {"MANIFEST_INVALID", "MANIFEST_BLOB_UNKNOWN",
                                                "DIGEST_INVALID"}  # fmt: skip


def test_huge_manifest_is_refused_with_413(harness: Harness) -> None:
    body = b'{"schemaVersion":2,"pad":"' + b"x" * (5 << 20) + b'"}'
    resp = _put_manifest(harness, body)
    assert resp.status == 413
    resp = harness.raw("PUT", f"/v2/{REPO}/manifests/fuzzed", {"Content-Type": OCI_MANIFEST},
                       body[:1000], content_length=str(len(body)))  # fmt: skip
    assert resp.status == 413
    assert harness.raw("GET", f"/v2/{REPO}/manifests/fuzzed").status == 404


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=30,
)  # fmt: skip
manifest_keys = st.sampled_from(
    ["schemaVersion", "mediaType", "config", "layers", "manifests", "subject", "annotations",
     "artifactType", "digest", "size", "urls"]
)  # fmt: skip
manifest_like = st.dictionaries(manifest_keys, json_values, max_size=8)


@FUZZ
@given(
    document=st.one_of(manifest_like, json_values),
    content_type=st.sampled_from(
        [
            OCI_MANIFEST,
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "text/plain",
            "",
            "application/json; charset=utf-8",
        ]
    ),
)
def test_fuzzed_manifests_get_registry_errors(
    harness: Harness, document: Any, content_type: str
) -> None:  # fmt: skip
    resp = _put_manifest(harness, json.dumps(document).encode(), content_type)
    assert resp.status in {400, 413}, resp


@FUZZ
@given(body=st.binary(max_size=300))
def test_random_bytes_as_manifest_get_registry_errors(harness: Harness, body: bytes) -> None:
    assert _put_manifest(harness, body).status in {400, 413}


# -- pages -------------------------------------------------------------------------------------


@FUZZ
@given(
    n=st.one_of(st.integers(-(10**30), 10**30).map(str), st.text(max_size=20)),
    last=st.text(max_size=30),
)
def test_page_parameters_out_of_range_get_registry_errors(
    harness: Harness, n: str, last: str
) -> None:  # fmt: skip
    query = f"n={quote(n, safe='')}&last={quote(last, safe='')}"
    for path in (f"/v2/{REPO}/tags/list", "/v2/_catalog"):
        resp = _send(harness, "GET", f"{path}?{query}")
        if n.isascii() and n.isdigit() and int(n) <= 10000:
            assert resp.status == 200, (query, resp)
        elif not (n == ""):
            assert resp.status == 400, (query, resp)
