"""The JavaScript tracker in a real browser, across origins, through a pipeline restart.

GIVEN `eventpipe up` with an app that allows one web origin, and a page served from that origin (a tiny
static server on another port of 127.0.0.1) that loads `/tracker.js` from the pipeline, WHEN the page
sends a few hundred events (some while the pipeline is stopped, sent again once it is back, and the
last ones by beacon as the page goes away), THEN every event is curated exactly once, under the app's
`app_id`. Chromium is the system's (`apt-get install chromium`), driven by Playwright.
"""

from __future__ import annotations

import functools
import http.server
import threading
import time
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from playwright.sync_api import sync_playwright

from eventpipe.adapters.local import Database, FolderBucket, SqliteCuratedStore
from tests.localrun.api_client import wait_idle
from tests.localrun.server_harness import start_server
from tests.localrun.servers import end
from tests.localrun.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS
from tests.localrun.test_edge_api import eventpipe

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

WAIT_MS = 60_000  # every wait in the browser is bounded
PAGE = """<!doctype html><html><head><title>Shop</title>
<script src="{pipeline}/tracker.js"></script></head><body><p>shop</p>
<script>eventpipe.init({{endpoint: "{pipeline}", writeKey: "{key}", flushAt: 25, flushIntervalMs: 200,
  maxRetryDelayMs: 1000}});</script></body></html>"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static server for the page, on 127.0.0.1 but another port than the pipeline: another origin."""
    root = tmp_path / "site"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def track(page: Page, count: int, start: int) -> list[str]:
    """`count` events tracked in the page (a mix of types); their event ids."""
    ids: list[str] = page.evaluate(
        """([count, start]) => Array.from({length: count}, (_, i) => {
             const n = start + i;
             if (n % 3 === 0) return eventpipe.page({path: "/p/" + n});
             if (n % 3 === 1) return eventpipe.track("add_to_cart",
               {product_id: "p-" + n, quantity: 1, price: 9.5, currency: "EUR"});
             return eventpipe.track("signup", {method: "email"});
           })""",
        [count, start],
    )
    assert all(ids), "the tracker's queue refused events"
    return ids


def flush(page: Page) -> None:
    page.evaluate(
        f"() => Promise.race([eventpipe.flush(), new Promise((_, no) => setTimeout(() => no('flush'), {WAIT_MS}))])"
    )


def test_a_page_on_another_origin_sends_every_event_exactly_once_through_a_restart(
    tmp_path: Path, site: tuple[str, Path]
) -> None:
    origin, root = site
    data_dir = tmp_path / "data"
    server = start_server(data_dir)
    try:
        created = eventpipe(data_dir, "apps", "create", "shop", "--origin", origin, "--json")
        assert created.returncode == 0, created.stderr
        app = orjson.loads(created.stdout)
        (root / "index.html").write_text(PAGE.format(pipeline=server.url, key=app["write_key"]))
        port = server.url.rsplit(":", 1)[1]
        sent: list[str] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{origin}/index.html")
                page.wait_for_function("() => window.eventpipe !== undefined", timeout=WAIT_MS)
                # WHEN the page sends while the pipeline runs
                sent += track(page, 150, 0)
                flush(page)
                # AND while it is stopped (each send fails and is retried with backoff)
                assert server.stop() == 0
                sent += track(page, 100, 150)
                page.wait_for_timeout(1500)  # a few failed tries
                # AND the pipeline is back on the same address
                end(server)
                server = start_server(data_dir, "--port", port)
                flush(page)
                sent += track(page, 50, 250)
                flush(page)
                # AND the last events leave by beacon as the page goes away (queued, with no send due for
                # a minute: only the beacon can deliver them)
                page.evaluate(
                    "([url, key]) => eventpipe.init({endpoint: url, writeKey: key, flushAt: 100,"
                    " flushIntervalMs: 60000})",
                    [server.url, app["write_key"]],
                )
                sent += track(page, 20, 300)
                page.goto("about:blank")  # pagehide: the queue goes by sendBeacon (text/plain, ?key=)
            finally:
                browser.close()
        # THEN every event is curated exactly once, under the app's id
        assert len(set(sent)) == len(sent) == 320
        deadline = time.monotonic() + 60
        while stored_count(data_dir) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.2)
        wait_idle(server.url)
        assert stored_count(data_dir) == len(sent)
        apps = {event_id: curated_app(data_dir, event_id) for event_id in sent}
        assert set(apps.values()) == {app["app_id"]}
    finally:
        end(server)


def stored_count(data_dir: Path) -> int:
    database = Database(data_dir / "eventpipe.db")
    try:
        return SqliteCuratedStore(database, FolderBucket(data_dir / "curated", prefixes=())).count()
    finally:
        database.close()


def curated_app(data_dir: Path, event_id: str) -> str | None:
    database = Database(data_dir / "eventpipe.db")
    try:
        payload = SqliteCuratedStore(database, FolderBucket(data_dir / "curated", prefixes=())).get(event_id)
    finally:
        database.close()
    assert payload is not None, f"event {event_id} was not curated"
    return orjson.loads(payload).get("app_id")
