"""The insights store in DynamoDB: batches' deltas, per-minute items, counter copies, dirty hours.

Key shapes (one table, `pk` and `sk` strings; the zero-padded minute makes string order time order):

- delta: `pk = delta#<batch_id>`, `sk = <chunk>`: what one batch adds to the minutes it touches
  (insights_delta.py), put once by ProcessBatch, expiring after two days (TTL).
- minute item: `pk = sketch#<YYYY-MM-DD>` (UTC day of the minute), `sk = <minute epoch seconds, 12
  digits>`, followed by `#<segment>` for any segment but the default one (core/segments.py: an app's
  events, bots'). The store of record, written by the fold (insights_fold.py): flat number attributes
  `events_<type>`, `revenue`, `rejected_<code>`, `duplicates`, `lag_<bucket>`, `country_<ISO code>`;
  `users` (B) the minute's HyperLogLog sketch of users, `s<step>` (B) its Theta sketch of the sessions
  that reached funnel step `step` (core/funnel.py); `ids` (B) the 8-byte ids of the deltas folded in;
  `v` (N) the number of folds that changed it. A minute's segments sort together, so one Query range
  reads them all.
- counter item: `pk = minute#<YYYY-MM-DD>`, `sk` as above: a copy of the minute item's counters and
  `v`, under 1 KB, for the dashboard's polls (sketch_cache.py).
- dirty hour: `pk = dirty`, `sk = <hour start, 12 digits>`, `v` (N) counting the folds that changed
  the hour since the export last cleared it.

Why this shape (the writes are the bill, the read must not grow with sessions or batches, docs/insights.md):

- DynamoDB bills a write by the size of the whole item, and a minute's sketches are ~14 KB at 100
  events/s (~27 KB at 1,000). A batch therefore writes only its delta (~1.5 KB, 2 write units); the
  fold, invoked by the table's stream about every 30 s, rewrites each minute item once for all the
  batches of its window. Lambda reads DynamoDB streams at no charge.
- Exactly once: a delta is put on `attribute_not_exists`, so it enters the stream once; the fold skips
  a delta whose id the minute item holds, so a stream batch delivered again counts nothing twice.
- A read (dynamodb_insights_read.py) Queries the minute items of the window and of the funnel's
  two-hour lookback: a 1-hour window 60 + 120 items, a 24-hour one 1,440 + 120, however many sessions
  or batches. With a `SketchCache`, a warm read Queries the small counter items instead and only the
  minute items whose `v` moved.
- Insights are as fresh as the last fold: the stream's batching window (30 s by default) behind.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.dynamodb_calls import DEFAULT_BACKOFF, conditional
from eventpipe.adapters.aws.dynamodb_insights_read import DynamoInsightsReader
from eventpipe.adapters.aws.insights_delta import decode_delta, delta_items
from eventpipe.adapters.aws.insights_fold import FoldResult, InsightsFold
from eventpipe.adapters.aws.insights_keys import DIRTY_PK, dirty_key
from eventpipe.core.segments import ALL_PEOPLE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from eventpipe.adapters.aws.insights_delta import Delta
    from eventpipe.adapters.aws.retry import Backoff
    from eventpipe.adapters.aws.sketch_cache import SketchCache
    from eventpipe.core.aggregate import BatchAggregate
    from eventpipe.core.insight_rows import InsightsRows
    from eventpipe.core.segments import InsightsView


class DynamoInsightsStore:
    """`InsightsStore` on DynamoDB: `apply` puts a batch's deltas, `fold` (the stream's function) counts them.

    `read` answers from the folded minutes: a batch counts once the fold has run over its delta.
    """

    def __init__(
        self,
        table_name: str,
        client: Any = None,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        sketch_cache: SketchCache | None = None,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        self._table = table_name
        self._client = client if client is not None else make_client("dynamodb")
        self._backoff = backoff
        self._clock_s = clock_s
        self._reader = DynamoInsightsReader(table_name, self._client, backoff, sketch_cache)
        self._fold = InsightsFold(table_name, self._client, backoff)

    def apply(self, batch_id: str, aggregate: BatchAggregate) -> bool:
        """Put the batch's delta items; True when any was put now, False when all were there already.

        A batch with nothing to count (no new event, no refusal) puts nothing.
        """
        put = False
        for item in delta_items(batch_id, aggregate, now_s=int(self._clock_s())):
            put |= conditional(
                self._backoff,
                f"cannot apply batch {batch_id} to {self._table}",
                lambda item=item: self._client.put_item(  # type: ignore[misc]
                    TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
                ),
            )
        return put

    def fold(self, deltas: Sequence[Delta]) -> FoldResult:
        """Count the deltas into their minutes, each once however often it is handed over (insights_fold.py)."""
        return self._fold.fold(deltas)

    def fold_items(self, items: Iterable[Mapping[str, Any]]) -> FoldResult:
        """`fold` of delta items as read from the table (tests, a manual re-fold)."""
        return self.fold([decode_delta(item) for item in items])

    # --- dirty hours --------------------------------------------------------------------------------

    def dirty_hours(self) -> list[tuple[int, int]]:
        return [
            (int(item["sk"]["S"]), int(item.get("v", {}).get("N", 0)))
            for item in self._reader.query(DIRTY_PK, "0", "9" * 12)
        ]

    def clear_dirty(self, hour: int, version: int) -> bool:
        return conditional(
            self._backoff,
            f"cannot clear dirty hour {hour} in {self._table}",
            lambda: self._client.delete_item(
                TableName=self._table,
                Key=dirty_key(hour),
                ConditionExpression="v = :v",
                ExpressionAttributeValues={":v": {"N": str(version)}},
            ),
        )

    def read(
        self, since_minute: int, until_minute: int, *, funnel: bool = True, view: InsightsView = ALL_PEOPLE
    ) -> InsightsRows:
        return self._reader.read(since_minute, until_minute, funnel=funnel, view=view)
