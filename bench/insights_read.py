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
from eventpipe.adapters.aws.insights_delta import decode_delta, delta_items
from eventpipe.adapters.aws.retry import NO_WAIT
from eventpipe.adapters.aws.sketch_cache import SketchCache
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


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB bills it: names, strings and binaries by length, numbers ~1 byte per 2 digits."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        for kind, data in value.items():
            if kind == "S":
                size += len(data.encode())
            elif kind == "B":
                size += len(data)
            elif kind == "N":
                size += (len(data.strip("-").replace(".", "")) + 1) // 2 + 1
            else:
                raise ValueError(f"no size for DynamoDB type {kind}")
    return size


class QueryItems:
    """Counts the items, pages, bytes and read units of DynamoDB Query answers (parsed by botocore).

    A Query's read units are its items' total size rounded up to 4 KB, one unit per 4 KB strongly
    consistent (the insights reads are) and half of that eventually consistent; a projection does not
    lower them, so the reads measured here carry none.
    """

    def __init__(self, client: Any) -> None:
        self.items = Counter[str]()
        self._events = client.meta.events
        self._events.register("after-call.dynamodb.Query", self._count)

    def stop(self) -> Counter[str]:
        """Stop counting (a later counter on the same client counts alone); the counts."""
        self._events.unregister("after-call.dynamodb.Query", self._count)
        return self.items

    def _count(self, parsed: dict[str, Any], **_kwargs: Any) -> None:
        sizes = [item_bytes(item) for item in parsed.get("Items", [])]
        self.items["items"] += len(sizes)
        self.items["small items"] += sum(1 for size in sizes if size <= 1024)
        self.items["bytes"] += sum(sizes)
        self.items["read units"] += max(1, -(-sum(sizes) // 4096))
        self.items["queries"] += 1


def fill(client: Any, *, hours: int, sessions: int) -> DynamoInsightsStore:
    """A fresh table holding the window of `hours` hours from START and its lookback."""
    create_tables(client, curated=f"{TABLE}-curated", state=f"{TABLE}-state", insights=TABLE)
    store = DynamoInsightsStore(TABLE, client, backoff=NO_WAIT)
    first = START - SESSION_LOOKBACK_S
    for batch_id, batch in hour_batches(first, (hours * HOUR_S + SESSION_LOOKBACK_S) // 60, sessions):
        apply_and_fold(store, batch_id, batch)
    return store


def apply_and_fold(store: DynamoInsightsStore, batch_id: str, batch: BatchAggregate) -> None:
    """What ProcessBatch and the fold do, without the delta item (an hour of 1,000 events/s in one synthetic
    batch would not fit one; real batches are at most a few hundred events)."""
    items = delta_items(batch_id, batch, now_s=START)
    store.fold([decode_delta(item) for item in items])


def read(client: Any, store: DynamoInsightsStore, *, hours: int) -> tuple[Counter[str], float, dict[str, Any]]:
    """(items, queries, bytes and read units counted; CPU seconds; document) of one GET /insights of the window."""
    counter = QueryItems(client)
    cpu = time.process_time()
    until_ms = (START + hours * HOUR_S) * 1000 - 1  # the minute that holds `until` is read: end just before
    document = insights_document(store, since_ms=START * 1000, until_ms=until_ms, currency="EUR")
    cpu = time.process_time() - cpu
    return counter.stop(), cpu, document


def one_more_batch(minute: int, number: int) -> BatchAggregate:
    """A batch of 100 events (10 new sessions) in `minute`: what lands between two polls at 100 events/s."""
    batch = BatchAggregate(batch_minute=minute)
    bucket = batch.minutes[minute] = MinuteAggregate()
    bucket.events["page_view"] = 100
    bucket.lag_ms[0] = 100
    step = new_step_sketch()
    for session in range(10):
        bucket.users.update(f"late-u-{number}-{session}")
        step.update(f"late-s-{number}-{session}")
    bucket.sessions[0] = step
    return batch


def polls(client: Any, *, hours: int, sessions: int) -> list[tuple[str, Counter[str], dict[str, Any]]]:
    """What three polls of a dashboard read with the sketch cache: cold, after no write, after one batch."""
    fill(client, hours=hours, sessions=sessions)
    store = DynamoInsightsStore(TABLE, client, backoff=NO_WAIT, sketch_cache=SketchCache())
    rows = []
    for name in ("first poll (cold cache)", "next poll, no write since", "next poll, one batch since"):
        if name.endswith("one batch since"):
            apply_and_fold(store, "one-more", one_more_batch(START + hours * HOUR_S - 60, 1))
        counter = QueryItems(client)
        until_ms = (START + hours * HOUR_S) * 1000 - 1
        document = insights_document(store, since_ms=START * 1000, until_ms=until_ms, currency="EUR")
        rows.append((name, counter.stop(), document))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1000,100000", help="distinct sessions over the window and lookback")
    parser.add_argument("--hours", default="1,24", help="window lengths")
    parser.add_argument("--polls", action="store_true", help="also the polls of one dashboard, sketch cache on")
    args = parser.parse_args()
    import boto3
    from moto import mock_aws

    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    print(
        "| window | distinct sessions | items returned | Queries | KB | read units | CPU s (moto included) | funnel |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for hours in (int(h) for h in args.hours.split(",")):
        for sessions in (int(s) for s in args.sessions.split(",")):
            with mock_aws():
                client = boto3.client("dynamodb", region_name="us-east-1")
                store = fill(client, hours=hours, sessions=sessions)
                counted, cpu, document = read(client, store, hours=hours)
            funnel = " / ".join(f"{n:,}" for n in document["funnel"].values())
            print(
                f"| {hours} h | {sessions:,} | {counted['items']:,} | {counted['queries']} "
                f"| {counted['bytes'] / 1024:,.0f} | {counted['read units']:,} | {cpu:.2f} | {funnel} |"
            )
    if not args.polls:
        return
    print()
    print("| window | distinct sessions | poll (sketch cache on) | items | of which < 1 KB | KB | read units |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for hours in (int(h) for h in args.hours.split(",")):
        for sessions in (int(s) for s in args.sessions.split(",")):
            with mock_aws():
                rows = polls(boto3.client("dynamodb", region_name="us-east-1"), hours=hours, sessions=sessions)
            for name, read_, _document in rows:
                print(
                    f"| {hours} h | {sessions:,} | {name} | {read_['items']:,} | {read_['small items']:,} "
                    f"| {read_['bytes'] / 1024:,.0f} | {read_['read units']:,} |"
                )


if __name__ == "__main__":
    main()
