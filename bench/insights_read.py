"""`python bench/insights_read.py`: the items DynamoDB returns, and the CPU spent, for one `GET /insights`.

Under moto (in-memory DynamoDB, in this process), with the insights table filled for the window and
its two-hour funnel lookback at 1,000 events/s (60,000 events a minute in the counters), and the
given number of distinct sessions spread over those minutes (each views a page, 40% add to the cart,
half of those buy). Items are counted on botocore's parsed Query answers. The CPU time is this
process's for `insights_document` (the whole read path of `GET /insights`), moto's side included: an
upper bound for the Lambda function's own.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from eventpipe.adapters.aws.dynamodb_insights import DynamoInsightsStore
from eventpipe.adapters.aws.retry import NO_WAIT
from eventpipe.adapters.aws.tables import create_tables
from eventpipe.core.aggregate import HOUR_S, BatchAggregate, MinuteAggregate
from eventpipe.core.funnel import SESSION_LOOKBACK_S, new_step_sketch
from eventpipe.core.insights import insights_document

if TYPE_CHECKING:
    from collections.abc import Iterator

START = 1_795_824_000  # 2026-11-28T00:00:00Z
EVENTS_PER_MINUTE = 60_000  # 1,000 events/s
TABLE = "insights-bench"


def hour_batches(first_minute: int, minutes: int, sessions: int) -> Iterator[tuple[str, BatchAggregate]]:
    """Synthetic batches, one per UTC hour, of `sessions` distinct sessions spread over `minutes` minutes."""
    by_hour: dict[int, BatchAggregate] = {}
    for offset in range(minutes):
        minute = first_minute + 60 * offset
        batch = by_hour.setdefault(minute - minute % HOUR_S, BatchAggregate(batch_minute=minute))
        bucket = batch.minutes[minute] = MinuteAggregate()
        bucket.events.update({"page_view": EVENTS_PER_MINUTE * 3 // 4, "add_to_cart": EVENTS_PER_MINUTE // 4})
        bucket.revenue = 100.0
        bucket.lag_ms[0] = EVENTS_PER_MINUTE
        steps = [new_step_sketch() for _ in range(3)]
        for session in range(offset, sessions, minutes):  # a session in one minute, ids spread evenly
            name = f"s-{session}"
            bucket.users.update(f"u-{session}")
            steps[0].update(name)
            if session % 5 < 2:
                steps[1].update(name)
                if session % 5 == 0:
                    steps[2].update(name)
        bucket.sessions.update(enumerate(steps))
    for hour, batch in sorted(by_hour.items()):
        yield f"fill-{hour}", batch


class QueryItems:
    """Counts the items and pages botocore parses from DynamoDB Query answers."""

    def __init__(self, client: Any) -> None:
        self.items = Counter[str]()
        client.meta.events.register("after-call.dynamodb.Query", self._count)

    def _count(self, parsed: dict[str, Any], **_kwargs: Any) -> None:
        self.items["items"] += len(parsed.get("Items", []))
        self.items["queries"] += 1


def fill(client: Any, *, hours: int, sessions: int) -> DynamoInsightsStore:
    """A fresh table holding the window of `hours` hours from START and its lookback."""
    create_tables(client, curated=f"{TABLE}-curated", state=f"{TABLE}-state", insights=TABLE)
    store = DynamoInsightsStore(TABLE, client, backoff=NO_WAIT)
    first = START - SESSION_LOOKBACK_S
    for batch_id, batch in hour_batches(first, (hours * HOUR_S + SESSION_LOOKBACK_S) // 60, sessions):
        store.apply(batch_id, batch)
    return store


def read(client: Any, store: DynamoInsightsStore, *, hours: int) -> tuple[int, int, float, dict[str, Any]]:
    """(items, queries, CPU seconds, document) of one GET /insights of the window."""
    counter = QueryItems(client)
    cpu = time.process_time()
    until_ms = (START + hours * HOUR_S) * 1000 - 1  # the minute that holds `until` is read: end just before
    document = insights_document(store, since_ms=START * 1000, until_ms=until_ms, currency="EUR")
    cpu = time.process_time() - cpu
    return counter.items["items"], counter.items["queries"], cpu, document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1000,100000", help="distinct sessions over the window and lookback")
    parser.add_argument("--hours", default="1,24", help="window lengths")
    args = parser.parse_args()
    import boto3
    from moto import mock_aws

    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    print("| window | distinct sessions | items returned | Queries | CPU s (moto included) | funnel |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for hours in (int(h) for h in args.hours.split(",")):
        for sessions in (int(s) for s in args.sessions.split(",")):
            with mock_aws():
                client = boto3.client("dynamodb", region_name="us-east-1")
                store = fill(client, hours=hours, sessions=sessions)
                items, queries, cpu, document = read(client, store, hours=hours)
            funnel = " / ".join(f"{n:,}" for n in document["funnel"].values())
            print(f"| {hours} h | {sessions:,} | {items:,} | {queries} | {cpu:.2f} | {funnel} |")


if __name__ == "__main__":
    main()
