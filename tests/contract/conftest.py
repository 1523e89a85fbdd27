"""One contract suite for the ports, run against every backend: memory, SQLite, DynamoDB (moto) and
Cosmos DB (the SDK stand-in of tests/azure). A backend is a `Stores` of one port each, plus how to
count what its curated store holds (no port has a count: each backend has its own way to look)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from eventpipe.adapters.aws.dynamodb_curated import DynamoCuratedStore
from eventpipe.adapters.aws.dynamodb_insights import DynamoInsightsStore
from eventpipe.adapters.aws.dynamodb_quarantine import DynamoQuarantine
from eventpipe.adapters.aws.dynamodb_state import DynamoBatchStore
from eventpipe.adapters.aws.retry import NO_WAIT
from eventpipe.adapters.aws.s3 import S3RawBucket
from eventpipe.adapters.aws.tables import create_tables
from eventpipe.adapters.local import (
    Database,
    FolderBucket,
    SqliteBatchStore,
    SqliteCuratedStore,
    SqliteInsightsStore,
    SqliteQuarantine,
)
from eventpipe.adapters.memory import (
    MemoryBatchStore,
    MemoryBucket,
    MemoryCuratedStore,
    MemoryInsightsStore,
    MemoryQuarantine,
)
from tests.aws.conftest import APPS_TABLE, CURATED_TABLE, INSIGHTS_TABLE, REGION, STATE_TABLE
from tests.aws.insights_stream import StreamedStore
from tests.aws.scans import curated_types

# Importing tests.azure.conftest puts the blueprint's eventpipe_azure on sys.path; its Azurite fixtures serve here too.
from tests.azure.conftest import azurite, container  # noqa: F401
from tests.azure.cosmos_standin import ContainerStandIn

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from eventpipe.core.ports import BatchStore, CuratedStore, InsightsStore, Quarantine, RawBucket

BACKENDS = ["memory", "sqlite", "dynamodb", "cosmos"]


@dataclass
class Stores:
    curated: CuratedStore
    batches: BatchStore
    quarantine: Quarantine
    stored_types: Callable[[], dict[str, int]]  # event type -> curated events stored


def _memory(tmp_path: Path) -> Iterator[Stores]:
    curated = MemoryCuratedStore()
    yield Stores(
        curated,
        MemoryBatchStore(),
        MemoryQuarantine(),
        lambda: dict(Counter(event.event_type for event in curated.events.values())),
    )


def _sqlite(tmp_path: Path) -> Iterator[Stores]:
    db = Database(tmp_path / "eventpipe.db")
    curated = SqliteCuratedStore(db, FolderBucket(tmp_path / "curated", prefixes=()))
    yield Stores(curated, SqliteBatchStore(db), SqliteQuarantine(db), curated.count_by_type)
    db.close()


def _dynamodb(tmp_path: Path) -> Iterator[Stores]:
    with mock_aws():
        client: Any = boto3.client(
            "dynamodb", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        create_tables(client, curated=CURATED_TABLE, state=STATE_TABLE, insights=INSIGHTS_TABLE, apps=APPS_TABLE)
        yield Stores(
            DynamoCuratedStore(CURATED_TABLE, client, backoff=NO_WAIT),
            DynamoBatchStore(STATE_TABLE, client, backoff=NO_WAIT),
            DynamoQuarantine(STATE_TABLE, client, backoff=NO_WAIT),
            lambda: curated_types(client),
        )


def _cosmos(tmp_path: Path) -> Iterator[Stores]:
    from eventpipe_azure.containers import CURATED, STATE
    from eventpipe_azure.cosmos_curated import CosmosCuratedStore
    from eventpipe_azure.cosmos_state import CosmosBatchStore, CosmosQuarantine

    curated, state = ContainerStandIn(CURATED.partition_key), ContainerStandIn(STATE.partition_key)
    yield Stores(
        CosmosCuratedStore(curated, max_workers=4),
        CosmosBatchStore(state),
        CosmosQuarantine(state),
        lambda: dict(Counter(item["event_type"] for item in curated.items.values())),
    )


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stores]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)  # moto, and never a real account
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    build = {"memory": _memory, "sqlite": _sqlite, "dynamodb": _dynamodb, "cosmos": _cosmos}[request.param]
    yield from build(tmp_path)


@pytest.fixture(params=["memory", "sqlite", "cosmos", "dynamodb"])
def insights(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InsightsStore]:
    """Every insights store: those that share `BaseInsightsStore`'s flow, and DynamoDB's, whose deltas are
    folded right after each apply (as the table's stream hands them to `fold_insights`; its own tests,
    tests/aws/test_dynamodb_insights.py, also fold late, twice and half-way)."""
    if request.param == "dynamodb":
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)  # moto, and never a real account
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        with mock_aws():
            client: Any = boto3.client(
                "dynamodb", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
            )
            create_tables(client, curated=CURATED_TABLE, state=STATE_TABLE, insights=INSIGHTS_TABLE)
            store = DynamoInsightsStore(INSIGHTS_TABLE, client, backoff=NO_WAIT)
            yield StreamedStore(store, client)  # type: ignore[misc]
    elif request.param == "memory":
        yield MemoryInsightsStore()
    elif request.param == "sqlite":
        db = Database(tmp_path / "eventpipe.db")
        yield SqliteInsightsStore(db)
        db.close()
    else:
        from eventpipe_azure.containers import INSIGHTS
        from eventpipe_azure.cosmos_insights import CosmosInsightsStore

        yield CosmosInsightsStore(ContainerStandIn(INSIGHTS.partition_key), backoff=NO_WAIT)


@pytest.fixture(params=["memory", "folder", "s3", "blob"])
def bucket(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RawBucket]:
    """The raw bucket: in memory, a folder, S3 (moto) and Blob Storage (Azurite; skipped where it is not installed)."""
    if request.param == "memory":
        yield MemoryBucket()
    elif request.param == "folder":
        yield FolderBucket(tmp_path / "bucket")
    elif request.param == "s3":
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        with mock_aws():
            client: Any = boto3.client("s3", region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t")
            client.create_bucket(Bucket="contract", CreateBucketConfiguration={"LocationConstraint": REGION})
            yield S3RawBucket("contract", client)
    else:
        from eventpipe_azure.blob import BlobRawBucket

        blobs = request.getfixturevalue("container")
        yield BlobRawBucket(blobs.container_name, blobs)
