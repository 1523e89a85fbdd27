"""The raw bucket on S3: the `RawBucket` port, plus streaming reads of dropped files."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.errors import AWS_ERRORS, error_code, storage_error
from eventpipe.core.errors import ObjectNotFoundError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_s3.client import S3Client

_MISSING = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})


class S3RawBucket:
    """Objects in one S3 bucket. S3 stores durably before it answers, so every put is durable."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.name = bucket
        self._client: S3Client = client or make_client("s3")

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        try:
            self._client.put_object(Bucket=self.name, Key=key, Body=data)
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot write s3://{self.name}/{key}") from exc

    def get(self, key: str) -> bytes:
        body = self.open(key)
        try:
            return body.read()
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot read s3://{self.name}/{key}") from exc
        finally:
            body.close()

    def open(self, key: str, version_id: str | None = None) -> IO[bytes]:
        """A stream of the object's bytes, read as it is consumed: a 1 GB file never sits in memory.

        Raises `ObjectNotFoundError` when the key (or that version of it) does not exist.
        """
        extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        try:
            answer = self._client.get_object(Bucket=self.name, Key=key, **extra)
        except AWS_ERRORS as exc:
            if error_code(exc) in _MISSING:
                raise ObjectNotFoundError(f"s3://{self.name}/{key} does not exist") from exc
            raise storage_error(exc, f"cannot read s3://{self.name}/{key}") from exc
        body: IO[bytes] = answer["Body"]  # type: ignore[assignment]  # a StreamingBody reads like a file
        return body

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.name, Key=key)
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot delete s3://{self.name}/{key}") from exc

    def keys(self, prefix: str) -> Iterator[str]:
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot list s3://{self.name}/{prefix}") from exc
