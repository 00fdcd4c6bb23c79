"""The Content Discovery workflow: listing tags (with `n`, `last` and `Link` pagination) and
listing referrers (the index shape, `artifactType` rules, annotations, and the filter)."""

from __future__ import annotations

import json
import os
from typing import Any

from conformance.client import Response
from conformance.content import (
    EMPTY_CONFIG,
    OCI_INDEX,
    Blob,
    Manifest,
    absent_digest,
    image_index,
    image_manifest,
    oci_image,
)
from conformance.context import Context
from conformance.links import next_link
from conformance.report import Level

MUST, SHOULD = Level.MUST, Level.SHOULD

# Lower-case letters and digits only, so byte order and case-insensitive order agree; pushed
# out of order on purpose.
TAGS = ["v2", "alpha", "v10", "beta", "latest", "0rc", "1x"]
TYPE_A = "application/vnd.conformance.sbom.v1"
TYPE_B = "application/vnd.conformance.signature.v1"
ANNOTATION = "org.conformance.referrer"


def lexical(tags: list[str]) -> list[str]:
    return sorted(tags, key=lambda t: (t.lower(), t))


async def run(ctx: Context) -> None:
    name = ctx.repo("discovery")
    image = oci_image()
    await ctx.push_image(name, image, *TAGS)
    await _tags(ctx, name)
    await _referrers(ctx, name, image.manifest)


def _tags_of(resp: Response) -> list[str] | None:
    doc = resp.json_or_none()
    if not isinstance(doc, dict):
        return None
    tags = doc.get("tags")
    if tags is None:  # some registries answer `"tags": null` for an empty list
        return []
    return [str(t) for t in tags] if isinstance(tags, list) else None


async def _tags(ctx: Context, name: str) -> None:
    c, r = ctx.client, ctx.report
    expected = lexical(TAGS)
    path = f"/v2/{name}/tags/list"

    resp = await c.request("GET", path)
    if r.status("GET /tags/list answers 200", resp, 200):
        doc = resp.json_or_none()
        r.check(
            "Tag list body is {name, tags} with the repository's name",
            isinstance(doc, dict) and doc.get("name") == name and isinstance(doc.get("tags"), list),
            f"body {resp.body[:200]!r}",
        )
        tags = _tags_of(resp)
        r.check(
            "Tag list holds exactly the pushed tags",
            tags is not None and sorted(tags) == sorted(TAGS),
            f"got {tags}, expected {expected}",
        )
        r.check(
            "Tag list is in lexical order",
            tags == lexical(tags or []),
            f"got {tags}",
        )

    resp = await c.request("GET", path, params={"n": "3"})
    if r.status("GET /tags/list?n=3 answers 200", resp, 200):
        tags = _tags_of(resp) or []
        link = resp.header("Link")
        # Fewer than n is allowed only when a Link header offers the rest.
        ok = tags == expected[:3] or (link is not None and tags == expected[: len(tags)])
        r.check("?n=3 returns the first 3 tags in order", ok, f"got {tags}, Link: {link}")
        if link is not None:
            r.check(
                'The tag list\'s Link header is RFC 5988 with rel="next"',
                next_link(link) is not None,
                f"Link: {link}",
            )

    # Walk every page, following Link when offered and `last` otherwise.
    pages: list[str] = []
    url: str | None = c.url_for(path + "?n=2")
    walked = True
    for _ in range(len(TAGS) + 2):
        if url is None:
            break
        resp = await c.request("GET", url)
        page = _tags_of(resp)
        if resp.status != 200 or page is None:
            walked = False
            break
        pages.extend(page)
        link = next_link(resp.header("Link"))
        if link is not None:
            url = c.resolve(link, resp.url)
        elif len(page) == 2:
            url = c.url_for(f"{path}?n=2&last={page[-1]}")
        else:
            url = None
    r.check(
        "Paging with n=2 (Link or last) yields every tag once, in order",
        walked and pages == expected,
        f"got {pages}, expected {expected}",
    )

    resp = await c.request("GET", path, params={"n": "3", "last": expected[2]})
    r.check(
        f"?n=3&last={expected[2]} returns the 3 tags after it",
        resp.status == 200 and _tags_of(resp) == expected[3:6],
        f"{resp.describe()}, got {_tags_of(resp)}, expected {expected[3:6]}",
    )
    resp = await c.request("GET", path, params={"last": expected[3]})
    r.check(
        f"?last={expected[3]} without n returns the tags after it",
        resp.status == 200 and (_tags_of(resp) == expected[4:] or resp.header("Link") is not None),
        f"{resp.describe()}, got {_tags_of(resp)}, expected {expected[4:]}",
    )
    resp = await c.request("GET", path, params={"n": "0"})
    r.check(
        "?n=0 returns an empty list",
        resp.status == 200 and _tags_of(resp) == [],
        f"{resp.describe()}, got {_tags_of(resp)}",
    )
    r.check(
        "?n=0 has no Link header",
        resp.header("Link") is None,
        f"Link: {resp.header('Link')}",
    )
    resp = await c.request("GET", path, params={"n": "1000"})
    r.check(
        "?n larger than the tag count returns all tags",
        resp.status == 200 and _tags_of(resp) == expected,
        f"{resp.describe()}, got {_tags_of(resp)}",
    )

    resp = await c.request("GET", f"/v2/{ctx.repo('discovery', 'never-pushed')}/tags/list")
    r.status("GET /tags/list of a nonexistent repository answers 404", resp, 404)
    r.error_code("A nonexistent repository names NAME_UNKNOWN", resp, ["NAME_UNKNOWN"], SHOULD)


async def _all_referrers(ctx: Context, first: Response) -> tuple[list[dict[str, Any]] | None, str]:
    """Every descriptor across the pages of a referrers answer (following rel="next")."""
    resp = first
    found: list[dict[str, Any]] = []
    for _ in range(50):
        doc = resp.json_or_none()
        if resp.status != 200 or not isinstance(doc, dict):
            return None, resp.describe()
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            return None, f"{resp.describe()}, no manifests list"
        found.extend(m for m in manifests if isinstance(m, dict))
        link = next_link(resp.header("Link"))
        if link is None:
            return found, resp.describe()
        resp = await ctx.client.request("GET", ctx.client.resolve(link, resp.url))
    return None, "more than 50 pages"


def _digests(descs: list[dict[str, Any]] | None) -> list[str]:
    return sorted(str(d.get("digest")) for d in descs or [])


async def _referrers(ctx: Context, name: str, subject: Manifest) -> None:
    c, r = ctx.client, ctx.report
    payload = Blob(os.urandom(256), "application/vnd.conformance.payload")
    typed_config = Blob(b'{"kind": "signature"}', TYPE_B)
    for blob in (EMPTY_CONFIG, payload, typed_config):
        await c.push_blob(name, blob.data, blob.digest)

    # One referrer of each shape the artifactType rules distinguish.
    with_type = image_manifest(
        EMPTY_CONFIG, [payload], artifact_type=TYPE_A, subject=subject,
        annotations={ANNOTATION: "artifactType set"},
    )  # fmt: skip
    config_typed = image_manifest(
        typed_config, [payload], subject=subject, annotations={ANNOTATION: "config mediaType"}
    )
    untyped_index = image_index([], subject=subject, annotations={ANNOTATION: "untyped index"})
    typed_index = image_index(
        [], artifact_type=TYPE_A, subject=subject, annotations={ANNOTATION: "typed index"}
    )
    referrers = [with_type, config_typed, untyped_index, typed_index]
    expected_type: dict[str, str | None] = {
        with_type.digest: TYPE_A,
        config_typed.digest: TYPE_B,
        untyped_index.digest: None,
        typed_index.digest: TYPE_A,
    }
    expected_annotations = {m.digest: json.loads(m.body)["annotations"] for m in referrers}
    for m in referrers:
        await ctx.push_manifest(name, m)
    ghost = image_manifest(EMPTY_CONFIG, [payload], annotations={ANNOTATION: "never pushed"})
    orphan = image_manifest(EMPTY_CONFIG, [payload], artifact_type=TYPE_A, subject=ghost)
    await ctx.push_manifest(name, orphan)

    path = f"/v2/{name}/referrers/{subject.digest}"
    resp = await c.request("GET", path)
    supported = resp.status != 404
    r.status("GET /referrers/<digest> answers 200 (the referrers API exists)", resp, 200)

    if not supported:
        for check, level in (
            ("Referrers answer has Content-Type " + OCI_INDEX, MUST),
            ("Referrers answer is an image index", MUST),
            ("Referrers lists exactly the manifests whose subject is the digest", MUST),
            ("Referrer descriptors have the right mediaType and size", MUST),
            (
                "Referrer artifactType follows the manifest, else config mediaType, else omitted",
                MUST,
            ),
            ("Referrer descriptors carry the manifests' annotations", MUST),
            ("Referrers with ?artifactType= applies the filter (OCI-Filters-Applied)", SHOULD),
            ("Referrers of a digest with none is an empty index with 200", MUST),
            ("Referrers of a subject that was never pushed lists its referrer", MUST),
            ("Referrers of an invalid digest answers 400", MUST),
        ):
            r.check(check, False, "not run: the registry has no referrers API (404)", level)
        return

    r.header_equals(
        "Referrers answer has Content-Type " + OCI_INDEX, resp, "Content-Type", OCI_INDEX
    )
    doc = resp.json_or_none()
    r.check(
        "Referrers answer is an image index",
        isinstance(doc, dict)
        and doc.get("schemaVersion") == 2
        and doc.get("mediaType") == OCI_INDEX
        and isinstance(doc.get("manifests"), list),
        f"body {resp.body[:200]!r}",
    )
    descs, how = await _all_referrers(ctx, resp)
    want = sorted(m.digest for m in referrers)
    r.check(
        "Referrers lists exactly the manifests whose subject is the digest",
        _digests(descs) == want,
        f"{how}: got {_digests(descs)}, expected {want}",
    )
    by_digest = {str(d.get("digest")): d for d in descs or []}
    wrong = [
        m.digest
        for m in referrers
        if m.digest in by_digest
        and (
            by_digest[m.digest].get("mediaType") != m.media_type
            or by_digest[m.digest].get("size") != m.size
        )
    ]
    r.check(
        "Referrer descriptors have the right mediaType and size",
        bool(by_digest) and not wrong,
        f"wrong for {wrong}" if wrong else f"{len(by_digest)} descriptors",
    )
    bad_types = {
        d: (by_digest[d].get("artifactType"), t)
        for d, t in expected_type.items()
        if d in by_digest and by_digest[d].get("artifactType") != t
    }
    r.check(
        "Referrer artifactType follows the manifest, else config mediaType, else omitted",
        bool(by_digest) and not bad_types,
        f"(got, expected) {bad_types}" if bad_types else "all as expected",
    )
    bad_ann = [
        d
        for d, want_ann in expected_annotations.items()
        if d in by_digest and by_digest[d].get("annotations") != want_ann
    ]
    r.check(
        "Referrer descriptors carry the manifests' annotations",
        bool(by_digest) and not bad_ann,
        f"wrong on {bad_ann}" if bad_ann else "all as pushed",
    )

    resp = await c.request("GET", path, params={"artifactType": TYPE_A})
    applied = resp.header("OCI-Filters-Applied")
    descs, how = await _all_referrers(ctx, resp)
    if applied is not None:
        want_a = sorted(d for d, t in expected_type.items() if t == TYPE_A)
        r.check(
            "Referrers with ?artifactType= applies the filter (OCI-Filters-Applied)",
            applied.replace(" ", "").split(",").count("artifactType") == 1
            and _digests(descs) == want_a,
            f"OCI-Filters-Applied: {applied}; {how}: got {_digests(descs)}, expected {want_a}",
            SHOULD,
        )
    else:
        r.check(
            "Referrers with ?artifactType= applies the filter (OCI-Filters-Applied)",
            False,
            f"{how}: no OCI-Filters-Applied header, so the filter was not applied",
            SHOULD,
        )
        r.check(
            "An unfiltered answer to ?artifactType= still lists every referrer",
            _digests(descs) == want,
            f"got {_digests(descs)}",
        )

    resp = await c.request("GET", f"/v2/{name}/referrers/{absent_digest()}")
    doc = resp.json_or_none()
    r.check(
        "Referrers of a digest with none is an empty index with 200",
        resp.status == 200
        and resp.header("Content-Type") == OCI_INDEX
        and isinstance(doc, dict)
        and doc.get("manifests") == [],
        f"{resp.describe()}, body {resp.body[:200]!r}",
    )
    resp = await c.request("GET", f"/v2/{name}/referrers/{ghost.digest}")
    descs, how = await _all_referrers(ctx, resp)
    r.check(
        "Referrers of a subject that was never pushed lists its referrer",
        _digests(descs) == [orphan.digest],
        f"{how}: got {_digests(descs)}, expected {[orphan.digest]}",
    )
    resp = await c.request("GET", f"/v2/{name}/referrers/sha256:not-a-digest")
    r.status("Referrers of an invalid digest answers 400", resp, 400)
