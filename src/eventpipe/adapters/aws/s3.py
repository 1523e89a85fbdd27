"""The raw bucket on S3: the `RawBucket` port, plus streaming reads of dropped files.

Raw batches (`raw/`) are stored gzip-compressed (`Content-Encoding: gzip`): NDJSON events compress about
nine to one, which takes their S3 storage, 30 days of every event received, from about $0.016 to $0.002
per million events, for half a millisecond of CPU per 100-event batch. `get` and `open` give back the
bytes put, and read the plain objects written before as they are.
"""

from __future__ import annotations

import gzip
import io
from typing import IO, TYPE_CHECKING, Any, NamedTuple, cast

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.errors import AWS_ERRORS, error_code, storage_error
from eventpipe.core.errors import ObjectNotFoundError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_s3.client import S3Client

MISSING_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})
COMPRESSED_PREFIX = "raw/"  # RawBatch objects: written and read by eventpipe only
GZIP_MAGIC = b"\x1f\x8b"  # a raw batch's first byte is "{" (its JSON header): never this


def stored_form(key: str, data: bytes) -> tuple[bytes, dict[str, Any]]:
    """The bytes and `put_object` arguments an object is stored with: raw batches gzip-compressed."""
    if key.startswith(COMPRESSED_PREFIX):
        return gzip.compress(data, 6, mtime=0), {"ContentEncoding": "gzip"}
    return data, {}


def read_form(key: str, stored: bytes) -> bytes:
    """The bytes put, from the bytes stored (`stored_form` reversed; plain raw batches from before too)."""
    if key.startswith(COMPRESSED_PREFIX) and stored[:2] == GZIP_MAGIC:
        return gzip.decompress(stored)
    return stored


class ObjectVersion(NamedTuple):
    """One version of an object in a versioned bucket, or one delete marker."""

    key: str
    version_id: str
    latest: bool
    marker: bool


class S3RawBucket:
    """Objects in one S3 bucket. S3 stores durably before it answers, so every put is durable."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.name = bucket
        self._client: S3Client = client or make_client("s3")

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        data, extra = stored_form(key, data)
        try:
            self._client.put_object(Bucket=self.name, Key=key, Body=data, **extra)
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot write s3://{self.name}/{key}") from exc

    def get(self, key: str, version_id: str | None = None) -> bytes:
        with self.open(key, version_id) as body:
            return body.read()

    def open(self, key: str, version_id: str | None = None) -> IO[bytes]:
        """A stream of the object's bytes, read as it is consumed: a 1 GB file never sits in memory.

        Raises `ObjectNotFoundError` when the key (or that version of it) does not exist.
        """
        extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        try:
            answer = self._client.get_object(Bucket=self.name, Key=key, **extra)
        except AWS_ERRORS as exc:
            if error_code(exc) in MISSING_CODES:
                raise ObjectNotFoundError(f"s3://{self.name}/{key} does not exist") from exc
            raise storage_error(exc, f"cannot read s3://{self.name}/{key}") from exc
        stream = io.BufferedReader(TranslatedStream(answer["Body"], f"s3://{self.name}/{key}"), 256 * 1024)
        if key.startswith(COMPRESSED_PREFIX) and stream.peek(2)[:2] == GZIP_MAGIC:  # raw/ from before: plain
            return cast("IO[bytes]", gzip.GzipFile(fileobj=stream, mode="rb"))
        return stream

    def delete(self, key: str, version_id: str | None = None) -> None:
        """Delete the object (a delete marker, in a versioned bucket), or only that version of it."""
        extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        try:
            self._client.delete_object(Bucket=self.name, Key=key, **extra)
        except AWS_ERRORS as exc:
            which = f"a version of s3://{self.name}/{key}" if version_id else f"s3://{self.name}/{key}"
            raise storage_error(exc, f"cannot delete {which}") from exc

    def keys(self, prefix: str) -> Iterator[str]:
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot list s3://{self.name}/{prefix}") from exc

    def versions(self, prefix: str) -> Iterator[ObjectVersion]:
        """Every version and delete marker of the objects under `prefix` (a versioned bucket's history)."""
        try:
            for page in self._client.get_paginator("list_object_versions").paginate(Bucket=self.name, Prefix=prefix):
                for version in page.get("Versions", []):
                    yield ObjectVersion(version["Key"], version["VersionId"], version["IsLatest"], marker=False)
                for marker in page.get("DeleteMarkers", []):
                    yield ObjectVersion(marker["Key"], marker["VersionId"], marker["IsLatest"], marker=True)
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot list the versions in s3://{self.name}/{prefix}") from exc


class TranslatedStream(io.RawIOBase):
    """botocore's StreamingBody, with a read that breaks midway (timeout, reset) raised as `StorageError`."""

    def __init__(self, body: Any, name: str) -> None:
        self._body = body
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot read {self._name}") from exc
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()
