"""The collection edge on AWS, under moto: apps in DynamoDB, the ingest function's key check (its
cached directory standing in for an authorizer), CORS, app attribution and the request's address
through Step Functions to the curated items."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.adapters.aws.dynamodb_apps import DynamoAppStore
from eventpipe.adapters.aws.dynamodb_curated import decompress_payload
from eventpipe.core.apps import AppDirectory, new_app
from eventpipe.core.errors import StorageError
from tests.aws.conftest import APPS_TABLE, CURATED_TABLE
from tests.aws.pipeline_harness import Pipeline, load_pipeline
from tests.conftest import NOW_MS, make_event

if TYPE_CHECKING:
    from eventpipe.core.apps import App

EVENTS = Path(__file__).parents[1] / "events"
SITE = "https://shop.example"


@pytest.fixture
def pipeline(dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    return load_pipeline(monkeypatch)


@pytest.fixture
def store(dynamodb: Any) -> DynamoAppStore:
    return DynamoAppStore(APPS_TABLE, dynamodb)


def create(store: DynamoAppStore, name: str, origins: tuple[str, ...] = ()) -> tuple[App, str]:
    app, key = new_app(name, origins=origins, now_ms=NOW_MS)
    store.create(app)
    return app, key


def post(
    events: list[dict[str, Any]],
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    method: str = "POST",
    source_ip: str = "198.51.100.23",
) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "apigw_http_v2_post_events.json").read_text())
    event.update(rawPath="/events", routeKey=f"{method} /events", body=orjson.dumps(events).decode())
    event["isBase64Encoded"] = False
    event["headers"] = {"content-type": "application/json", **(headers or {})}
    event["queryStringParameters"] = query
    event["requestContext"]["http"].update(method=method, path="/events", sourceIp=source_ip)
    return event


def curated_item(dynamodb: Any, event_id: str) -> dict[str, Any]:
    item = dynamodb.get_item(TableName=CURATED_TABLE, Key={"event_id": {"S": event_id}}).get("Item")
    assert item is not None, event_id
    payload: dict[str, Any] = orjson.loads(decompress_payload(item["payload"]["B"]))
    return payload


def test_the_apps_table_round_trip(store: DynamoAppStore) -> None:
    assert not store.any_app()
    app, _ = create(store, "shop", (SITE,))
    other, _ = create(store, "other")
    assert store.any_app()
    assert store.by_key_hash(app.key_hash) == app
    assert store.by_key_hash("0" * 64) is None
    assert {a.app_id for a in store.list_all()} == {app.app_id, other.app_id}
    assert store.revoke(app.app_id, NOW_MS + 5)
    assert store.revoke(app.app_id, NOW_MS + 9)  # again: the first time stays
    revoked = store.by_key_hash(app.key_hash)
    assert revoked is not None
    assert revoked.revoked_at_ms == NOW_MS + 5
    assert not store.revoke("app_0000000000000000", NOW_MS)


def test_a_missing_table_is_a_storage_error_so_the_answer_is_503(dynamodb: Any) -> None:
    with pytest.raises(StorageError):
        DynamoAppStore("no-such-table", dynamodb).by_key_hash("0" * 64)


def test_a_browser_sends_with_a_key_and_its_events_are_the_apps(
    pipeline: Pipeline, store: DynamoAppStore, dynamodb: Any
) -> None:
    # GIVEN an app for SITE and another, and events without context, one claiming the other app
    shop, key = create(store, "shop", (SITE,))
    other, _ = create(store, "other")
    sent = [make_event(app_id=other.app_id), make_event()]
    for event in sent:
        event.pop("context")
    # WHEN the page preflights, then posts with the key (API Gateway's sourceIp is the browser's)
    preflight = pipeline.invoke("ingest", post([], method="OPTIONS", headers={"origin": SITE}))
    headers = {"x-api-key": key, "origin": SITE, "user-agent": "Mozilla/5.0 (Macintosh) Version/17.0 Safari/605.1"}
    response = pipeline.invoke("ingest", post(sent, headers=headers, source_ip="198.51.100.23"))
    pipeline.drain()
    # THEN the preflight allows it, the POST's answer is readable there, and both events are shop's
    assert preflight["statusCode"] == 204
    assert preflight["headers"]["access-control-allow-origin"] == SITE
    assert "x-api-key" in preflight["headers"]["access-control-allow-headers"]
    assert response["statusCode"] == 202, response
    assert response["headers"]["access-control-allow-origin"] == SITE
    for event in sent:
        item = curated_item(dynamodb, event["event_id"])
        assert item["app_id"] == shop.app_id
        assert item["enrichment"]["ip"] == "198.51.100.0"
        assert "ip" not in item["context"]
        assert item["enrichment"]["user_agent"]["browser"] == "Safari"


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        pytest.param({}, None, 401, id="no-key"),
        pytest.param({"x-api-key": "epk_wrong"}, None, 401, id="wrong-key"),
        pytest.param({}, {"key": "epk_wrong"}, 401, id="wrong-query-key"),
        pytest.param({"origin": "https://evil.example"}, None, 403, id="origin-not-allowed"),
    ],
)
def test_what_ingest_refuses(
    pipeline: Pipeline,
    store: DynamoAppStore,
    dynamodb: Any,
    headers: dict[str, str],
    query: dict[str, str] | None,
    status: int,
) -> None:
    _, key = create(store, "shop", (SITE,))
    if status == 403:
        headers = {**headers, "x-api-key": key}
    response = pipeline.invoke("ingest", post([make_event()], headers=headers, query=query))
    assert response["statusCode"] == status
    assert orjson.loads(response["body"])["error"] in ("unauthorized", "forbidden")
    assert pipeline.drain() == []
    assert dynamodb.scan(TableName=CURATED_TABLE)["Count"] == 0


def test_the_beacon_form_key_in_the_query_as_text(pipeline: Pipeline, store: DynamoAppStore, dynamodb: Any) -> None:
    shop, key = create(store, "shop")
    sent = [make_event()]
    response = pipeline.invoke(
        "ingest", post(sent, headers={"content-type": "text/plain;charset=UTF-8"}, query={"key": key})
    )
    pipeline.drain()
    assert response["statusCode"] == 202
    assert curated_item(dynamodb, sent[0]["event_id"])["app_id"] == shop.app_id


def test_without_apps_the_rules_of_before_hold(pipeline: Pipeline, dynamodb: Any) -> None:
    sent = [make_event()]
    assert pipeline.invoke("ingest", post(sent))["statusCode"] == 202
    pipeline.drain()
    assert "app_id" not in curated_item(dynamodb, sent[0]["event_id"])


def test_the_directory_reads_a_key_once_per_ttl_and_then_sees_the_revocation(
    store: DynamoAppStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the ingest function's directory (60 s cache) and an app
    app, key = create(store, "shop")
    clock = [1000.0]
    monkeypatch.setattr("eventpipe.core.apps.time.monotonic", lambda: clock[0])
    directory = AppDirectory(store, ttl_s=60)
    reads = []
    original = store.by_key_hash
    monkeypatch.setattr(store, "by_key_hash", lambda h: reads.append(h) or original(h))
    # WHEN a burst of requests carries the key THEN the table is read once
    assert all(directory.authenticate(key) == app for _ in range(50))
    assert len(reads) == 1
    # WHEN the app is revoked THEN the key still works until the cache entry expires, then never
    store.revoke(app.app_id, NOW_MS)
    assert directory.authenticate(key) == app
    clock[0] += 61
    assert directory.authenticate(key) is None


def test_geo_and_bots_on_aws(dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.unit.test_enrich_geo import write_city_db

    # GIVEN the functions with a GeoIP database (a Lambda layer's file, on AWS)
    database = write_city_db(tmp_path / "city.mmdb")
    pipeline = load_pipeline(monkeypatch, EVENTPIPE_GEOIP_DB=str(database))
    sent = [make_event(), make_event()]
    for event in sent:
        event.pop("context")
    # WHEN a crawler in Paris and a person in Berlin send
    bot = {"user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}
    pipeline.invoke("ingest", post(sent[:1], headers=bot, source_ip="198.51.100.9"))
    pipeline.invoke(
        "ingest", post(sent[1:], headers={"user-agent": "Mozilla/5.0 Firefox/133.0"}, source_ip="203.0.113.5")
    )
    pipeline.drain()
    # THEN each curated item has its place and bot flag
    crawler, person = (curated_item(dynamodb, e["event_id"]) for e in sent)
    assert (crawler["enrichment"]["geo"]["country"], crawler["enrichment"]["bot"]) == ("FR", True)
    assert (person["enrichment"]["geo"]["country"], person["enrichment"]["bot"]) == ("DE", False)


def test_a_forwarded_for_header_changes_nothing_on_aws(
    pipeline: Pipeline, store: DynamoAppStore, dynamodb: Any
) -> None:
    # GIVEN a client that writes its own X-Forwarded-For (API Gateway's sourceIp is the connection's)
    _, key = create(store, "shop")
    sent = [make_event()]
    sent[0].pop("context")
    headers = {"x-api-key": key, "x-forwarded-for": "192.0.2.77"}
    assert pipeline.invoke("ingest", post(sent, headers=headers, source_ip="198.51.100.23"))["statusCode"] == 202
    pipeline.drain()
    assert curated_item(dynamodb, sent[0]["event_id"])["enrichment"]["ip"] == "198.51.100.0"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        pytest.param([make_event() for _ in range(600)], "application/json", 413, id="thousands-of-events"),
        pytest.param([make_event()], "multipart/form-data; boundary=x", 415, id="beacon-form-body"),
        pytest.param("{not json", "text/plain", 400, id="beacon-garbage"),
    ],
)
def test_bad_bodies_with_a_good_key_are_4xx(
    pipeline: Pipeline, store: DynamoAppStore, body: Any, content_type: str, status: int
) -> None:
    _, key = create(store, "shop")
    event = post([], headers={"x-api-key": key, "content-type": content_type})
    event["body"] = body if isinstance(body, str) else orjson.dumps(body).decode()
    response = pipeline.invoke("ingest", event)
    assert response["statusCode"] == status, response["body"]
    assert pipeline.drain() == []
