"""The dashboard in a real browser: `eventpipe up` serves the page and headless Chromium runs it.

GIVEN a server fed over HTTP with generated events, WHEN the page is open, THEN every chart is drawn
with data (plotly's own trace data, the SVG shapes it drew and the screenshot's pixels), the numbers
match `GET /insights`, the rejections table lists reason codes and paths, and new events show up
without a reload. Also: hostile rejected text stays text, and the 401, no-data and unreachable
states say so. Chromium is the system's (`apt-get install chromium`), driven by Playwright.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
import zlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from eventpipe.core.timeutil import to_iso
from eventpipe.generate import EventGenerator
from tests.localrun.api_client import NDJSON, insights, post_events, wait_idle
from tests.localrun.servers import up

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page

    from tests.localrun.server_harness import Server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("EVENTPIPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHARTS = ["chart-events", "chart-users", "chart-revenue", "chart-funnel", "chart-rejections", "chart-lag"]
REASON_CODES = {
    "malformed_json",
    "too_large",
    "envelope_invalid",
    "unknown_event_type",
    "unknown_schema_version",
    "schema_violation",
    "enrichment_failed",
}
HOSTILE = "<img src=x onerror=alert(1)>"
PAGE_BACKGROUND = (0xF6, 0xF8, 0xFA)  # --page in dashboard.css
WAIT_MS = 20_000  # every wait in the browser is bounded by this

# What each chart holds, as plotly has it (`gd.data`) and as it drew it (SVG shapes with an area).
CHARTS_JS = """() => [...document.querySelectorAll(".chart")].map((gd) => {
  const area = gd.querySelector(".nsewdrag")?.getBoundingClientRect();
  return {
    id: gd.id,
    traces: (gd.data || []).map((t) => {
      const values = (t.type === "funnel" ? t.x : t.y) || [];
      return {name: t.name, points: values.filter((v) => v !== null).length,
              sum: values.reduce((s, v) => s + (v || 0), 0), values: Array.from(values)};
    }),
    shapes: [...gd.querySelectorAll(".trace path")].filter((p) => {
      const box = p.getBBox();
      return box.width > 0 && box.height > 0;
    }).length,
    area: area && {x: area.x + scrollX, y: area.y + scrollY, width: area.width, height: area.height},
    xRange: gd.layout?.xaxis?.range ?? null,
    noData: gd.textContent.includes("No data yet"),
  };
})"""
ALL_CHARTS_DRAWN_JS = f"""() => {{
  const charts = ({CHARTS_JS})();
  return charts.length === 6 && charts.every((c) => c.traces.some((t) => t.sum > 0) && c.shapes > 0 && !c.noData);
}}"""
ROWS_WITH_REASONS_JS = """n => [...document.querySelectorAll("#rejections-body tr")]
  .filter((tr) => tr.querySelector(".code")).length >= n"""
TABLE_JS = """() => [...document.querySelectorAll("#rejections-body tr")].map((tr) => ({
  codes: [...tr.querySelectorAll(".code")].map((n) => n.textContent),
  paths: [...tr.querySelectorAll(".reason code")].map((n) => n.textContent),
  text: tr.textContent,
}))"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install it with `apt-get install chromium` "
            "(CI does), or point EVENTPIPE_CHROMIUM at a Chromium binary",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=30_000
            )
        except PlaywrightError as exc:
            pytest.fail(f"Chromium at {CHROMIUM} did not start ({exc}); `apt-get install chromium`", pytrace=False)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page that fails the test on a script error (the browser's own notes of failed requests,
    which the 401 and unreachable tests cause, are not script errors)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    errors: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", note)
    yield opened
    context.close()
    assert not errors, f"script errors on the page: {errors}"


# GIVEN-side helpers: HTTP to the server, as any client.


def send_events(server: Server, lines: list[bytes], *, token: str | None = None) -> None:
    """POST the lines as NDJSON, 100 a request, then wait until the worker has processed them all."""
    headers = {**NDJSON, "authorization": f"Bearer {token}"} if token else NDJSON
    for start in range(0, len(lines), 100):
        reply = post_events(server.url, b"\n".join(lines[start : start + 100]) + b"\n", headers)
        assert reply.status == 202, reply
    wait_idle(server.url)


def generated(seed: int, count: int, *, invalid_ratio: float = 0.1, duplicate_ratio: float = 0.05) -> list[bytes]:
    generator = EventGenerator(seed=seed, now_ms=time.time_ns() // 1_000_000, span_minutes=5)
    return list(generator.lines(count, invalid_ratio=invalid_ratio, duplicate_ratio=duplicate_ratio))


def shown(page: Page, stat: str) -> int:
    """A headline number as the page shows it (digits of its text), checked against its data-value."""
    node = page.locator(f"#stat-{stat}")
    text = node.text_content() or ""
    assert node.get_attribute("data-value") == "".join(c for c in text if c.isdigit()), text
    return int(node.get_attribute("data-value") or "-1")


def wait_for_events(page: Page, count: int) -> None:
    page.wait_for_function(
        "n => document.getElementById('stat-events').dataset.value === String(n)", arg=count, timeout=WAIT_MS
    )


# A small PNG reader (8-bit RGB or RGBA, not interlaced: what Chromium writes), so no imaging dependency.


def png_rows(data: bytes, *, up_to: int | None = None) -> tuple[int, int, list[bytearray]]:
    """(width, channels, rows of pixel bytes) of the first `up_to` rows (all by default)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, compressed, header = 8, [], b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        chunk = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            compressed.append(chunk)
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour_type not in (2, 6) or interlace:
        raise AssertionError(f"unsupported PNG: depth {depth}, colour type {colour_type}, interlace {interlace}")
    channels = 3 if colour_type == 2 else 4
    stride = width * channels
    raw = zlib.decompress(b"".join(compressed))
    rows, prior = [], bytearray(stride)
    for y in range(min(height, up_to or height)):
        start = y * (stride + 1)
        prior = _unfilter(raw[start], raw[start + 1 : start + 1 + stride], prior, channels)
        rows.append(prior)
    return width, channels, rows


def _unfilter(kind: int, line: bytes, prior: bytearray, bpp: int) -> bytearray:
    out = bytearray(line)
    if kind == 1:  # Sub
        for i in range(bpp, len(out)):
            out[i] = (out[i] + out[i - bpp]) & 0xFF
    elif kind == 2:  # Up
        out = bytearray((x + y) & 0xFF for x, y in zip(line, prior, strict=True))
    elif kind == 3:  # Average
        for i in range(len(out)):
            out[i] = (out[i] + ((out[i - bpp] if i >= bpp else 0) + prior[i]) // 2) & 0xFF
    elif kind == 4:  # Paeth
        for i in range(len(out)):
            a, c = (out[i - bpp], prior[i - bpp]) if i >= bpp else (0, 0)
            b = prior[i]
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            out[i] = (out[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    return out


def pixels(rows: list[bytearray], channels: int, box: dict[str, float]) -> list[tuple[int, ...]]:
    """The RGB pixels inside `box` (page coordinates, one CSS pixel = one image pixel)."""
    left, top = int(box["x"]) + 1, int(box["y"]) + 1
    right, bottom = int(box["x"] + box["width"]) - 1, int(box["y"] + box["height"]) - 1
    return [tuple(rows[y][x * channels : x * channels + 3]) for y in range(top, bottom) for x in range(left, right)]


def colourful(pixel: tuple[int, ...]) -> bool:
    """Saturated: a trace's colour, not the page's greys, white or text."""
    return max(pixel) - min(pixel) > 60


# The tests.


def test_dashboard_draws_live_data_and_updates_without_reload(page: Page, tmp_path: Path) -> None:
    with up(tmp_path / "data") as server:
        # GIVEN a server that has processed 1000 generated events (some invalid, some duplicated)
        send_events(server, generated(seed=7, count=1000))
        expected = insights(server.url)
        totals = expected["totals"]
        assert totals["events"] > 0
        assert totals["rejected"]
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(server.url) else outside.append(r.url))

        # WHEN the page is open
        page.goto(server.url + "/")
        wait_for_events(page, totals["events"])
        page.wait_for_function(ALL_CHARTS_DRAWN_JS, timeout=WAIT_MS)

        # THEN the headline numbers are the document's and the server's
        assert shown(page, "events") == totals["events"]
        assert shown(page, "users") == totals["unique_users"]
        assert shown(page, "duplicates") == totals["duplicates"]
        assert shown(page, "rejected") == sum(totals["rejected"].values())
        assert shown(page, "bots") == totals["bots"] > 0  # the generator's crawlers, counted apart
        assert shown(page, "pending") == 0
        assert shown(page, "processed") >= 10
        assert page.locator("#stat-worker").text_content() == "alive"
        assert page.locator("#stat-revenue").get_attribute("data-value") == str(totals["revenue"])
        assert f"{totals['revenue']:,.2f}" in (page.locator("#stat-revenue").get_attribute("title") or "")
        assert expected["currency"] in (page.locator("#revenue-title").text_content() or "")
        assert page.locator("#status").get_attribute("data-state") == "live"

        # AND every chart holds the document's data and drew shapes for it
        charts = {chart["id"]: chart for chart in page.evaluate(CHARTS_JS)}
        assert sorted(charts) == sorted(CHARTS)
        for chart in charts.values():
            assert chart["shapes"] > 0, f"{chart['id']} drew no trace shape with an area"
            assert any(t["sum"] > 0 for t in chart["traces"]), f"{chart['id']} has no data: {chart['traces']}"
            assert not chart["noData"], chart["id"]
        by_type = {t["name"]: t["sum"] for t in charts["chart-events"]["traces"]}
        assert by_type == totals["by_type"]
        assert {t["name"]: t["sum"] for t in charts["chart-rejections"]["traces"]} == totals["rejected"]
        assert charts["chart-funnel"]["traces"][0]["values"] == list(expected["funnel"].values())
        assert charts["chart-revenue"]["traces"][0]["sum"] == pytest.approx(totals["revenue"], abs=0.05)
        minutes_with_events = sum(1 for m in expected["minutes"] if m["events"])
        assert [t["points"] for t in charts["chart-lag"]["traces"]] == [minutes_with_events] * 2
        # AND the time axis fits a fresh run's few minutes of data (about 6 here), not the whole hour
        start, end = (datetime.fromisoformat(t) for t in charts["chart-events"]["xRange"])
        assert timedelta(minutes=10) <= end - start <= timedelta(minutes=12)
        assert all(
            c["xRange"] == charts["chart-events"]["xRange"] for c in charts.values() if c["id"] != "chart-funnel"
        )
        # per-minute estimates add up to at least the window's (a user seen in two minutes counts twice)
        assert charts["chart-users"]["traces"][0]["sum"] >= 0.95 * totals["unique_users"]

        # AND the table lists the latest rejections with their reason codes and JSON paths
        rows = page.evaluate(TABLE_JS)
        assert len(rows) == 20
        for row in rows:
            assert row["codes"], row
            assert set(row["codes"]) <= REASON_CODES, row
            assert all(path.startswith("$") for path in row["paths"]), row

        # AND the screenshot's chart areas are drawn: not one flat colour, with trace colours in them
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        (REPO / ".build").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPO / ".build" / "dashboard.png")
        lowest = max(int(chart["area"]["y"] + chart["area"]["height"]) for chart in charts.values())
        _, channels, image = png_rows(shot.read_bytes(), up_to=lowest + 1)
        assert tuple(image[4][12:15]) == PAGE_BACKGROUND, "the PNG reader misread the page background"
        for chart in charts.values():
            area = pixels(image, channels, chart["area"])
            drawn = sum(1 for pixel in area if colourful(pixel))
            assert len(set(area)) > 2, f"{chart['id']}: the plot area is one flat colour"
            assert drawn >= 100, f"{chart['id']}: only {drawn} pixels in trace colours"

        # WHEN more events arrive, THEN the same page (no reload) shows the new total
        page.evaluate("window.sameDocument = true")
        send_events(server, generated(seed=8, count=300))
        grown = insights(server.url)["totals"]["events"]
        assert grown > totals["events"]
        wait_for_events(page, grown)
        assert page.evaluate("window.sameDocument === true")
        assert not outside, f"the page fetched from other origins: {outside}"


def test_hostile_rejected_text_is_shown_as_text(page: Page, tmp_path: Path) -> None:
    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    hostile_event = {
        "event_id": HOSTILE,
        "event_type": "<script>alert(2)</script>",
        "occurred_at": to_iso(time.time_ns() // 1_000_000),
        "properties": {HOSTILE: 1},
    }
    with up(tmp_path / "data") as server:
        # GIVEN only rejected events, whose text is markup that would run if put into the DOM as HTML
        send_events(server, [HOSTILE.encode(), orjson.dumps(hostile_event)])

        # WHEN the page shows them
        page.goto(server.url + "/")
        page.wait_for_function(ROWS_WITH_REASONS_JS, arg=2, timeout=WAIT_MS)

        # THEN they are text: the literal markup is visible, no element was made of it, nothing ran
        table = page.locator("#rejections").text_content() or ""
        assert HOSTILE in table
        assert "<script>alert(2)</script>" in table
        assert page.evaluate("document.querySelectorAll('img, #rejections script').length") == 0
        page.wait_for_timeout(500)  # an onerror handler would have fired by now
        assert dialogs == []

        # AND with no curated event yet, the page says there is no data
        page.wait_for_function("document.getElementById('status').dataset.state === 'empty'", timeout=WAIT_MS)
        assert "No data yet" in (page.locator("#status").text_content() or "")
        assert "No data yet" in (page.locator("#chart-events").text_content() or "")


def test_token_and_unreachable_server_are_shown(page: Page, tmp_path: Path) -> None:
    token = "dashboard-test-token"
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    state = "document.getElementById('status').dataset.state === '{}'"
    with up(tmp_path / "data", env={"EVENTPIPE_API_TOKEN": token}) as server:
        # GIVEN a server that needs a token, WHEN the page is opened without one, THEN it says how to give it
        page.goto(server.url + "/")
        page.wait_for_function(state.format("auth"), timeout=WAIT_MS)
        assert "#token=" in (page.locator("#status").text_content() or "")

        # WHEN a wrong token is in the address, THEN the page says it was refused
        page.goto(server.url + "/#token=wrong")
        page.wait_for_function("document.getElementById('status').textContent.includes('refused')", timeout=WAIT_MS)

        # WHEN the right one is, THEN it reads the data (none yet, then an event) with it
        page.goto(server.url + f"/#token={token}")
        page.wait_for_function(state.format("empty"), timeout=WAIT_MS)
        send_events(server, generated(seed=9, count=5, invalid_ratio=0, duplicate_ratio=0), token=token)
        wait_for_events(page, 5)
        assert page.locator("#status").get_attribute("data-state") == "live"

        # WHEN the server is gone, THEN the page says so and keeps trying
        server.kill()
        page.wait_for_function(state.format("error"), timeout=WAIT_MS)
        assert "Cannot reach the server" in (page.locator("#status").text_content() or "")
        tries = len(failed)
        deadline = time.monotonic() + WAIT_MS / 1000
        while len(failed) <= tries and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        assert len(failed) > tries, "the page stopped trying after the server went away"
        assert shown(page, "events") == 5  # the last numbers stay on screen


def test_app_selector_bots_and_countries(page: Page, tmp_path: Path) -> None:
    from tests.localrun.test_edge_api import eventpipe
    from tests.unit.test_enrich_geo import write_city_db

    database = write_city_db(tmp_path / "city.mmdb")
    data = tmp_path / "data"
    with up(data, env={"EVENTPIPE_GEOIP_DB": str(database)}) as server:
        # GIVEN events of no app (some from crawlers), then an app whose key sends located events
        send_events(server, generated(seed=11, count=300, invalid_ratio=0, duplicate_ratio=0))
        made = eventpipe(data, "apps", "create", "shop", "--json")
        assert made.returncode == 0, made.stderr
        shop = orjson.loads(made.stdout)
        lines = []
        for number, ip in enumerate(["203.0.113.7"] * 3 + ["198.51.100.9"] * 2):
            event = orjson.loads(generated(seed=20 + number, count=1, invalid_ratio=0, duplicate_ratio=0)[0])
            event["context"] = {"ip": ip, "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"}
            lines.append(orjson.dumps(event))
        reply = post_events(server.url, b"\n".join(lines), {**NDJSON, "x-api-key": shop["write_key"]})
        assert reply.status == 202, reply
        wait_idle(server.url)
        everyone = insights(server.url)["totals"]
        only_shop = insights(server.url, f"?app_id={shop['app_id']}")["totals"]
        assert only_shop["events"] == 5

        # WHEN the page is open THEN it shows every app's people, the bots apart, and the countries
        page.goto(server.url + "/")
        wait_for_events(page, everyone["events"])
        assert shown(page, "bots") == everyone["bots"] > 0
        listed = page.locator("#app-select option").all_text_contents()
        assert listed[0] == "All apps"
        assert any(shop["app_id"] in text and "shop" in text for text in listed)
        countries = page.evaluate(COUNTRIES_JS)
        assert countries == {country: n for country, n in everyone["by_country"].items()}
        assert countries["DE"] == 3

        # WHEN the shop is chosen THEN the numbers and countries are the shop's alone
        page.select_option("#app-select", shop["app_id"])
        wait_for_events(page, 5)
        assert shown(page, "bots") == 0
        assert page.evaluate(COUNTRIES_JS) == {"DE": 3, "FR": 2}
        # AND back to all apps
        page.select_option("#app-select", "")
        wait_for_events(page, everyone["events"])


COUNTRIES_JS = """() => Object.fromEntries([...document.querySelectorAll("#countries li[data-country]")]
  .map((li) => [li.dataset.country, Number(li.dataset.value)]))"""
