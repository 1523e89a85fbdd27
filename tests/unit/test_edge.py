"""The collection edge (handlers/edge.py, core/apps.py, core/request_facts.py) on the local runtime:
write keys, app attribution, CORS and the request's own address and user agent, driven by API
Gateway HTTP API events as `eventpipe up` and AWS make them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.adapters.local import SqliteAppStore
from eventpipe.core.apps import App, AppDirectory, hash_key, new_app, normalise_origin
from eventpipe.core.request_facts import RequestFacts
from eventpipe.handlers.http_api import handle_http
from tests.conftest import NOW_MS, make_event

if TYPE_CHECKING:
    from eventpipe.localrun.runtime import LocalRuntime

EVENTS = Path(__file__).parents[1] / "events"
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
)


def request(
    method: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    source_ip: str = "198.51.100.23",
    path: str = "/events",
) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "apigw_http_v2_post_events.json").read_text())
    text = body if body is None or isinstance(body, str) else orjson.dumps(body).decode()
    event.update(rawPath=path, routeKey="$default", body=text, isBase64Encoded=False)
    event["headers"] = {"content-type": "application/json", **(headers or {})}
    event["queryStringParameters"] = query
    event["requestContext"]["http"].update(method=method, path=path, sourceIp=source_ip)
    return event


def answer(runtime: LocalRuntime, event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    response = handle_http(event, runtime)
    body = orjson.loads(response["body"]) if response["body"] else None
    return response["statusCode"], response["headers"], body


def create_app(runtime: LocalRuntime, name: str = "shop", origins: tuple[str, ...] = ()) -> tuple[App, str]:
    app, key = new_app(name, origins=origins, now_ms=NOW_MS)
    SqliteAppStore(runtime.db).create(app)
    return app, key


def curated(runtime: LocalRuntime, event_id: str) -> dict[str, Any]:
    payload = runtime.curated.get(event_id)
    assert payload is not None, f"{event_id} is not curated"
    document: dict[str, Any] = orjson.loads(payload)
    return document


def test_without_apps_today_rules_hold(runtime: LocalRuntime) -> None:
    # GIVEN no app was created WHEN an event is posted without a key THEN it is accepted, as before
    event = make_event()
    status, _, body = answer(runtime, request("POST", body=event))
    assert (status, body["received"]) == (202, 1)
    assert "app_id" not in curated(runtime, event["event_id"])


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        pytest.param({}, None, id="missing"),
        pytest.param({"x-api-key": "epk_not-a-key"}, None, id="unknown-header"),
        pytest.param({}, {"key": "epk_not-a-key"}, id="unknown-query"),
        pytest.param({"x-api-key": ""}, None, id="empty"),
        pytest.param({"x-api-key": "k" * 5000}, None, id="huge"),
    ],
)
def test_once_an_app_exists_a_valid_key_is_required(
    runtime: LocalRuntime, headers: dict[str, str], query: dict[str, str] | None
) -> None:
    # GIVEN an app WHEN a request has no key, or one that is not an app's THEN 401, nothing is stored
    create_app(runtime)
    status, _, body = answer(runtime, request("POST", body=make_event(), headers=headers, query=query))
    assert status == 401
    assert body["error"] == "unauthorized"
    assert body["message"]
    assert runtime.batches.unfinished() == []
    assert runtime.curated.count() == 0


def test_a_key_is_checked_even_before_any_app_exists(runtime: LocalRuntime) -> None:
    # GIVEN no app WHEN a request sends a key THEN it is checked like any other: unknown, 401
    status, _, body = answer(runtime, request("POST", body=make_event(), headers={"x-api-key": "epk_guess"}))
    assert (status, body["error"]) == (401, "unauthorized")


def test_a_revoked_key_is_refused(runtime: LocalRuntime) -> None:
    app, key = create_app(runtime)
    assert answer(runtime, request("POST", body=make_event(), headers={"x-api-key": key}))[0] == 202
    # WHEN the app is revoked THEN its key is refused at once (the local directory has no cache)
    assert SqliteAppStore(runtime.db).revoke(app.app_id, NOW_MS + 1)
    status, _, body = answer(runtime, request("POST", body=make_event(), headers={"x-api-key": key}))
    assert (status, body["error"]) == (401, "unauthorized")


@pytest.mark.parametrize("where", ["header", "query"])
def test_every_event_carries_its_keys_app_id(runtime: LocalRuntime, where: str) -> None:
    # GIVEN two apps, and events that claim the other app (or a made-up one)
    shop, key = create_app(runtime, "shop")
    other, _ = create_app(runtime, "other")
    events = [make_event(app_id=other.app_id), make_event(app_id="app_forged"), make_event()]
    headers = {"x-api-key": key} if where == "header" else {}
    query = {"key": key} if where == "query" else None
    # WHEN sent with shop's key
    status, _, body = answer(runtime, request("POST", body=events, headers=headers, query=query))
    # THEN every one of them is curated as shop's
    assert (status, body["received"], body["rejected"]) == (202, 3, 0)
    assert {curated(runtime, e["event_id"])["app_id"] for e in events} == {shop.app_id}


def test_a_rejected_event_keeps_its_app_for_a_replay(runtime: LocalRuntime) -> None:
    # GIVEN an event its schema refuses, sent with a key
    shop, key = create_app(runtime)
    bad = make_event(properties={"title": "no path"}, app_id="app_forged")
    answer(runtime, request("POST", body=bad, headers={"x-api-key": key}))
    # THEN the quarantine keeps it under the key's app, so a replay after a schema fix curates it there
    [record] = list(runtime.quarantine.iter_all())
    assert orjson.loads(record.raw)["app_id"] == shop.app_id


def test_origins_of_an_app(runtime: LocalRuntime) -> None:
    # GIVEN an app that accepts one origin, and one that accepts any
    _, shop_key = create_app(runtime, "shop", origins=("https://shop.example",))
    _, open_key = create_app(runtime, "open")

    def post(key: str, origin: str | None) -> tuple[int, dict[str, str], Any]:
        headers = {"x-api-key": key, **({"origin": origin} if origin else {})}
        return answer(runtime, request("POST", body=make_event(), headers=headers))

    # WHEN the shop's key comes from its origin (in any spelling) THEN accepted, the answer readable there
    status, headers, _ = post(shop_key, "https://SHOP.example:443")
    assert status == 202
    assert headers["access-control-allow-origin"] == "https://SHOP.example:443"
    # from another origin, or from "null": 403, nothing stored
    for origin in ("https://evil.example", "null", "https://shop.example.evil.example"):
        status, headers, body = post(shop_key, origin)
        assert (status, body["error"]) == (403, "forbidden"), origin
    # without Origin (not a browser's script): accepted
    assert post(shop_key, None)[0] == 202
    # the open app accepts any origin
    assert post(open_key, "https://anywhere.example")[0] == 202
    assert runtime.batches.unfinished() == []
    assert runtime.curated.count() == 3


def test_preflight(runtime: LocalRuntime) -> None:
    # GIVEN apps exist (a preflight never carries a key) WHEN a browser preflights POST /events
    create_app(runtime, origins=("https://shop.example",))
    headers = {
        "origin": "https://shop.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-api-key",
    }
    response = handle_http(request("OPTIONS", headers=headers, body=None), runtime)
    # THEN 204, no body, and the headers that let it send
    assert (response["statusCode"], response["body"]) == (204, "")
    cors = response["headers"]
    assert cors["access-control-allow-origin"] == "https://shop.example"
    assert "POST" in cors["access-control-allow-methods"]
    allowed = {h.strip() for h in cors["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-api-key"} <= allowed
    assert "content-type" not in {k.lower() for k in cors if k == "content-type"}


def test_errors_carry_cors_so_a_page_can_read_them(runtime: LocalRuntime) -> None:
    create_app(runtime)
    status, headers, _ = answer(runtime, request("POST", body=make_event(), headers={"origin": "https://a.example"}))
    assert status == 401
    assert headers["access-control-allow-origin"] == "https://a.example"


def test_reading_routes_never_take_a_write_key(runtime: LocalRuntime) -> None:
    # GIVEN a key WHEN it is sent to a reading route THEN the answer is the route's own, with no CORS for pages
    _, key = create_app(runtime)
    event = request("GET", path="/insights", headers={"x-api-key": key, "origin": "https://a.example"})
    status, headers, _ = answer(runtime, event)
    assert status == 200
    assert "access-control-allow-origin" not in headers


def test_the_request_fills_ip_and_user_agent(runtime: LocalRuntime) -> None:
    # GIVEN one event without ip and user agent, and one with its own
    bare = make_event(context={"page_url": "https://shop.example/"})
    own = make_event()
    headers = {"user-agent": BROWSER_UA}
    # WHEN sent from 198.51.100.23
    answer(runtime, request("POST", body=[bare, own], headers=headers, source_ip="198.51.100.23"))
    # THEN the bare one has the request's (anonymised: the raw address is never stored)
    first = curated(runtime, bare["event_id"])
    assert first["enrichment"]["ip"] == "198.51.100.0"
    assert "ip" not in first["context"]
    assert first["context"]["user_agent"] == BROWSER_UA
    assert first["enrichment"]["user_agent"]["browser"] == "Chrome"
    assert b"198.51.100.23" not in runtime.curated.get(bare["event_id"])  # type: ignore[operator]
    # and the other keeps its own
    second = curated(runtime, own["event_id"])
    assert second["enrichment"]["ip"] == "203.0.113.0"
    assert "Firefox" in second["context"]["user_agent"]


def test_text_plain_is_read_as_json_for_beacons(runtime: LocalRuntime) -> None:
    _, key = create_app(runtime)
    events = [make_event(), make_event()]
    headers = {"content-type": "text/plain;charset=UTF-8"}
    status, _, body = answer(runtime, request("POST", body=events, headers=headers, query={"key": key}))
    assert (status, body["received"]) == (202, 2)


@pytest.mark.parametrize("content_type", ["text/html", "multipart/form-data; boundary=x", "application/xml"])
def test_other_beacon_types_are_415(runtime: LocalRuntime, content_type: str) -> None:
    _, key = create_app(runtime)
    headers = {"content-type": content_type}
    status, _, body = answer(runtime, request("POST", body=[make_event()], headers=headers, query={"key": key}))
    assert (status, body["error"]) == (415, "unsupported_media_type")


def test_thousands_of_events_in_one_request_are_413_never_5xx(runtime: LocalRuntime) -> None:
    _, key = create_app(runtime)
    events = [make_event() for _ in range(2000)]
    status, _, _ = answer(runtime, request("POST", body=events, headers={"x-api-key": key}))
    assert status == 413
    assert runtime.batches.unfinished() == []


def test_keys_are_stored_hashed(runtime: LocalRuntime) -> None:
    _, key = create_app(runtime)
    database = b"".join(path.read_bytes() for path in runtime.settings.data_dir.glob("eventpipe.db*"))  # WAL too
    assert key.encode() not in database
    assert hash_key(key).encode() in database


def test_directory_caches_answers_for_its_ttl() -> None:
    class CountingStore:
        def __init__(self, app: App) -> None:
            self.app, self.reads = app, 0

        def by_key_hash(self, key_hash: str) -> App | None:
            self.reads += 1
            return self.app if key_hash == self.app.key_hash else None

        def any_app(self) -> bool:
            self.reads += 1
            return True

    app, key = new_app("shop", now_ms=NOW_MS)
    store = CountingStore(app)
    directory = AppDirectory(store, ttl_s=60, max_entries=2)  # type: ignore[arg-type]
    assert [directory.authenticate(key) for _ in range(3)] == [app] * 3
    assert directory.authenticate("epk_other") is None
    assert directory.authenticate("epk_other") is None
    assert store.reads == 2
    assert directory.keys_required()
    assert directory.keys_required()
    assert store.reads == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://Shop.Example", "https://shop.example"),
        ("https://shop.example:443/", "https://shop.example"),
        ("http://localhost:5173", "http://localhost:5173"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_origins_are_normalised(text: str, expected: str) -> None:
    assert normalise_origin(text) == expected


@pytest.mark.parametrize("text", ["shop.example", "https://shop.example/path", "ftp://x.example", "null", ""])
def test_what_is_not_an_origin_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        normalise_origin(text)


def test_request_facts_apply_only_where_missing() -> None:
    facts = RequestFacts.of_request(app_id="app_1", ip="not-an-ip", user_agent="x" * 5000)
    assert facts.ip is None
    assert facts.user_agent == "x" * 2048
    event: dict[str, Any] = {"app_id": "forged", "context": "not an object"}
    facts.apply(event)
    assert event == {"app_id": "app_1", "context": "not an object"}
    assert RequestFacts.from_dict(facts.as_dict()) == facts
    assert RequestFacts.from_dict(["garbage"]) == RequestFacts()


def test_the_demo_stream_gets_a_key_only_once_apps_exist(runtime: LocalRuntime) -> None:
    from eventpipe.localrun.demo import demo_write_key

    store, data_dir = SqliteAppStore(runtime.db), runtime.settings.data_dir
    # GIVEN no app THEN the demo sends without a key and creates none
    assert demo_write_key(data_dir, store, runtime.apps, lambda: NOW_MS) is None
    assert store.list_all() == []
    # GIVEN an app THEN the demo makes its own, once, and keeps its key for the next start
    create_app(runtime)
    key = demo_write_key(data_dir, store, runtime.apps, lambda: NOW_MS)
    assert key is not None
    assert runtime.apps.authenticate(key) is not None
    assert demo_write_key(data_dir, store, runtime.apps, lambda: NOW_MS) == key
    assert len(store.list_all()) == 2
    assert (data_dir / "demo-write-key").stat().st_mode & 0o077 == 0


def test_the_request_address_is_located_then_anonymised(tmp_path: Path, clock: Any) -> None:
    from dataclasses import replace

    from eventpipe.localrun.runtime import LocalRuntime
    from eventpipe.settings import Settings
    from tests.unit.test_enrich_geo import write_city_db

    # GIVEN a runtime with a GeoIP database
    database = write_city_db(tmp_path / "city.mmdb")
    settings = Settings.from_env({"EVENTPIPE_GEOIP_DB": str(database)})
    runtime = LocalRuntime(replace(settings, data_dir=tmp_path / "data"), clock=clock)
    try:
        # WHEN a browser in Berlin sends an event without an address
        event = make_event(context={"page_url": "https://shop.example/"})
        answer(runtime, request("POST", body=event, source_ip="203.0.113.57"))
        # THEN its curated form has the place, and only the anonymised address
        stored = curated(runtime, event["event_id"])
        assert stored["enrichment"]["geo"] == {"country": "DE", "region": "Land Berlin", "city": "Berlin"}
        assert stored["enrichment"]["ip"] == "203.0.113.0"
        assert b"203.0.113.57" not in runtime.curated.get(event["event_id"])  # type: ignore[operator]
    finally:
        runtime.close()


def test_a_direct_invocation_needs_no_write_key(runtime: LocalRuntime) -> None:
    from eventpipe.handlers.ingest import handle_ingest

    # GIVEN apps exist WHEN the ingest function is invoked directly (IAM authorizes that, not a key)
    shop, _ = create_app(runtime)
    event = make_event(app_id=shop.app_id)
    accepted = handle_ingest({"events": [event]}, runtime)
    # THEN its events are accepted and keep the app they name
    assert accepted["received"] == 1
    assert curated(runtime, event["event_id"])["app_id"] == shop.app_id


def test_insights_by_app_and_without_bots(runtime: LocalRuntime) -> None:
    # GIVEN a person and a crawler sending with the shop's key, and a person with the blog's
    shop, shop_key = create_app(runtime, "shop")
    blog, blog_key = create_app(runtime, "blog")
    crawler = {"user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}
    person = {"user-agent": BROWSER_UA}
    bare = {"page_url": "https://shop.example/"}
    for key, headers in ((shop_key, person), (shop_key, crawler), (blog_key, person)):
        event = make_event(context=bare)
        status, _, _ = answer(runtime, request("POST", body=event, headers={"x-api-key": key, **headers}))
        assert status == 202

    def totals(**query: str) -> dict[str, Any]:
        status, _, body = answer(runtime, request("GET", path="/insights", query=query or None))
        assert status == 200, body
        result: dict[str, Any] = body["totals"]
        return result

    # THEN by default every app's people count, the crawler apart
    assert (totals()["events"], totals()["bots"]) == (2, 1)
    # AND one app's insights are its own; include_bots counts the crawler in
    assert (totals(app_id=shop.app_id)["events"], totals(app_id=shop.app_id)["bots"]) == (1, 1)
    assert totals(app_id=shop.app_id, include_bots="true")["events"] == 2
    assert totals(app_id=blog.app_id)["events"] == 1
    # AND a malformed view is a 400, never a 500
    for query in ({"include_bots": "perhaps"}, {"app_id": "a" * 65}):
        status, _, body = answer(runtime, request("GET", path="/insights", query=query))
        assert (status, body["error"]) == (400, "bad_request")


@pytest.mark.parametrize(
    "argv",
    [
        ["apps", "create", "shop", "--origin", "shop.example"],
        ["apps", "create", "shop", "--origin", "https://shop.example/path"],
        ["apps", "create", "   "],
        ["apps", "revoke", "app_0000000000000000"],
    ],
)
def test_apps_command_errors_exit_2_with_a_message(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from eventpipe.cli import main

    monkeypatch.setenv("EVENTPIPE_DATA_DIR", str(tmp_path / "data"))
    assert main(["apps", "list"]) == 2  # no data yet: nothing is created
    assert not (tmp_path / "data").exists()
    capsys.readouterr()
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("eventpipe: error: ")


def test_the_dashboards_app_list_holds_no_key(runtime: LocalRuntime) -> None:
    from eventpipe.localrun import dashboard

    app, key = create_app(runtime, "shop", origins=("https://shop.example",))
    status, _, body = dashboard.apps(runtime)
    assert status == 200
    assert orjson.loads(body) == {"apps": [{"app_id": app.app_id, "name": "shop", "revoked": False}]}
    assert key.encode() not in body
    assert app.key_hash.encode() not in body


def test_the_directory_caches_that_no_app_exists_for_its_ttl_only(monkeypatch: pytest.MonkeyPatch) -> None:
    class Store:
        def __init__(self) -> None:
            self.exists, self.reads = False, 0

        def any_app(self) -> bool:
            self.reads += 1
            return self.exists

    clock = [100.0]
    monkeypatch.setattr("eventpipe.core.apps.time.monotonic", lambda: clock[0])
    store = Store()
    cached, uncached = AppDirectory(store, ttl_s=60), AppDirectory(store)  # type: ignore[arg-type]
    assert not cached.keys_required()
    assert not cached.keys_required()
    assert store.reads == 1
    store.exists = True
    assert uncached.keys_required()  # locally (no cache) the first app counts at once
    assert not cached.keys_required()  # on AWS within the TTL
    clock[0] += 61
    assert cached.keys_required()
