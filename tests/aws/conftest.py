"""AWS tests run against moto's in-memory AWS: no network, no account."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from eventpipe.adapters.aws.retry import Backoff
from eventpipe.adapters.aws.tables import create_tables

if TYPE_CHECKING:
    from collections.abc import Iterator

REGION = "eu-west-1"
BUCKET = "eventpipe-raw-test"
ANALYTICS_BUCKET = "eventpipe-analytics-test"
CURATED_TABLE = "eventpipe-curated-test"
STATE_TABLE = "eventpipe-state-test"
INSIGHTS_TABLE = "eventpipe-insights-test"
APPS_TABLE = "eventpipe-apps-test"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh moto AWS with fake credentials, so no test can reach a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def dynamodb(aws: None) -> Any:
    """A DynamoDB client with the eventpipe tables created."""
    client = boto3.client("dynamodb", region_name=REGION)
    create_tables(client, curated=CURATED_TABLE, state=STATE_TABLE, insights=INSIGHTS_TABLE, apps=APPS_TABLE)
    return client


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3", region_name=REGION)
    for name in (BUCKET, ANALYTICS_BUCKET):
        client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return client


# --- Stubber: throttling, UnprocessedItems and service errors, which moto does not produce ------------


class Sleeps(list[float]):
    """A `Backoff.sleep` that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def backoff(sleeps: Sleeps) -> Backoff:
    # No jitter, so the waits are the exponential caps: 0.05, 0.1, ...
    return Backoff(attempts=3, base_s=0.05, sleep=sleeps, jitter=lambda: 1.0)


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    """A real boto3 client whose answers the test queues; it never reaches the network."""
    client = boto3.client("dynamodb", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()
