"""DynamoInsightsStore on moto: the SQLite store's answers, exactly once per batch, by hour, under races."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import datasketches
import pytest
from botocore.exceptions import ClientError

from eventpipe.adapters.aws.dynamodb_insights import DynamoInsightsStore
from eventpipe.adapters.aws.retry import NO_WAIT, Backoff
from eventpipe.adapters.aws.sketch_cache import SketchCache
from eventpipe.adapters.local import Database, SqliteInsightsStore
from eventpipe.core.aggregate import aggregate_batch
from eventpipe.core.errors import StorageError
from eventpipe.core.facts import Fact
from eventpipe.core.insights import build_insights
from tests.aws.conftest import INSIGHTS_TABLE
from tests.aws.insights_stream import InsightsStream, StreamedStore, stream_event

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from eventpipe.core.aggregate import BatchAggregate

D = 1_795_824_000  # 2026-11-28T00:00:00Z in epoch seconds: a day, an hour and a minute start
D_MS = D * 1000
MIN_MS = 60_000


# --- helpers --------------------------------------------------------------------------------------


class ScriptedClient:
    """The moto client, but each call of `operation` first runs the next step of `script` (which may raise)."""

    def __init__(
        self, inner: Any, script: list[Callable[[], object]] | None = None, operation: str = "put_item"
    ) -> None:
        self.inner = inner
        self.script = list(script or [])
        self.operation = operation
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.inner, name)
        if name != self.operation:
            return call

        def scripted(**kwargs: Any) -> Any:
            self.calls += 1
            if self.script:
                self.script.pop(0)()
            return call(**kwargs)

        return scripted


def raising(exc: BaseException) -> Callable[[], object]:
    def step() -> object:
        raise exc

    return step


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "TransactWriteItems")


def fact(n: int, event_type: str = "page_view", *, at_ms: int = D_MS, user: str | None = None, **kw: Any) -> Fact:
    return Fact(f"e-{n}", event_type, at_ms, user, kw.get("session"), kw.get("revenue", 0.0))


def aggregate(
    facts: list[Fact], *, received_at_ms: int = D_MS, rejected: dict[str, int] | None = None, duplicates: int = 0
) -> BatchAggregate:
    return aggregate_batch(
        facts,
        received_at_ms=received_at_ms,
        now_ms=received_at_ms + MIN_MS,
        rejected=rejected or {},
        duplicates=duplicates,
    )


def random_batch(rng: random.Random, number: int) -> BatchAggregate:
    """Events over five hours around midnight (two days, several hours), with sessions, users and refusals."""
    facts = []
    for n in range(rng.randint(0, 40)):
        event_type = rng.choice(["page_view", "page_view", "add_to_cart", "purchase", "signup"])
        facts.append(
            fact(
                number * 1000 + n,
                event_type,
                at_ms=D_MS + rng.randrange(-150 * MIN_MS, 150 * MIN_MS),
                user=rng.choice([None, *(f"u{k}" for k in range(30))]),
                session=rng.choice([None, *(f"s{k}" for k in range(12))]),
                revenue=round(rng.uniform(1, 200), 2) if event_type == "purchase" else 0.0,
            )
        )
    return aggregate(
        facts,
        received_at_ms=D_MS + rng.randrange(-150, 150) * MIN_MS,
        rejected=rng.choice([{}, {"schema_violation": rng.randint(1, 3)}, {"malformed_json": 1, "too_large": 2}]),
        duplicates=rng.choice([0, 0, 2]),
    )


def document(store: Any, since: int, until: int) -> dict[str, Any]:
    return build_insights(store.read(since, until), since_ms=since * 1000, until_ms=until * 1000, currency="EUR")


def spread(count: int, start: int = D - 3600) -> BatchAggregate:
    """One viewed page per minute for `count` minutes from 23:00, with its own user and session, and a refusal."""
    facts = [fact(n, at_ms=(start + 60 * n) * 1000, user=f"u{n}", session=f"s{n}") for n in range(count)]
    return aggregate(facts, rejected={"too_large": 1})


def estimate(users: bytes | None) -> float | None:
    return None if users is None else float(datasketches.hll_sketch.deserialize(users).get_estimate())


def keys_of(dynamodb: Any) -> list[tuple[str, str]]:
    items = dynamodb.scan(TableName=INSIGHTS_TABLE)["Items"]
    return sorted((item["pk"]["S"], item["sk"]["S"]) for item in items)


@pytest.fixture(params=["uncached", "cached"])
def store(dynamodb: Any, request: pytest.FixtureRequest) -> DynamoInsightsStore:
    """The store read both ways: every answer must be the same with the sketch cache (GET /insights on AWS)."""
    cache = SketchCache() if request.param == "cached" else None
    store = DynamoInsightsStore(INSIGHTS_TABLE, dynamodb, backoff=NO_WAIT, sketch_cache=cache)
    return StreamedStore(store, dynamodb)  # type: ignore[return-value]  # a store whose deltas are folded at once


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteInsightsStore]:
    db = Database(tmp_path / "eventpipe.sqlite")
    yield SqliteInsightsStore(db)
    db.close()


WHOLE = (D - 3 * 3600, D + 3 * 3600)


# --- parity with the SQLite store -----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_apply_then_read_gives_the_documents_of_the_sqlite_store(
    store: DynamoInsightsStore, sqlite_store: SqliteInsightsStore, seed: int
) -> None:
    # GIVEN random batches over two days and several hours, applied to both stores
    rng = random.Random(seed)
    for number in range(8):
        batch = random_batch(rng, number)
        assert store.apply(f"b{number}", batch) is True
        assert sqlite_store.apply(f"b{number}", batch) is True
    # WHEN windows are read (across day and hour bounds, single minutes, one empty) and built
    windows = [WHOLE, (D - 3600, D + 3600), (D - 60, D), (D, D + 60), (D + 1800, D + 5400), (D - 7200, D - 7199)]
    for since, until in windows:
        # THEN the documents are the same, funnel included
        assert document(store, since, until) == document(sqlite_store, since, until), (since, until)
    # AND so are the rows, lag histograms included, and the sketches' estimates
    dynamo_rows = {row.minute: row for row in store.read(*WHOLE).minutes}
    sqlite_rows = {row.minute: row for row in sqlite_store.read(*WHOLE).minutes}
    assert sorted(dynamo_rows) == sorted(sqlite_rows)
    for minute, expected in sqlite_rows.items():
        row = dynamo_rows[minute]
        assert (row.events, row.rejected, row.duplicates, row.lag_ms) == (
            expected.events,
            expected.rejected,
            expected.duplicates,
            expected.lag_ms,
        )
        assert row.revenue == pytest.approx(expected.revenue)
        # (a minute without users has no sketch in DynamoDB, an empty one in SQLite)
        assert (estimate(row.users) or 0.0) == (estimate(expected.users) or 0.0)


@pytest.mark.parametrize("which", ["dynamodb", "sqlite"])
def test_a_read_without_the_funnel_has_the_same_minutes_and_no_funnel(
    store: DynamoInsightsStore, sqlite_store: SqliteInsightsStore, which: str
) -> None:
    # GIVEN batches with sessions applied (the export reads without the funnel: its rows are the most)
    chosen = store if which == "dynamodb" else sqlite_store
    rng = random.Random(5)
    for number in range(4):
        chosen.apply(f"b{number}", random_batch(rng, number))
    # WHEN the whole window is read with and without the funnel
    full, minutes_only = chosen.read(*WHOLE), chosen.read(*WHOLE, funnel=False)
    # THEN the minutes are the same, and only the full read counts sessions
    assert [r.minute for r in minutes_only.minutes] == [r.minute for r in full.minutes]
    assert [r.events for r in minutes_only.minutes] == [r.events for r in full.minutes]
    assert any(full.funnel)
    assert minutes_only.funnel == [0, 0, 0]


def test_items_have_the_documented_key_shapes(store: DynamoInsightsStore, dynamodb: Any) -> None:
    # GIVEN a batch with one event at 01:01 UTC of a user and a session, received at 01:02 with a duplicate
    minute = D + 3660
    batch = aggregate(
        [fact(1, at_ms=minute * 1000, user="u1", session="s#1")], received_at_ms=(minute + 60) * 1000, duplicates=1
    )
    # WHEN applied (its delta put) and folded
    store.apply("b1", batch)
    # THEN there are its delta, the hour's dirty mark, and a minute item and its counter copy per minute
    assert keys_of(dynamodb) == [
        ("delta#b1", "0"),
        ("dirty", f"{D + 3600:012d}"),
        ("minute#2026-11-28", f"{minute:012d}"),
        ("minute#2026-11-28", f"{minute + 60:012d}"),
        ("sketch#2026-11-28", f"{minute:012d}"),
        ("sketch#2026-11-28", f"{minute + 60:012d}"),
    ]

    def item(pk: str, sk: int) -> set[str]:
        return set(
            dynamodb.get_item(TableName=INSIGHTS_TABLE, Key={"pk": {"S": pk}, "sk": {"S": f"{sk:012d}"}})["Item"]
        )

    counters = {"pk", "sk", "events_page_view", "revenue", "v"}
    assert {name for name in item("minute#2026-11-28", minute) if not name.startswith("lag_")} == counters
    assert {name for name in item("sketch#2026-11-28", minute) if not name.startswith("lag_")} == {
        *counters,
        "users",
        "s0",
        "ids",
    }
    assert item("sketch#2026-11-28", minute + 60) == {"pk", "sk", "duplicates", "ids", "v"}
    # AND the funnel counts the session, and only deltas expire
    assert store.read(minute, minute + 60).funnel == [1, 0, 0]
    expiring = {
        item["pk"]["S"].split("#")[0]
        for item in dynamodb.scan(TableName=INSIGHTS_TABLE)["Items"]
        if "expires_at" in item
    }
    assert expiring == {"delta"}


def test_revenue_reads_back_as_the_float_that_was_added(store: DynamoInsightsStore) -> None:
    # GIVEN revenues that repr writes with an exponent or many digits, and two that add up in one minute
    store.apply(
        "b1", aggregate([fact(1, "purchase", revenue=1e-05), fact(2, "purchase", at_ms=D_MS + MIN_MS, revenue=1e16)])
    )
    store.apply("b2", aggregate([fact(3, "purchase", at_ms=D_MS + 2 * MIN_MS, revenue=0.1)]))
    store.apply("b3", aggregate([fact(4, "purchase", at_ms=D_MS + 2 * MIN_MS, revenue=0.2)]))
    # THEN each minute's revenue is a float, the same as written, and the sum of both
    revenue = {row.minute: row.revenue for row in store.read(D, D + 180).minutes}
    assert revenue == {D: 1e-05, D + 60: 1e16, D + 120: pytest.approx(0.3)}
    assert all(isinstance(value, float) for value in revenue.values())


def test_an_empty_or_inverted_window_reads_nothing(store: DynamoInsightsStore) -> None:
    store.apply("b1", aggregate([fact(1, session="s1")]))
    for since, until in [(D + 60, D + 120), (D, D), (D + 60, D)]:
        rows = store.read(since, until)
        assert (rows.minutes, rows.funnel) == ([], [0, 0, 0])


# --- exactly once: deltas and the fold -----------------------------------------------------------


def plain(dynamodb: Any, client: Any = None) -> DynamoInsightsStore:
    """A store whose deltas are folded only when a test hands them over (`InsightsStream`)."""
    return DynamoInsightsStore(INSIGHTS_TABLE, client or dynamodb, backoff=NO_WAIT)


def test_a_second_apply_of_a_batch_returns_false_and_counts_nothing(
    store: DynamoInsightsStore, sqlite_store: SqliteInsightsStore
) -> None:
    # GIVEN one batch applied
    batch = aggregate(
        [fact(1, user="u1", session="s1"), fact(2, "purchase", user="u1", session="s1", revenue=10.0)],
        rejected={"schema_violation": 2},
        duplicates=1,
    )
    assert store.apply("b1", batch) is True
    sqlite_store.apply("b1", batch)
    # WHEN it is applied again, and again with a fresh aggregate of the same batch
    assert store.apply("b1", batch) is False
    assert store.apply("b1", aggregate([fact(3)])) is False
    # THEN it counts once
    row = store.read(D, D + 60).minutes[0]
    assert (row.events, row.revenue, row.rejected, row.duplicates) == (
        {"page_view": 1, "purchase": 1},
        10.0,
        {"schema_violation": 2},
        1,
    )
    assert document(store, *WHOLE) == document(sqlite_store, *WHOLE)


def test_a_batch_with_nothing_to_count_writes_nothing(store: DynamoInsightsStore, dynamodb: Any) -> None:
    assert store.apply("b1", aggregate([])) is False
    assert keys_of(dynamodb) == []


def test_a_batch_over_two_hours_puts_a_delta_an_hour_and_counts_each_minute_once(
    dynamodb: Any, sqlite_store: SqliteInsightsStore
) -> None:
    # GIVEN a batch with events in 120 minutes over two days (and a refusal at its own minute, one of them)
    store, stream = plain(dynamodb), InsightsStream(dynamodb)
    batch = spread(120)
    # WHEN applied and its deltas folded
    assert store.apply("big", batch) is True
    result = store.fold_items(stream.take())
    # THEN it put one delta per UTC hour, the fold wrote each minute once and marked both hours dirty
    assert [key for key in keys_of(dynamodb) if key[0] == "delta#big"] == [("delta#big", "0"), ("delta#big", "1")]
    assert (result.deltas, result.folded, result.minutes) == (2, 120, 120)
    assert store.dirty_hours() == [(D - 3600, 1), (D, 1)]
    # AND every minute counts once, as in the SQLite store
    sqlite_store.apply("big", batch)
    rows = store.read(*WHOLE)
    assert len(rows.minutes) == 120
    assert {row.minute: row.rejected for row in rows.minutes if row.rejected} == {D: {"too_large": 1}}
    assert rows.funnel == [120, 0, 0]
    assert document(store, *WHOLE) == document(sqlite_store, *WHOLE)


def test_nothing_counts_before_the_fold_and_a_fold_writes_a_minute_once_for_many_batches(dynamodb: Any) -> None:
    # GIVEN eight batches of the same minute, their deltas put and not folded yet
    store, stream = plain(dynamodb), InsightsStream(dynamodb)
    for n in range(8):
        store.apply(f"b{n}", aggregate([fact(n * 10 + k, user=f"u{n + k}", session=f"s{n}") for k in range(10)]))
    assert store.read(D, D + 60).minutes == []
    # WHEN one fold is handed all eight
    client = ScriptedClient(dynamodb, operation="put_item")
    result = plain(dynamodb, client).fold_items(stream.take())
    # THEN the minute item and its counter copy were each written once, and the minute counts all 80 events
    assert (result.deltas, result.folded, result.minutes, client.calls) == (8, 8, 1, 2)
    [row] = store.read(D, D + 60).minutes
    assert row.events == {"page_view": 80}
    assert estimate(row.users) == pytest.approx(17)
    assert store.read(D, D + 60).funnel == [8, 0, 0]


def test_a_stream_batch_delivered_again_counts_nothing_twice(dynamodb: Any, sqlite_store: SqliteInsightsStore) -> None:
    # GIVEN three batches over three minutes and two hours, folded once
    store, stream = plain(dynamodb), InsightsStream(dynamodb)
    batches = {f"b{n}": spread(3, start=D - 120 + 60 * n) for n in range(3)}
    for batch_id, batch in batches.items():
        store.apply(batch_id, batch)
        sqlite_store.apply(batch_id, batch)
    items = stream.take()
    store.fold_items(items)
    before = document(store, *WHOLE)
    # WHEN Lambda delivers the same records again, alone and mixed with a new batch's
    assert store.fold_items(items).folded == 0
    store.apply("b3", spread(2, start=D + 60))
    sqlite_store.apply("b3", spread(2, start=D + 60))
    assert store.fold_items(items + stream.take()).folded == 3  # its two minutes and its refusal's
    # THEN every batch counts once
    assert before != document(store, *WHOLE)
    assert document(store, *WHOLE) == document(sqlite_store, *WHOLE)


def test_a_fold_that_crashed_half_way_counts_each_minute_once_when_delivered_again(
    dynamodb: Any, sqlite_store: SqliteInsightsStore
) -> None:
    # GIVEN a fold of a 4-minute batch that dies after its second minute item (before that minute's copy)
    store, stream = plain(dynamodb), InsightsStream(dynamodb)
    batch = spread(4, start=D)
    store.apply("b1", batch)
    sqlite_store.apply("b1", batch)
    items = stream.take()
    steps: list[Callable[[], object]] = [lambda: None, lambda: None, lambda: None, raising(RuntimeError("killed"))]
    crashing = plain(dynamodb, ScriptedClient(dynamodb, steps, operation="put_item"))
    with pytest.raises(RuntimeError, match="killed"):
        crashing.fold_items(items)
    # (the second minute item is written, its counter copy not: a warm read would not see it yet)
    assert store.dirty_hours() == []
    # WHEN the stream delivers the batch again
    result = store.fold_items(items)
    # THEN the two minutes done are skipped, the others counted, the missing copy written, the hour marked
    assert (result.folded, result.minutes) == (2, 2)
    assert store.dirty_hours() == [(D, 1)]
    assert document(store, *WHOLE) == document(sqlite_store, *WHOLE)
    cached = DynamoInsightsStore(INSIGHTS_TABLE, dynamodb, backoff=NO_WAIT, sketch_cache=SketchCache())
    cached.read(D, D + 240)
    assert document(cached, *WHOLE) == document(sqlite_store, *WHOLE)  # warm: through the counter copies


def test_a_batch_run_again_after_its_delta_expired_counts_nothing(dynamodb: Any) -> None:
    # GIVEN a batch applied and folded, whose delta TTL has deleted since
    store, stream = plain(dynamodb), InsightsStream(dynamodb)
    batch = aggregate([fact(1, user="u1", session="s1")], rejected={"too_large": 1})
    store.apply("b1", batch)
    store.fold_items(stream.take())
    dynamodb.delete_item(TableName=INSIGHTS_TABLE, Key={"pk": {"S": "delta#b1"}, "sk": {"S": "0"}})
    stream.delivered.clear()
    # WHEN the batch runs again (a failed MarkDone replayed days later): its delta is put and streamed again
    assert store.apply("b1", batch) is True
    assert store.fold_items(stream.take()).folded == 0
    # THEN it still counts once
    [row] = store.read(D, D + 60).minutes
    assert (row.events, row.rejected) == ({"page_view": 1}, {"too_large": 1})


def test_a_concurrent_fold_of_the_same_minute_makes_it_merge_again_and_both_count_once(
    dynamodb: Any, sqlite_store: SqliteInsightsStore
) -> None:
    # GIVEN b1 and b2 with different users and sessions in the same minute, folded by two invocations
    # (two stream shards), b2's fold writing between b1's fold's read and write of the minute item
    b1 = aggregate([fact(n, user=f"u{n}", session="s1") for n in range(50)], rejected={"too_large": 1})
    b2 = aggregate([fact(100 + n, user=f"v{n}", session="s2") for n in range(30)], duplicates=2)
    store, stream = plain(dynamodb), InsightsStream(dynamodb)
    store.apply("b1", b1)
    first = stream.take()
    store.apply("b2", b2)
    second = stream.take()
    client = ScriptedClient(dynamodb, [lambda: store.fold_items(second)], operation="put_item")
    # WHEN b1's fold runs
    assert plain(dynamodb, client).fold_items(first).folded == 1
    # THEN its first write failed on the version, and the second merged both batches'
    assert client.calls == 3  # minute item (refused), minute item, counter copy
    row = store.read(D, D + 60).minutes[0]
    assert row.events == {"page_view": 80}
    assert (row.rejected, row.duplicates) == ({"too_large": 1}, 2)
    assert document(store, *WHOLE)["totals"]["unique_users"] == 80
    assert document(store, *WHOLE)["funnel"] == {"page_view": 2, "add_to_cart": 0, "purchase": 0}
    sqlite_store.apply("b2", b2)
    sqlite_store.apply("b1", b1)
    assert document(store, *WHOLE) == document(sqlite_store, *WHOLE)


def test_batches_of_one_minute_add_up_in_one_minute_item_and_one_counter_item(
    store: DynamoInsightsStore, sqlite_store: SqliteInsightsStore, dynamodb: Any
) -> None:
    # GIVEN eight batches, all in the minute D, with overlapping users, a purchase of 0.1 and refusals
    batches = {
        f"b{n}": aggregate(
            [fact(n * 100 + k, user=f"u{n + k}") for k in range(10)]
            + [fact(n * 100 + 99, "purchase", user=f"u{n}", revenue=0.1)],
            rejected={"too_large": 1},
            duplicates=n,
        )
        for n in range(8)
    }
    # WHEN they are applied and folded one by one
    for batch_id, batch in batches.items():
        assert store.apply(batch_id, batch) is True
        sqlite_store.apply(batch_id, batch)
    # THEN the minute is one item of each kind, whatever the number of batches
    assert [key for key in keys_of(dynamodb) if not key[0].startswith("delta#")] == [
        ("dirty", f"{D:012d}"),
        ("minute#2026-11-28", f"{D:012d}"),
        ("sketch#2026-11-28", f"{D:012d}"),
    ]
    # AND it reads back with counts added, the users the union of all batches' users
    [row] = store.read(D, D + 60).minutes
    assert (row.minute, row.events) == (D, {"page_view": 80, "purchase": 8})
    assert (row.rejected, row.duplicates) == ({"too_large": 8}, sum(range(8)))
    assert sum(row.lag_ms.values()) == 88
    # (added as decimals: as floats, 0.1 eight times is 0.7999999999999999)
    assert row.revenue == 0.8
    assert estimate(row.users) == pytest.approx(17)
    assert store.dirty_hours() == [(D, 8)]
    assert document(store, *WHOLE) == document(sqlite_store, *WHOLE)


@pytest.mark.parametrize("events", [10, 0], ids=["with-sketches", "refusals-only"])
def test_a_concurrent_apply_of_the_same_batch_counts_once(dynamodb: Any, events: int) -> None:
    # GIVEN a second worker that puts the same batch's delta just before this one
    batch = aggregate([fact(n, user=f"u{n}") for n in range(events)], rejected={"too_large": 3})
    other, stream = plain(dynamodb), InsightsStream(dynamodb)
    results: list[bool] = []
    client = ScriptedClient(dynamodb, [lambda: results.append(other.apply("b1", batch))], operation="put_item")
    # WHEN this worker applies it
    applied = plain(dynamodb, client).apply("b1", batch)
    other.fold_items(stream.take())
    # THEN exactly one of them put it, and it counts once
    assert (results, applied) == ([True], False)
    row = other.read(D, D + 60).minutes[0]
    assert (row.events, row.rejected) == ({"page_view": events} if events else {}, {"too_large": 3})


@pytest.mark.parametrize(
    "error", [client_error("ThrottlingException"), client_error("ProvisionedThroughputExceededException")]
)
def test_a_throttled_put_or_fold_is_retried_and_counts_once(dynamodb: Any, error: ClientError) -> None:
    # GIVEN puts that are throttled once each, beyond botocore's own retries
    client = ScriptedClient(dynamodb, [raising(error)], operation="put_item")
    store, stream = plain(dynamodb, client), InsightsStream(dynamodb)
    # WHEN a batch is applied and folded
    assert store.apply("b1", aggregate([fact(1, user="u1"), fact(2, at_ms=D_MS + MIN_MS, user="u1")])) is True
    client.script = [raising(error)]
    store.fold_items(stream.take())
    # THEN each was tried again, and counts once
    assert [row.events for row in store.read(D, D + 120).minutes] == [{"page_view": 1}, {"page_view": 1}]


@pytest.mark.parametrize("error", [client_error("ValidationException"), client_error("AccessDeniedException")])
def test_an_error_that_is_not_transient_is_a_storage_error(dynamodb: Any, error: ClientError) -> None:
    client = ScriptedClient(dynamodb, [raising(error)], operation="put_item")
    with pytest.raises(StorageError, match="cannot apply batch b1") as caught:
        plain(dynamodb, client).apply("b1", aggregate([fact(1)]))
    assert caught.value.__cause__ is error
    assert keys_of(dynamodb) == []
    store, stream = plain(dynamodb), InsightsStream(dynamodb)
    store.apply("b1", aggregate([fact(1)]))
    client.script = [raising(error)]
    with pytest.raises(StorageError, match="cannot fold insights into minute"):
        plain(dynamodb, client).fold_items(stream.take())


def test_conflicts_that_outlast_the_backoff_are_a_storage_error(dynamodb: Any) -> None:
    # GIVEN a minute that another fold writes before every write of this one
    backoff = Backoff(attempts=3, sleep=lambda _seconds: None)
    other, stream = plain(dynamodb), InsightsStream(dynamodb)
    other.apply("b1", aggregate([fact(1)]))
    items = stream.take()
    other.fold_items(items)

    def bump() -> None:
        dynamodb.update_item(
            TableName=INSIGHTS_TABLE,
            Key={"pk": {"S": "sketch#2026-11-28"}, "sk": {"S": f"{D:012d}"}},
            UpdateExpression="ADD v :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    client = ScriptedClient(dynamodb, [bump] * 5, operation="put_item")
    other.apply("b2", aggregate([fact(2)]))
    store = DynamoInsightsStore(INSIGHTS_TABLE, client, backoff=backoff)
    # THEN the fold gives up after the backoff's tries
    with pytest.raises(StorageError, match="3 tries"):
        store.fold_items(stream.take())
    assert client.calls == 3


def test_a_missing_table_is_a_storage_error(dynamodb: Any) -> None:
    store = DynamoInsightsStore("no-such-table", dynamodb, backoff=NO_WAIT)
    with pytest.raises(StorageError, match="ResourceNotFoundException"):
        store.read(D, D + 60)
    with pytest.raises(StorageError, match="ResourceNotFoundException"):
        store.apply("b2", aggregate([fact(2)]))


def test_a_stream_event_of_lambda_folds_only_the_deltas_inserted(dynamodb: Any) -> None:
    # GIVEN a Lambda event with a delta insert (binary in base64), and records the filter would drop
    from eventpipe.adapters.aws.insights_delta import stream_deltas

    store = plain(dynamodb)
    store.apply("b1", aggregate([fact(1, user="u1", session="s1")]))
    event = stream_event(InsightsStream(dynamodb).take())
    removed = {**event["Records"][0], "eventName": "REMOVE"}
    other = {**event["Records"][0], "dynamodb": {"NewImage": {"pk": {"S": "sketch#x"}, "sk": {"S": "1"}}}}
    # WHEN its deltas are folded
    deltas = stream_deltas([*event["Records"], removed, other])
    # THEN only the insert is, and it counts
    assert len(deltas) == 1
    store.fold(deltas)
    assert [row.events for row in store.read(D, D + 60).minutes] == [{"page_view": 1}]


# --- dirty hours and the read's retries -------------------------------------------------------------


def test_a_dirty_hour_is_cleared_only_at_the_version_the_export_read(store: DynamoInsightsStore) -> None:
    # GIVEN an hour changed by one batch, read by the export, then changed again
    store.apply("b1", aggregate([fact(1)]))
    [(hour, version)] = store.dirty_hours()
    store.apply("b2", aggregate([fact(2, at_ms=D_MS + MIN_MS)]))
    # THEN clearing it at the version read fails, and it stays dirty at the newer version
    assert store.clear_dirty(hour, version) is False
    assert store.dirty_hours() == [(D, version + 1)]
    # AND clearing at the current version forgets it; a later apply marks it again
    assert store.clear_dirty(D, version + 1) is True
    assert store.dirty_hours() == []
    assert store.clear_dirty(D, version + 1) is False
    store.apply("b3", aggregate([fact(3)]))
    assert store.dirty_hours() == [(D, 1)]


def test_a_throttled_query_is_retried(dynamodb: Any) -> None:
    # GIVEN a read whose first Query is throttled beyond botocore's own retries
    store_writes = StreamedStore(plain(dynamodb), dynamodb)
    store_writes.apply("b1", aggregate([fact(1, user="u1", session="s1")]))
    client = ScriptedClient(dynamodb, [raising(client_error("ProvisionedThroughputExceededException"))], "query")
    store = DynamoInsightsStore(INSIGHTS_TABLE, client, backoff=NO_WAIT)
    # WHEN it is read THEN the Query is tried again and the read is whole
    rows = store.read(D, D + 60)
    assert [row.events for row in rows.minutes] == [{"page_view": 1}]
    assert rows.funnel == [1, 0, 0]
    assert client.calls >= 2
    # AND an error that is not throttling is a StorageError at once
    client = ScriptedClient(dynamodb, [raising(client_error("ValidationException"))], "query")
    with pytest.raises(StorageError, match="cannot read insights"):
        DynamoInsightsStore(INSIGHTS_TABLE, client, backoff=NO_WAIT).read(D, D + 60)
