"""The collection edge on a real `eventpipe up`: apps made with the command line while it runs, write
keys from a browser origin past the Host/Origin guard, CORS, and the request's own address."""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.adapters.local import Database, FolderBucket, SqliteCuratedStore
from tests.localrun.api_client import JSON, batch_when_done, call, events, post_events
from tests.localrun.server_harness import EVENTPIPE
from tests.localrun.servers import up

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.localrun.server_harness import Server

SITE = "https://shop.example"


def eventpipe(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVENTPIPE_DATA_DIR": str(data_dir)}
    return subprocess.run([EVENTPIPE, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("edge") / "data"


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[Server]:
    # Trusted proxies that do not include the tests' own address (127.0.0.1): its X-Forwarded-For is a forgery.
    with up(data_dir, env={"EVENTPIPE_TRUSTED_PROXIES": "10.0.0.0/8"}) as running:
        yield running


@pytest.fixture(scope="module")
def apps(server: Server, data_dir: Path) -> dict[str, dict[str, str]]:
    """Two apps made with the command line while the server runs: one for SITE only, one for any origin."""
    made = {}
    for name, origin_args in (("shop", ["--origin", SITE]), ("open", [])):
        result = eventpipe(data_dir, "apps", "create", name, *origin_args, "--json")
        assert result.returncode == 0, result.stderr
        made[name] = orjson.loads(result.stdout)
        assert set(made[name]) == {"app_id", "write_key"}
    return made


def curated(data_dir: Path, event_id: str) -> dict[str, Any]:
    database = Database(data_dir / "eventpipe.db")
    try:
        payload = SqliteCuratedStore(database, FolderBucket(data_dir / "curated", prefixes=())).get(event_id)
    finally:
        database.close()
    assert payload is not None, event_id
    document: dict[str, Any] = orjson.loads(payload)
    return document


def browser_post(server: Server, body: bytes, key: str | None, origin: str = SITE, query: bool = False) -> Any:
    headers = {**JSON, "origin": origin, "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36"}
    path = "/events"
    if key is not None and query:
        path += f"?key={key}"
    elif key is not None:
        headers["x-api-key"] = key
    return call(server.url, "POST", path, body, headers)


def test_apps_list_and_keys_are_printed_once(apps: dict[str, dict[str, str]], data_dir: Path) -> None:
    listed = orjson.loads(eventpipe(data_dir, "apps", "list", "--json").stdout)
    assert {a["app_id"] for a in listed} == {a["app_id"] for a in apps.values()}
    shop = next(a for a in listed if a["name"] == "shop")
    assert (shop["origins"], shop["revoked"]) == ([SITE], False)
    assert "write_key" not in shop
    assert all(a["write_key"] not in str(listed) for a in apps.values())


def test_a_page_on_another_origin_sends_with_a_key(server: Server, apps: dict[str, Any], data_dir: Path) -> None:
    # GIVEN a page on SITE (not this machine) WHEN it preflights and posts events with the shop's key
    preflight = call(
        server.url,
        "OPTIONS",
        "/events",
        headers={
            "origin": SITE,
            "access-control-request-method": "POST",
            "access-control-request-headers": "x-api-key",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["access-control-allow-origin"] == SITE
    assert "x-api-key" in preflight.headers["access-control-allow-headers"]
    sent = events(3)
    sent[0]["app_id"] = apps["open"]["app_id"]  # a forged app id
    for event in sent:
        event.pop("context")  # the browser's address and user agent come from the request
    reply = browser_post(server, orjson.dumps(sent), apps["shop"]["write_key"])
    # THEN accepted past the Host/Origin guard, readable by the page, and curated under the shop's app
    assert reply.status == 202, reply
    assert reply.headers["access-control-allow-origin"] == SITE
    batch = batch_when_done(server.url, reply.json()["batch_id"])
    assert batch["curated"] == 3
    for event in sent:
        stored = curated(data_dir, event["event_id"])
        assert stored["app_id"] == apps["shop"]["app_id"]
        assert stored["enrichment"]["ip"] == "127.0.0.0"  # the peer, anonymised
        assert stored["enrichment"]["user_agent"]["browser"] == "Chrome"


def test_beacons_send_the_key_in_the_query_as_text(server: Server, apps: dict[str, Any], data_dir: Path) -> None:
    sent = events(2)
    headers = {"content-type": "text/plain;charset=UTF-8", "origin": SITE}
    reply = call(server.url, "POST", f"/events?key={apps['shop']['write_key']}", orjson.dumps(sent), headers)
    assert reply.status == 202, reply
    batch_when_done(server.url, reply.json()["batch_id"])
    assert curated(data_dir, sent[0]["event_id"])["app_id"] == apps["shop"]["app_id"]


@pytest.mark.parametrize(
    ("key_name", "origin", "status"),
    [
        pytest.param("shop", "https://evil.example", 403, id="origin-not-allowed"),
        pytest.param(None, SITE, 403, id="no-key-from-a-page: the guard"),
        pytest.param("wrong", SITE, 401, id="wrong-key"),
    ],
)
def test_what_a_page_may_not_do(
    server: Server, apps: dict[str, Any], key_name: str | None, origin: str, status: int
) -> None:
    key = {"shop": apps["shop"]["write_key"], "wrong": "epk_wrong", None: None}[key_name]
    reply = browser_post(server, orjson.dumps(events(1)), key, origin=origin)
    assert reply.status == status, reply
    assert reply.json()["error"] in ("forbidden", "unauthorized")


def test_without_a_key_this_machine_gets_401_once_apps_exist(server: Server, apps: dict[str, Any]) -> None:
    reply = post_events(server.url, orjson.dumps(events(1)), JSON)
    assert reply.status == 401
    assert reply.json()["error"] == "unauthorized"


def test_a_write_key_opens_no_reading_route(server: Server, apps: dict[str, Any]) -> None:
    # GIVEN a page with a write key WHEN it asks for insights or batches THEN the guard still refuses it
    key = apps["open"]["write_key"]
    for path in ("/insights", f"/insights?key={key}", "/batches/h0"):
        reply = call(server.url, "GET", path, headers={"origin": SITE, "x-api-key": key})
        assert reply.status == 403, (path, reply)
    invoke = call(
        server.url,
        "POST",
        "/2015-03-31/functions/ingest/invocations",
        b'{"events": []}',
        {"origin": SITE, "x-api-key": key},
    )
    assert invoke.status == 403


def test_a_forged_forwarded_for_from_an_untrusted_peer_is_ignored(
    server: Server, apps: dict[str, Any], data_dir: Path
) -> None:
    sent = events(1)
    sent[0].pop("context")
    headers = {**JSON, "x-api-key": apps["open"]["write_key"], "x-forwarded-for": "192.0.2.77"}
    reply = call(server.url, "POST", "/events", orjson.dumps(sent), headers)
    assert reply.status == 202
    batch_when_done(server.url, reply.json()["batch_id"])
    assert curated(data_dir, sent[0]["event_id"])["enrichment"]["ip"] == "127.0.0.0"


def test_a_revoked_key_is_refused_at_once(server: Server, data_dir: Path) -> None:
    made = orjson.loads(eventpipe(data_dir, "apps", "create", "short-lived", "--json").stdout)
    assert browser_post(server, orjson.dumps(events(1)), made["write_key"]).status == 202
    result = eventpipe(data_dir, "apps", "revoke", made["app_id"])
    assert result.returncode == 0, result.stderr
    assert browser_post(server, orjson.dumps(events(1)), made["write_key"]).status == 401
    assert eventpipe(data_dir, "apps", "revoke", "app_0000000000000000").returncode != 0


def test_insights_of_one_app_by_http_and_command_line(server: Server, apps: dict[str, Any], data_dir: Path) -> None:
    # GIVEN the "open" app's events, sent with its key and done
    sent = events(2)
    reply = call(server.url, "POST", "/events", orjson.dumps(sent), {**JSON, "x-api-key": apps["open"]["write_key"]})
    batch_when_done(server.url, reply.json()["batch_id"])
    app_id = apps["open"]["app_id"]
    # WHEN its insights are asked for by HTTP and by the command line
    # (clock-skew correction puts the events at their receipt: the last hour)
    result = eventpipe(data_dir, "insights", "--app-id", app_id, "--since", "1h", "--json")
    by_http = call(server.url, "GET", f"/insights?app_id={app_id}")
    # THEN both give the same document, which counts that app's events only
    assert by_http.status == 200, by_http
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["totals"] == by_http.json()["totals"]
    everyone = call(server.url, "GET", "/insights").json()
    assert 0 < by_http.json()["totals"]["events"] < everyone["totals"]["events"]


def test_without_a_geoip_database_up_says_so_once(server: Server, apps: dict[str, Any]) -> None:
    # GIVEN the module's server (no EVENTPIPE_GEOIP_DB), whose worker has enriched a batch
    headers = {**JSON, "x-api-key": apps["open"]["write_key"]}
    reply = call(server.url, "POST", "/events", orjson.dumps(events(1)), headers)
    assert batch_when_done(server.url, reply.json()["batch_id"])["curated"] == 1
    # THEN its output says once that the geo enricher is off, not again from the worker
    lines = b"".join(server.output).decode(errors="replace").splitlines()
    said = [line for line in lines if "geo enricher off" in line]
    assert len(said) == 1, said
    assert said[0].startswith("eventpipe: INFO: geo enricher off: no GeoIP database (set EVENTPIPE_GEOIP_DB")
