"""The few S3 calls the store makes, typed, over one aiobotocore client.

This is the only module that speaks aiobotocore. Credentials and region come the standard way
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, profiles, instance roles);
`endpoint` points at an S3-compatible server (SeaweedFS, MinIO, Ceph), addressed path-style.
A plain-http endpoint is not verified at all, so a CA bundle named by AWS_CA_BUNDLE is neither
loaded nor needed for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

# CopyObject's limit; larger objects are copied part by part (UploadPartCopy).
MAX_COPY = 5 << 30
_COPY_PART = 1 << 30
_READ_CHUNK = 1 << 20
_DELETE_BATCH = 1000
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class ObjectMissing(Exception):
    """No object under the key (or no multipart upload under the id)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    modified: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class MultipartInfo:
    key: str
    upload_id: str
    initiated: float


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _missing(error: ClientError) -> bool:
    return _code(error) in _NOT_FOUND or _code(error) == "NoSuchUpload"


class S3Bucket:
    def __init__(self, client: Any, bucket: str, plain_http: bool = False) -> None:
        self._client = client
        self.bucket = bucket
        # Whether presigned URLs are plain http, so that their bytes may be relayed unread.
        self.plain_http = plain_http

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, bucket: str, endpoint: str | None) -> AsyncIterator[S3Bucket]:
        session = get_session()
        config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path"} if endpoint else {},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=64,
            # The registry checks sha256 itself; CRC32 on every part would be CPU for nothing.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        plain_http = endpoint is not None and endpoint.startswith("http://")
        region = session.get_config_variable("region") or "us-east-1"
        async with session.create_client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            verify=False if plain_http else None,
            config=config,
        ) as client:
            yield cls(client, bucket, plain_http)

    async def ping(self) -> None:
        try:
            await self._client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            raise OSError(f"bucket {self.bucket}: {_code(e)}") from None

    async def head(self, key: str) -> ObjectInfo | None:
        try:
            answer = await self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _missing(e):
                return None
            raise
        return ObjectInfo(key, int(answer["ContentLength"]), _epoch(answer["LastModified"]))

    async def read(self, key: str, start: int, length: int) -> AsyncIterator[bytes]:
        """`length` bytes from `start`; ObjectMissing before the first chunk if absent."""
        if length <= 0:
            if await self.head(key) is None:
                raise ObjectMissing(key)
            return
        try:
            answer = await self._client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}"
            )
        except ClientError as e:
            if _missing(e):
                raise ObjectMissing(key) from None
            raise
        async with answer["Body"] as body:
            while data := await body.read(_READ_CHUNK):
                yield data

    async def get_bytes(self, key: str) -> bytes:
        """A small object whole (a session's tail: under 5 MiB)."""
        try:
            answer = await self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _missing(e):
                raise ObjectMissing(key) from None
            raise
        async with answer["Body"] as body:
            return bytes(await body.read())

    async def put(self, key: str, data: bytes) -> None:
        await self._client.put_object(Bucket=self.bucket, Key=key, Body=data)

    async def copy(self, source: str, target: str, size: int) -> None:
        """Copy server-side: nothing passes through this process."""
        if size <= MAX_COPY:
            try:
                await self._client.copy_object(
                    Bucket=self.bucket, Key=target, CopySource=self._source(source)
                )
            except ClientError as e:
                if _missing(e):
                    raise ObjectMissing(source) from None
                raise
            return
        upload_id = await self.create_multipart(target)
        try:
            parts = []
            for number, start in enumerate(range(0, size, _COPY_PART), 1):
                end = min(start + _COPY_PART, size) - 1
                etag = await self.upload_part_copy(
                    target, upload_id, number, source, f"bytes={start}-{end}"
                )
                parts.append((number, etag))
            await self.complete(target, upload_id, parts)
        except BaseException:
            with contextlib.suppress(ClientError):
                await self.abort(target, upload_id)
            raise

    async def delete(self, keys: list[str]) -> set[str]:
        """Delete `keys`; returns those now absent (deleted, or not there to begin with)."""
        gone: set[str] = set()
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            answer = await self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": False},
            )
            gone.update(str(item["Key"]) for item in answer.get("Deleted", []))
            gone.update(
                str(item["Key"]) for item in answer.get("Errors", []) if item["Code"] in _NOT_FOUND
            )
        return gone

    async def create_multipart(self, key: str) -> str:
        answer = await self._client.create_multipart_upload(Bucket=self.bucket, Key=key)
        return str(answer["UploadId"])

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        try:
            answer = await self._client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            )
        except ClientError as e:
            if _missing(e):
                raise ObjectMissing(key) from None
            raise
        return str(answer["ETag"])

    async def upload_part_copy(
        self, key: str, upload_id: str, number: int, source: str, source_range: str | None = None
    ) -> str:
        extra = {"CopySourceRange": source_range} if source_range else {}
        try:
            answer = await self._client.upload_part_copy(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=self._source(source),
                **extra,
            )
        except ClientError as e:
            if _missing(e):
                raise ObjectMissing(key) from None
            raise
        return str(answer["CopyPartResult"]["ETag"])

    async def complete(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        try:
            await self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]},
            )
        except ClientError as e:
            if _missing(e):
                raise ObjectMissing(key) from None
            raise

    async def abort(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload; one already gone is not an error."""
        try:
            await self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id
            )
        except ClientError as e:
            if not _missing(e):
                raise

    async def list_objects(self, prefix: str, after: str = "") -> AsyncIterator[ObjectInfo]:
        """Objects under `prefix` in key order, from just after `after`."""
        paginator = self._client.get_paginator("list_objects_v2")
        extra = {"StartAfter": after} if after else {}
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, **extra):
            for item in page.get("Contents", []):
                yield ObjectInfo(str(item["Key"]), int(item["Size"]), _epoch(item["LastModified"]))

    async def list_multipart(self, prefix: str) -> AsyncIterator[MultipartInfo]:
        paginator = self._client.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Uploads", []):
                yield MultipartInfo(
                    str(item["Key"]), str(item["UploadId"]), _epoch(item["Initiated"])
                )

    async def presign_get(self, key: str, expires_seconds: int) -> str:
        url = await self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=expires_seconds,
        )
        return str(url)

    def _source(self, key: str) -> dict[str, str]:
        return {"Bucket": self.bucket, "Key": key}


def _epoch(value: datetime) -> float:
    return value.timestamp()
