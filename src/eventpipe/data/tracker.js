/* eventpipe tracker: window.eventpipe.init/track/page/identify/flush. No dependencies. */
(function (w) {
  "use strict";
  var ANON = "eventpipe_anonymous_id", USER = "eventpipe_user_id", SESSION = "eventpipe_session";
  var IDLE_MS = 30 * 60 * 1000;
  var MAX_QUEUE = 1000; // events kept while the pipeline is unreachable
  var MAX_BATCH = 100; // events per request (the server takes at most 500)
  var MAX_BODY = 60000; // bytes per request: under the 64 KiB keepalive and beacon limits
  var cfg = null, queue = [], sending = null, timer = null, attempt = 0, waiters = [];
  var store = { get: function () { return null; }, set: function () {} };
  try {
    var ls = w.localStorage;
    store = { get: function (k) { return ls.getItem(k); }, set: function (k, v) { ls.setItem(k, v); } };
  } catch (e) { /* storage blocked: ids last as long as the page */ }
  var memory = {};
  function get(k) { var v = null; try { v = store.get(k); } catch (e) {} return v == null ? memory[k] || null : v; }
  function set(k, v) { memory[k] = v; try { store.set(k, v); } catch (e) {} }

  function uuid() {
    var c = w.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    var b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (var i = 0; i < 16; i++) b[i] = Math.random() * 256;
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = "";
    for (var j = 0; j < 16; j++) h += (b[j] + 256).toString(16).slice(1) + (j === 3 || j === 5 || j === 7 || j === 9 ? "-" : "");
    return h;
  }
  function now() { return Date.now(); }
  function iso(t) { return new Date(t).toISOString(); }

  function session(t) {
    var s = null;
    try { s = JSON.parse(get(SESSION)); } catch (e) {}
    if (!s || typeof s.id !== "string" || !(t - s.last < IDLE_MS)) s = { id: uuid() };
    s.last = t;
    set(SESSION, JSON.stringify(s));
    return s.id;
  }
  function anonymousId() {
    var id = get(ANON);
    if (!id) { id = uuid(); set(ANON, id); }
    return id;
  }

  function init(options) {
    var o = options || {};
    if (!o.endpoint || !o.writeKey) throw new Error("eventpipe.init needs endpoint and writeKey");
    var wasInit = cfg;
    cfg = {
      url: String(o.endpoint).replace(/\/+$/, "").replace(/\/events$/, "") + "/events",
      key: String(o.writeKey),
      flushAt: Math.max(1, Math.min(o.flushAt || 20, MAX_BATCH)),
      interval: o.flushIntervalMs == null ? 1000 : o.flushIntervalMs,
      maxDelay: o.maxRetryDelayMs || 30000
    };
    if (!wasInit && w.addEventListener) {
      w.addEventListener("pagehide", hidden);
      if (w.document) w.document.addEventListener("visibilitychange", function () {
        if (w.document.visibilityState === "hidden") hidden();
      });
    }
    return api;
  }

  function track(eventType, properties) {
    if (!cfg) throw new Error("call eventpipe.init first");
    var t = now(), d = w.document, loc = w.location;
    var ctx = { page_url: loc ? String(loc.href).slice(0, 8192) : undefined, locale: w.navigator && w.navigator.language };
    if (d && d.referrer) ctx.referrer = String(d.referrer).slice(0, 8192);
    var event = {
      event_id: uuid(), event_type: String(eventType), occurred_at: iso(t),
      anonymous_id: anonymousId(), session_id: session(t), context: ctx, properties: properties || {}
    };
    var user = get(USER);
    if (user) event.user_id = user;
    if (queue.length >= MAX_QUEUE) { api.dropped++; return null; }
    queue.push(event);
    if (queue.length >= cfg.flushAt && !attempt) send(); // while backing off, the retry timer sends
    else if (!timer && !sending) timer = setTimeout(send, cfg.interval);
    return event.event_id;
  }

  function page(properties) {
    var p = {}, loc = w.location, d = w.document, k;
    for (k in properties || {}) p[k] = properties[k];
    if (p.path == null) p.path = (loc && loc.pathname) || "/";
    if (p.title == null && d && d.title) p.title = String(d.title).slice(0, 512);
    return track("page_view", p);
  }

  function identify(userId) { set(USER, userId == null ? "" : String(userId).slice(0, 256)); }

  // The head of the queue that fits one request; an event too large for any request is dropped.
  function chunk() {
    var out = [], size = 2;
    while (out.length < queue.length && out.length < MAX_BATCH) {
      var n = JSON.stringify(queue[out.length]).length + 1;
      if (n > MAX_BODY - 2 && !out.length) { queue.shift(); api.dropped++; continue; }
      if (size + n > MAX_BODY) break;
      size += n;
      out.push(queue[out.length]);
    }
    return out;
  }
  function body(events) {
    var t = iso(now());
    for (var i = 0; i < events.length; i++) events[i].sent_at = t;
    return JSON.stringify(events);
  }

  function send() {
    clearTimeout(timer); timer = null;
    if (sending || !cfg) return;
    var events = chunk();
    if (!events.length) return settle();
    var data = body(events);
    sending = w.fetch(cfg.url, {
      method: "POST", keepalive: data.length < MAX_BODY, body: data,
      headers: { "content-type": "application/json", "x-api-key": cfg.key }
    }).then(function (r) {
      // 4xx other than 408 and 429 will never succeed: drop the chunk rather than block the queue
      if (r.ok || (r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429)) return r.ok;
      throw new Error("HTTP " + r.status);
    }).then(function (ok) {
      if (!ok) api.dropped += events.length;
      sent(events);
      attempt = 0;
      sending = null;
      send();
    }, function () {
      sending = null;
      attempt++;
      // Exponential backoff with jitter; the same events (the same event_ids) are sent again
      var cap = Math.min(cfg.maxDelay, 500 * Math.pow(2, Math.min(attempt, 16)));
      timer = setTimeout(send, cap / 2 + Math.random() * cap / 2);
    });
  }
  function sent(events) {
    var i = queue.indexOf(events[0]);
    if (i >= 0) queue.splice(i, events.length);
  }
  function settle() {
    if (queue.length || sending) return;
    var ws = waiters; waiters = [];
    for (var i = 0; i < ws.length; i++) ws[i]();
  }

  function flush() {
    return new Promise(function (resolve) {
      waiters.push(resolve);
      if (!timer || !attempt) send();
      settle();
    });
  }

  // The page is going away: hand every queued event not yet in flight to the browser.
  function hidden() {
    if (!cfg) return;
    clearTimeout(timer); timer = null;
    var skip = 0;
    if (sending) skip = chunk().length; // in flight with keepalive: it completes on its own
    var rest = queue.splice(skip);
    while (rest.length) {
      var held = queue; queue = rest;
      var events = chunk();
      rest = queue.slice(events.length); queue = held;
      if (!events.length) continue;
      var data = body(events), url = cfg.url + "?key=" + encodeURIComponent(cfg.key);
      var nav = w.navigator;
      // text/plain: a beacon of another type would need a CORS preflight, which beacons cannot do
      if (!(nav && nav.sendBeacon && nav.sendBeacon(url, new Blob([data], { type: "text/plain" })))) {
        w.fetch(url, { method: "POST", keepalive: true, body: data, headers: { "content-type": "text/plain" } })
          .catch(function () {});
      }
    }
    settle();
  }

  var api = { init: init, track: track, page: page, identify: identify, flush: flush, dropped: 0 };
  w.eventpipe = api;
})(window);
