"""BlobRawBucket against Azurite: streaming and error translation (the RawBucket port's contract: tests/contract)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from azure.storage.blob import ContainerClient
from eventpipe_azure.blob import BlobRawBucket

from eventpipe.core.errors import ObjectNotFoundError, StorageError

if TYPE_CHECKING:
    from tests.azure.conftest import Azurite


def test_missing_blob_is_object_not_found(container: ContainerClient) -> None:
    bucket = BlobRawBucket(container.container_name, container)
    with pytest.raises(ObjectNotFoundError, match="does not exist"):
        bucket.get("raw/nothing.ndjson")
    with pytest.raises(ObjectNotFoundError):
        bucket.open("incoming/nothing.ndjson")


def test_open_streams_a_large_blob_in_pieces(container: ContainerClient) -> None:
    # GIVEN a 9 MB blob, larger than one download chunk of the SDK (4 MB)
    data = os.urandom(3 * 1024 * 1024) * 3
    bucket = BlobRawBucket(container.container_name, container)
    bucket.put("incoming/big.bin", data)
    # WHEN it is read through the stream, a piece at a time
    with bucket.open("incoming/big.bin") as stream:
        first = stream.read(1000)
        rest = stream.read()
    # THEN the pieces are the blob
    assert first + rest == data


def test_missing_container_is_storage_error(azurite: Azurite) -> None:
    from tests.azure.conftest import ACCOUNT_KEY

    client = ContainerClient.from_container_url(
        f"{azurite.blob_url}/no-such-container",
        credential={"account_name": "devstoreaccount1", "account_key": ACCOUNT_KEY},
    )
    bucket = BlobRawBucket("no-such-container", client)
    with pytest.raises(StorageError, match="cannot write no-such-container/raw/x") as caught:
        bucket.put("raw/x", b"data")
    assert "ContainerNotFound" in str(caught.value)
    with pytest.raises(StorageError, match="cannot list"):
        list(bucket.keys("raw/"))


def test_unreachable_service_is_storage_error() -> None:
    # GIVEN a client for a port nothing listens on, with the SDK's retries off
    from tests.azure.conftest import _free_port

    client = ContainerClient(f"http://127.0.0.1:{_free_port()}/devstoreaccount1", "raw", retry_total=0)
    bucket = BlobRawBucket("raw", client)
    # THEN every call fails as StorageError, never as an SDK exception
    with pytest.raises(StorageError, match="no answer"):
        bucket.put("raw/x", b"data")
    with pytest.raises(StorageError):
        bucket.get("raw/x")


def test_needs_a_client_or_an_account_url() -> None:
    with pytest.raises(ValueError, match="account_url"):
        BlobRawBucket("raw")
