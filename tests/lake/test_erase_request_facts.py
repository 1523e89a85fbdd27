"""Erasure and the request facts of raw batches: the address and user agent of a request that carried
the erased user's events go with them, from a single request's batch and from a group's headers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from eventpipe.core.rawbatch import RawBatch, store_raw
from eventpipe.core.request_facts import RequestFacts
from eventpipe.erasure import rewrite
from eventpipe.erasure.run import erase_user
from eventpipe.erasure.target import ErasureTarget
from tests.conftest import make_event
from tests.lake.test_erase import files_holding

if TYPE_CHECKING:
    from eventpipe.localrun.runtime import LocalRuntime

VICTIM = "victim-77c1"
VICTIM_IP = "203.0.113.77"
VICTIM_UA = "VictimBrowser/7.7"
OTHER_IP = "198.51.100.4"
OTHER_UA = "OtherBrowser/1.0"


def line(user_id: str) -> bytes:
    event = make_event(user_id=user_id)
    del event["context"]  # the request's facts fill it in
    return orjson.dumps(event)


def group() -> RawBatch:
    """Three requests: the victim's, another user's, and one shared by both (same app, one device)."""
    return RawBatch(
        batch_id="g-test",
        source="group",
        received_at_ms=1,
        events=[line(VICTIM), line(VICTIM), line("other-1"), line("other-2"), line(VICTIM)],
        positions=[0, 1, 0, 0, 1],
        requests=[
            (0, RequestFacts(app_id="app-1", ip=VICTIM_IP, user_agent=VICTIM_UA)),
            (2, RequestFacts(app_id="app-1", ip=OTHER_IP, user_agent=OTHER_UA)),
            (3, RequestFacts(app_id="app-1", ip="192.0.2.33", user_agent="Shared/2")),
        ],
        members=[("q-1", 0), ("q-2", 2), ("q-3", 3)],
    )


def test_a_group_loses_the_facts_of_the_requests_that_carried_the_users_events() -> None:
    # WHEN the victim's events are erased from a group's raw object
    data = rewrite.raw_batch(group().encode(), ErasureTarget.of([VICTIM], [], None))
    assert data is not None
    batch = RawBatch.decode(data)
    # THEN the other users' events stay, each still with its own request's facts where it was alone
    assert [orjson.loads(e)["user_id"] for e in batch.events] == ["other-1", "other-2"]
    assert batch.requests == [
        (0, RequestFacts(app_id="app-1")),  # the victim's request: no event left, no address, no agent
        (0, RequestFacts(app_id="app-1", ip=OTHER_IP, user_agent=OTHER_UA)),
        (1, RequestFacts(app_id="app-1")),  # shared with the victim: address and agent go, the app stays
    ]
    assert [f.app_id for f in batch.facts_by_event()] == ["app-1", "app-1"]
    assert batch.facts_by_event()[0].ip == OTHER_IP
    assert batch.members == [("q-1", 0), ("q-2", 0), ("q-3", 1)]
    assert VICTIM_IP.encode() not in data
    assert VICTIM_UA.encode() not in data


def test_a_single_requests_batch_loses_its_facts_with_the_users_events() -> None:
    batch = RawBatch(
        "h-one",
        "http",
        1,
        events=[line(VICTIM), line("other-1")],
        positions=[0, 1],
        request=RequestFacts(app_id="app-1", ip=VICTIM_IP, user_agent=VICTIM_UA),
    )
    data = rewrite.raw_batch(batch.encode(), ErasureTarget.of([VICTIM], [], None))
    assert data is not None
    assert RawBatch.decode(data).request == RequestFacts(app_id="app-1")


def test_a_batch_without_the_users_events_keeps_its_facts() -> None:
    batch = RawBatch("h-two", "http", 1, events=[line("other-1")], positions=[0], request=RequestFacts(ip=OTHER_IP))
    assert rewrite.raw_batch(batch.encode(), ErasureTarget.of([VICTIM], [], None)) is None


def test_eventpipe_erase_leaves_no_file_with_the_users_address_or_agent(runtime: LocalRuntime) -> None:
    # GIVEN a group's raw object in the raw bucket, and the group curated (its events in the curated store)
    store_raw(runtime.bucket, group())
    data_dir = runtime.settings.data_dir
    assert files_holding(data_dir, VICTIM_IP, VICTIM_UA)
    # WHEN the user is erased
    erase_user(runtime, [VICTIM], [])
    # THEN no file of the data directory holds the address or the agent of the user's requests
    assert files_holding(data_dir, VICTIM_IP, VICTIM_UA) == []
    assert files_holding(data_dir, OTHER_IP, OTHER_UA)  # another user's stay
