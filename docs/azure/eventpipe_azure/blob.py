"""The raw bucket on Azure Blob Storage: the `RawBucket` port, plus streaming reads of dropped files."""

from __future__ import annotations

import io
from typing import IO, TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from eventpipe.core.errors import ObjectNotFoundError
from eventpipe_azure.errors import AZURE_ERRORS, storage_error

if TYPE_CHECKING:
    from collections.abc import Iterator

    from azure.storage.blob import ContainerClient

_STREAM_BUFFER = 256 * 1024


class BlobRawBucket:
    """Blobs in one container, named like the S3 keys (`raw/...`, `incoming/...`).

    Blob Storage has committed an upload durably when it answers, so every put is durable.
    """

    def __init__(
        self, container: str, client: ContainerClient | None = None, *, account_url: str | None = None
    ) -> None:
        """`client` for tests; otherwise a client for `account_url` signed in with the managed identity."""
        self.name = container
        if client is None:
            if not account_url:
                raise ValueError("BlobRawBucket needs a ContainerClient or an account_url")
            from azure.storage.blob import ContainerClient

            from eventpipe_azure.clients import default_credential, timeouts

            client = ContainerClient(account_url, container, credential=default_credential(), **timeouts())
        self._client = client

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        try:
            self._client.upload_blob(key, data, overwrite=True)
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot write {self.name}/{key}") from exc

    def get(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def open(self, key: str, version_id: str | None = None) -> IO[bytes]:
        """A stream of the blob's bytes, downloaded as it is read: a large file never sits in memory.

        Raises `ObjectNotFoundError` when the blob (or that version of it) does not exist.
        """
        extra: dict[str, Any] = {"version_id": version_id} if version_id else {}
        try:
            downloader = self._client.download_blob(key, **extra)
        except ResourceNotFoundError as exc:
            raise ObjectNotFoundError(f"{self.name}/{key} does not exist") from exc
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot read {self.name}/{key}") from exc
        return io.BufferedReader(_TranslatedStream(downloader, f"{self.name}/{key}"), _STREAM_BUFFER)

    def delete(self, key: str) -> None:
        """Delete the blob; a blob that is gone already is fine (as in S3)."""
        try:
            self._client.delete_blob(key)
        except ResourceNotFoundError:
            return
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot delete {self.name}/{key}") from exc

    def keys(self, prefix: str) -> Iterator[str]:
        try:
            yield from self._client.list_blob_names(name_starts_with=prefix)
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot list {self.name}/{prefix}") from exc


class _TranslatedStream(io.RawIOBase):
    """The SDK's downloader as a raw stream, with a download that breaks midway raised as `StorageError`."""

    def __init__(self, downloader: Any, name: str) -> None:
        self._downloader = downloader
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._downloader.read(len(buffer))
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot read {self._name}") from exc
        buffer[: len(data)] = data
        return len(data)
