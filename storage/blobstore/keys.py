"""Every key of an S3 store, in one place; the same layout as the data folder's.

<prefix>blobs/<algorithm>/<first two hex digits>/<hex>   a blob, stored once by digest
<prefix>blobs/by-upload/<id>                             a blob completed where its session's
                                                         multipart upload was made (its row
                                                         names the key)
<prefix>uploads/<id>/data                                a session's multipart upload
<prefix>uploads/<id>/tail-<offset>-<nonce>               its bytes not yet in a part,
                                                         ending at acknowledged <offset>
                                                         (its row names the key; sessions
                                                         begun before: tail-<offset>)
<prefix>lost+found/<name>                                 objects fsck moved aside
"""

from __future__ import annotations

from storage.digests import Digest, InvalidDigest


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.blobs = f"{prefix}blobs/"
        self.uploads = f"{prefix}uploads/"

    def blob(self, digest: Digest) -> str:
        return f"{self.blobs}{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"

    def digest_of(self, key: str) -> Digest | None:
        """The digest a blob key names; None for a key not laid out like one."""
        algorithm, _, rest = key.removeprefix(self.blobs).partition("/")
        prefix, _, hex_ = rest.partition("/")
        try:
            digest = Digest.parse(f"{algorithm}:{hex_}")
        except InvalidDigest:
            return None
        return digest if digest.hex[:2] == prefix and key == self.blob(digest) else None

    def by_upload(self, upload_id: str) -> str:
        """Where a session makes its multipart upload, and so where its blob stays."""
        return f"{self.blobs}by-upload/{upload_id}"

    def by_upload_id_of(self, key: str) -> str | None:
        """The session a `by_upload` key was made by; None for any other key."""
        upload_id = key.removeprefix(f"{self.blobs}by-upload/")
        return upload_id if upload_id != key and "/" not in upload_id else None

    def upload_folder(self, upload_id: str) -> str:
        return f"{self.uploads}{upload_id}/"

    def upload_data(self, upload_id: str) -> str:
        return f"{self.upload_folder(upload_id)}data"

    def upload_tail(self, upload_id: str, offset: int, nonce: str | None = None) -> str:
        """A tail's key; `nonce` makes it the writing request's own."""
        name = f"tail-{offset}" if nonce is None else f"tail-{offset}-{nonce}"
        return f"{self.upload_folder(upload_id)}{name}"

    def upload_id_of(self, key: str) -> str:
        """The session a key under uploads/ belongs to."""
        return key.removeprefix(self.uploads).split("/", 1)[0]

    def lost_and_found(self, name: str) -> str:
        return f"{self.prefix}lost+found/{name}"
