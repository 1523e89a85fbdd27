"""The `CuratedStore` port's contract (core/ports.py), on every backend."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.contract.conftest import Stores


def uid(n: int) -> str:
    return str(uuid.UUID(int=n))


def test_put_new_stores_new_events_and_flags_duplicates_of_other_batches(stores: Stores) -> None:
    # GIVEN batch b1 with two events
    assert stores.curated.put_new("b1", [(uid(1), "page_view", b"p1"), (uid(2), "purchase", b"p2")]) == [True, True]
    # WHEN batch b2 repeats one of them and adds a new one
    flags = stores.curated.put_new("b2", [(uid(2), "purchase", b"p2-again"), (uid(3), "signup", b"p3")])
    # THEN only the new one is new, and the repeat stays the first batch's
    assert flags == [False, True]
    assert stores.stored_types() == {"page_view": 1, "purchase": 1, "signup": 1}
    assert stores.curated.owners([uid(1), uid(2), uid(3), uid(4)]) == {uid(1): "b1", uid(2): "b1", uid(3): "b2"}


def test_the_same_id_twice_in_one_batch_is_new_once_at_its_first_position(stores: Stores) -> None:
    flags = stores.curated.put_new(
        "b1", [(uid(1), "page_view", b"first"), (uid(2), "page_view", b"x"), (uid(1), "signup", b"2")]
    )
    assert flags == [True, True, False]
    assert stores.stored_types() == {"page_view": 2}  # the first one's type


def test_a_retried_batch_gets_the_same_flags_and_stores_nothing_twice(stores: Stores) -> None:
    # GIVEN an event stored by another batch, then a batch with new, duplicate and repeated ids
    stores.curated.put_new("b0", [(uid(9), "page_view", b"p9")])
    batch = [
        (uid(1), "page_view", b"p1"),
        (uid(9), "page_view", b"p9"),
        (uid(1), "page_view", b"p1"),
        (uid(2), "signup", b"p2"),
    ]
    first = stores.curated.put_new("b1", batch)
    # WHEN the same batch is put again (a retried step), twice
    second = stores.curated.put_new("b1", batch)
    third = stores.curated.put_new("b1", batch)
    # THEN every try answers the same, and each event is stored once
    assert first == [True, False, False, True]
    assert second == first
    assert third == first
    assert stores.stored_types() == {"page_view": 2, "signup": 1}


def test_upper_and_lower_case_ids_are_the_same_event(stores: Stores) -> None:
    # GIVEN an event id in upper case
    event_id = "7F0C3A4E-1F7E-4B8E-9A55-2E0F6F9D1C11"
    assert stores.curated.put_new("b1", [(event_id, "page_view", b"upper")]) == [True]
    # WHEN the lower-case id comes in another batch, or both cases in one batch
    assert stores.curated.put_new("b2", [(event_id.lower(), "page_view", b"lower")]) == [False]
    assert stores.curated.put_new("b3", [(uid(5).upper(), "signup", b"a"), (uid(5), "signup", b"b")]) == [True, False]
    # THEN each is one event, its owner found by either case, under the lower-case id
    assert stores.stored_types() == {"page_view": 1, "signup": 1}
    assert stores.curated.owners([event_id, uid(5).upper()]) == {event_id.lower(): "b1", uid(5): "b3"}


def test_an_empty_store_and_an_empty_batch(stores: Stores) -> None:
    assert stores.stored_types() == {}
    assert stores.curated.owners([uid(1)]) == {}
    assert stores.curated.owners([]) == {}
    assert stores.curated.put_new("b0", []) == []
    assert stores.stored_types() == {}


def test_a_thousand_events_in_one_call_get_their_own_flags(stores: Stores) -> None:
    # GIVEN every third event of the batch stored already by another batch
    stores.curated.put_new("b0", [(uid(n), "signup", b"{}") for n in range(0, 1000, 3)])
    # WHEN a batch of 1,000 events (past SQLite's variable limit, many times a thread's share) is put
    flags = stores.curated.put_new("b1", [(uid(n), ("page_view", "purchase")[n % 2], b"{}") for n in range(1000)])
    # THEN each flag is at its event's position, and every event is stored once
    assert flags == [n % 3 != 0 for n in range(1000)]
    assert sum(stores.stored_types().values()) == 1000
    owners = stores.curated.owners([uid(n) for n in range(1000)])
    assert owners == {uid(n): "b0" if n % 3 == 0 else "b1" for n in range(1000)}
