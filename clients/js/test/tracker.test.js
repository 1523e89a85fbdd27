// The tracker in a fake browser: a window with localStorage, location, document, navigator,
// fetch and sendBeacon, run with node's built-in test runner (`node --test clients/js/test`).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");

const SOURCE = fs.readFileSync(path.join(__dirname, "..", "tracker.js"), "utf8");
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function storage(initial = {}) {
  const data = new Map(Object.entries(initial));
  return {
    data,
    getItem: (k) => (data.has(k) ? data.get(k) : null),
    setItem: (k, v) => data.set(k, String(v)),
  };
}

// A fake server: `answers` is consumed one per request ("fail" rejects like a network error).
function browser({ answers = [], beacon = true, localStorage = storage(), crypto = globalThis.crypto } = {}) {
  const requests = [];
  const beacons = [];
  const listeners = {};
  const doc = {
    title: "Product 1",
    referrer: "https://www.google.com/",
    visibilityState: "visible",
    addEventListener: (type, fn) => (listeners["doc:" + type] = fn),
  };
  const window = {
    localStorage,
    crypto,
    document: doc,
    location: { href: "https://shop.example/p/1?utm_source=news", pathname: "/p/1" },
    navigator: {
      language: "en-GB",
      sendBeacon: (url, blob) => {
        beacons.push({ url, blob });
        return beacon;
      },
    },
    addEventListener: (type, fn) => (listeners[type] = fn),
    fetch: async (url, options) => {
      requests.push({ url, options, events: JSON.parse(options.body) });
      const answer = answers.length ? answers.shift() : 202;
      if (answer === "fail") throw new TypeError("Failed to fetch");
      return { ok: answer >= 200 && answer < 300, status: answer };
    },
  };
  const timers = new Set(); // so that a test can stop a tracker that would retry for ever
  let stopped = false;
  const timer = (fn, ms) => {
    if (stopped) return undefined;
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
    return t;
  };
  vm.runInNewContext(SOURCE, { window, setTimeout: timer, clearTimeout, Blob });
  return {
    window,
    tracker: window.eventpipe,
    requests,
    beacons,
    stop() {
      stopped = true; // a send still in flight must not schedule another try
      for (const t of timers) clearTimeout(t);
    },
    hide() {
      doc.visibilityState = "hidden";
      listeners["doc:visibilitychange"]();
    },
  };
}

const FAST = { endpoint: "https://collect.example/", writeKey: "k1", flushIntervalMs: 5, maxRetryDelayMs: 20 };

test("an event carries the envelope the pipeline needs", async () => {
  const b = browser();
  b.tracker.init(FAST);
  b.tracker.identify("u-7");
  b.tracker.track("add_to_cart", { product_id: "p-1", quantity: 1, price: 9.5, currency: "EUR" });
  await b.tracker.flush();
  assert.equal(b.requests.length, 1);
  const { url, options, events } = b.requests[0];
  assert.equal(url, "https://collect.example/events");
  assert.equal(options.method, "POST");
  assert.equal(options.headers["x-api-key"], "k1");
  assert.equal(options.headers["content-type"], "application/json");
  const [e] = events;
  assert.match(e.event_id, UUID);
  assert.equal(e.event_type, "add_to_cart");
  assert.equal(e.user_id, "u-7");
  assert.match(e.anonymous_id, UUID);
  assert.match(e.session_id, UUID);
  assert.ok(!Number.isNaN(Date.parse(e.occurred_at)) && e.occurred_at.endsWith("Z"));
  assert.ok(Date.parse(e.sent_at) >= Date.parse(e.occurred_at));
  assert.deepEqual(e.context, {
    page_url: "https://shop.example/p/1?utm_source=news",
    referrer: "https://www.google.com/",
    locale: "en-GB",
  });
  assert.deepEqual(e.properties, { product_id: "p-1", quantity: 1, price: 9.5, currency: "EUR" });
});

test("page() sends a page_view with the path and title", async () => {
  const b = browser();
  b.tracker.init(FAST);
  b.tracker.page();
  b.tracker.page({ path: "/checkout", duration_ms: 5 });
  await b.tracker.flush();
  const [first, second] = b.requests.flatMap((r) => r.events);
  assert.equal(first.event_type, "page_view");
  assert.deepEqual(first.properties, { path: "/p/1", title: "Product 1" });
  assert.deepEqual(second.properties, { path: "/checkout", duration_ms: 5, title: "Product 1" });
});

test("the anonymous id outlives the page; the session ends after 30 minutes idle", async () => {
  const shared = storage();
  const first = browser({ localStorage: shared });
  first.tracker.init(FAST);
  first.tracker.track("signup", { method: "email" });
  await first.tracker.flush();
  const before = first.requests[0].events[0];

  const second = browser({ localStorage: shared }); // a new page load, the same site
  second.tracker.init(FAST);
  second.tracker.track("signup", { method: "email" });
  await second.tracker.flush();
  const same = second.requests[0].events[0];
  assert.equal(same.anonymous_id, before.anonymous_id);
  assert.equal(same.session_id, before.session_id);

  const session = JSON.parse(shared.getItem("eventpipe_session"));
  session.last -= 31 * 60 * 1000;
  shared.setItem("eventpipe_session", JSON.stringify(session));
  second.tracker.track("signup", { method: "email" });
  await second.tracker.flush();
  const later = second.requests[1].events[0];
  assert.equal(later.anonymous_id, before.anonymous_id);
  assert.notEqual(later.session_id, before.session_id);
});

test("events are batched: flushAt events make one request", async () => {
  const b = browser();
  b.tracker.init({ ...FAST, flushAt: 5, flushIntervalMs: 60000 });
  for (let i = 0; i < 4; i++) b.tracker.track("signup", { method: "email" });
  assert.equal(b.requests.length, 0); // below flushAt and before the interval: still queued
  b.tracker.track("signup", { method: "email" });
  await b.tracker.flush();
  assert.equal(b.requests.length, 1);
  assert.equal(b.requests[0].events.length, 5);
});

test("the interval sends what is queued without flush()", async () => {
  const b = browser();
  b.tracker.init({ ...FAST, flushAt: 50 });
  b.tracker.track("signup", { method: "email" });
  for (let i = 0; i < 100 && !b.requests.length; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(b.requests.length, 1);
});

test("failed sends are retried with the same event ids until they succeed", async () => {
  const b = browser({ answers: ["fail", 503, 429, 202] });
  b.tracker.init(FAST);
  const ids = [b.tracker.track("signup", { method: "email" }), b.tracker.track("signup", { method: "sso" })];
  await b.tracker.flush();
  assert.equal(b.requests.length, 4);
  for (const r of b.requests) assert.deepEqual(r.events.map((e) => e.event_id), ids);
  b.tracker.track("signup", { method: "oauth" }); // the queue is empty again: the next send is new events only
  await b.tracker.flush();
  assert.equal(b.requests[4].events.length, 1);
});

test("a refused request (4xx) is dropped, not retried for ever", async () => {
  const b = browser({ answers: [400] });
  b.tracker.init(FAST);
  b.tracker.track("signup", { method: "email" });
  await b.tracker.flush();
  assert.equal(b.requests.length, 1);
  assert.equal(b.tracker.dropped, 1);
});

test("the queue is bounded while the pipeline is unreachable", async () => {
  const b = browser({ answers: Array(10000).fill("fail") });
  b.tracker.init({ ...FAST, maxRetryDelayMs: 60000 });
  let kept = 0;
  for (let i = 0; i < 1500; i++) if (b.tracker.track("signup", { method: "email" })) kept++;
  assert.equal(kept, 1000);
  assert.equal(b.tracker.dropped, 500);
  b.stop();
});

test("each request stays under the body and event limits", async () => {
  const b = browser();
  b.tracker.init({ ...FAST, flushAt: 100 });
  const big = "x".repeat(5000);
  for (let i = 0; i < 40; i++) b.tracker.track("signup", { method: "email", note: big });
  b.tracker.track("signup", { method: "email", note: "y".repeat(70000) }); // larger than any request
  await b.tracker.flush();
  assert.ok(b.requests.length >= 4);
  for (const r of b.requests) assert.ok(r.options.body.length < 60000, `body of ${r.options.body.length}`);
  assert.equal(b.requests.flatMap((r) => r.events).length, 40);
  assert.equal(b.tracker.dropped, 1);
});

test("when the page is hidden, the queue goes by sendBeacon as text/plain with the key in the URL", async () => {
  const b = browser();
  b.tracker.init({ ...FAST, flushIntervalMs: 60000 });
  const ids = [b.tracker.track("signup", { method: "email" }), b.tracker.page()];
  b.hide();
  assert.equal(b.requests.length, 0);
  assert.equal(b.beacons.length, 1);
  const { url, blob } = b.beacons[0];
  assert.equal(url, "https://collect.example/events?key=k1");
  assert.equal(blob.type, "text/plain");
  const events = JSON.parse(await blob.text());
  assert.deepEqual(events.map((e) => e.event_id), ids);
  assert.ok(events.every((e) => e.sent_at));
  await b.tracker.flush(); // nothing left
  assert.equal(b.requests.length, 0);
});

test("without a beacon, the hidden page's queue goes by fetch with keepalive", async () => {
  const b = browser({ beacon: false });
  b.tracker.init({ ...FAST, flushIntervalMs: 60000, writeKey: "a b" });
  b.tracker.track("signup", { method: "email" });
  b.hide();
  assert.equal(b.requests.length, 1);
  assert.equal(b.requests[0].url, "https://collect.example/events?key=a%20b");
  assert.equal(b.requests[0].options.keepalive, true);
  assert.equal(b.requests[0].options.headers["content-type"], "text/plain");
});

test("event ids are UUIDs without crypto.randomUUID, and storage may be blocked", async () => {
  const blocked = {
    getItem() {
      throw new Error("SecurityError");
    },
    setItem() {
      throw new Error("SecurityError");
    },
  };
  const b = browser({ crypto: { getRandomValues: (a) => globalThis.crypto.getRandomValues(a) }, localStorage: blocked });
  b.tracker.init(FAST);
  const ids = new Set();
  for (let i = 0; i < 50; i++) ids.add(b.tracker.track("signup", { method: "email" }));
  await b.tracker.flush();
  assert.equal(ids.size, 50);
  for (const id of ids) assert.match(id, UUID);
  const events = b.requests.flatMap((r) => r.events);
  assert.equal(new Set(events.map((e) => e.anonymous_id)).size, 1); // kept in memory for the page
});

test("track before init says what to do", () => {
  const b = browser();
  assert.throws(() => b.tracker.track("signup", {}), /init/);
  assert.throws(() => b.tracker.init({ endpoint: "https://x" }), /writeKey/);
});

test("the tracker is at most 8 KB as served", () => {
  assert.ok(Buffer.byteLength(SOURCE) <= 8192, `${Buffer.byteLength(SOURCE)} bytes`);
});
