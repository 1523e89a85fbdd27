// eventpipe dashboard: every 3 s it reads GET /insights (of the app chosen), /health,
// /dashboard/rejections and /dashboard/apps and redraws with Plotly.react. Data reaches the DOM only as text (textContent, text nodes), never as
// HTML: the rejections' raw text is whatever a client sent.
"use strict";

(() => {
  const REFRESH_MS = 3000;
  const WINDOW_MS = 60 * 60 * 1000; // the API's default window
  const FETCH_TIMEOUT_MS = 8000;
  const MINUTE_MS = 60 * 1000;
  const MIN_AXIS_MS = 10 * MINUTE_MS; // the time axis shows at least the last ten minutes
  const FUNNEL_STEPS = ["page_view", "add_to_cart", "purchase"];
  // Okabe-Ito colours (told apart with colour-blindness too); known names keep their colour.
  const COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#882255", "#117733"];
  const KNOWN = ["page_view", "add_to_cart", "purchase", "signup", "malformed_json", "too_large",
    "envelope_invalid", "unknown_event_type", "unknown_schema_version", "schema_violation", "enrichment_failed"];
  const PLOT_CONFIG = { displayModeBar: false, showSendToCloud: false, responsive: true };
  const numberFormat = new Intl.NumberFormat();
  let timer = null;

  class HttpError extends Error {
    constructor(status, hadToken) {
      super(`HTTP ${status}`);
      this.status = status;
      this.hadToken = hadToken;
    }
  }

  class UnreachableError extends Error {} // no answer at all: refused, reset or timed out

  const byId = (id) => document.getElementById(id);

  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    node.append(...children.map((child) => (child instanceof Node ? child : String(child ?? ""))));
    return node;
  }

  function token() {
    return new URLSearchParams(location.hash.slice(1)).get("token");
  }

  async function getJSON(path) {
    const secret = token();
    const headers = { Accept: "application/json" };
    if (secret) headers.Authorization = `Bearer ${secret}`;
    let response;
    try {
      response = await fetch(path, { headers, cache: "no-store", signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    } catch (error) {
      throw new UnreachableError(error.message);
    }
    if (!response.ok) throw new HttpError(response.status, Boolean(secret));
    return response.json();
  }

  function colour(name) {
    const known = KNOWN.indexOf(name);
    if (known >= 0) return COLOURS[known % COLOURS.length];
    let hash = 0;
    for (const char of name) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
    return COLOURS[hash % COLOURS.length];
  }

  // Plotly's date axes have no time zones: give them local wall-clock time.
  function localTime(ms) {
    const d = new Date(ms);
    const two = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ` +
      `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  }

  // Every minute from the first that holds data (or the last ten, if later) to now, with the document's
  // row for it (or undefined): quiet minutes show as 0. A fresh run's few minutes fill the axis rather than
  // its right edge; once an hour of data is there, the axis is the hour.
  function minuteGrid(doc) {
    const rows = new Map(doc.minutes.map((row) => [Date.parse(row.minute), row]));
    const since = Math.floor(Date.parse(doc.since) / MINUTE_MS) * MINUTE_MS;
    const last = Math.floor(Date.parse(doc.until) / MINUTE_MS) * MINUTE_MS;
    const firstData = Math.min(last, ...rows.keys());
    const first = Math.max(since, Math.min(firstData, last - MIN_AXIS_MS));
    const grid = [];
    for (let t = first; t <= last; t += MINUTE_MS) grid.push({ x: localTime(t), row: rows.get(t) });
    grid.range = [localTime(first - MINUTE_MS / 2), localTime(last + MINUTE_MS / 2)]; // the same on every chart
    return grid;
  }

  function sortedKeys(grid, field) {
    const names = new Set(grid.flatMap(({ row }) => Object.keys(row?.[field] ?? {})));
    return [...names].sort((a, b) => (KNOWN.indexOf(a) + 1 || 99) - (KNOWN.indexOf(b) + 1 || 99) || a.localeCompare(b));
  }

  function stackedBars(grid, field) {
    const x = grid.map((m) => m.x);
    return sortedKeys(grid, field).map((name) => ({
      type: "bar", name, x, y: grid.map(({ row }) => row?.[field]?.[name] ?? 0), marker: { color: colour(name) },
    }));
  }

  const sum = (counts) => Object.values(counts).reduce((total, n) => total + n, 0);

  function hasData(traces) {
    return traces.some((trace) => (trace.type === "funnel" ? trace.x : trace.y).some((v) => v));
  }

  // One chart; `yTitle` names the y axis, `funnel` swaps the time axis for the funnel's steps, and
  // `summary` is what a screen reader says for it.
  function draw(id, traces, { summary, xRange, yTitle = "", legend = true, funnel = false } = {}) {
    const axis = { gridcolor: "#eaeef2", zerolinecolor: "#8c959f" };
    const layout = {
      height: 280, margin: funnel ? { l: 100, r: 16, t: 8, b: 24 } : { l: 60, r: 16, t: 28, b: 36 },
      barmode: "stack", paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff", colorway: COLOURS,
      font: { family: "system-ui, sans-serif", size: 12, color: "#1f2328" },
      showlegend: legend, legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      xaxis: funnel ? {} : { ...axis, type: "date", tickformat: "%H:%M", range: xRange },
      yaxis: funnel ? {} : { ...axis, rangemode: "tozero", title: { text: yTitle } },
      uirevision: "keep", // a user's zoom survives refreshes until the window moves on a minute
      annotations: hasData(traces) ? [] : [{
        text: "No data yet", xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false,
        font: { size: 16, color: "#57606a" },
      }],
    };
    byId(id).setAttribute("aria-label", summary);
    return Plotly.react(byId(id), traces, layout, PLOT_CONFIG);
  }

  function drawCharts(doc) {
    const grid = minuteGrid(doc);
    const x = grid.map((m) => m.x);
    const perMinute = (pick) => grid.map(({ row }) => (row ? pick(row) : 0));
    const { totals, funnel, lag_ms: lagTotal } = doc;
    const count = (n) => numberFormat.format(n);
    const reached = FUNNEL_STEPS.map((step) => `${count(funnel[step] ?? 0)} sessions reached ${step}`);
    byId("revenue-title").textContent = `Revenue per minute (${doc.currency})`;
    draw("chart-events", stackedBars(grid, "events"), {
      summary: `Events per minute, by type: ${count(totals.events)} in the window`,
      xRange: grid.range, yTitle: "events",
    });
    draw("chart-users", [{
      type: "scatter", mode: "lines", fill: "tozeroy", name: "unique users", x,
      y: perMinute((row) => row.unique_users), line: { color: COLOURS[0] },
    }], {
      summary: `Unique users per minute: about ${count(totals.unique_users)} in the window`,
      xRange: grid.range, yTitle: "users", legend: false,
    });
    draw("chart-revenue", [{
      type: "bar", name: `revenue (${doc.currency})`, x, y: perMinute((row) => row.revenue),
      marker: { color: COLOURS[2] },
    }], {
      summary: `Revenue per minute: ${money(totals.revenue, doc.currency)} in the window`,
      xRange: grid.range, yTitle: doc.currency, legend: false,
    });
    draw("chart-funnel", [{
      type: "funnel", name: "sessions", y: FUNNEL_STEPS, x: FUNNEL_STEPS.map((step) => funnel[step] ?? 0),
      textinfo: "value+percent initial", marker: { color: FUNNEL_STEPS.map(colour) },
    }], {
      summary: `Funnel: ${reached.join(", ")}`,
      legend: false, funnel: true,
    });
    draw("chart-rejections", stackedBars(grid, "rejected"), {
      summary: `Rejections per minute, by reason: ${count(sum(totals.rejected))} in the window`,
      xRange: grid.range, yTitle: "events",
    });
    const lag = (q) => grid.map(({ row }) => row?.lag_ms?.[q] ?? null); // no events: a gap, not 0 ms
    draw("chart-lag", ["p50", "p95"].map((q, i) => ({
      type: "scatter", mode: "lines+markers", name: q, x, y: lag(q), connectgaps: false,
      line: { color: COLOURS[i === 0 ? 0 : 4] }, marker: { size: 5 },
    })), {
      summary: `Lag per minute: p50 ${lagTotal.p50 ?? "–"} ms and p95 ${lagTotal.p95 ?? "–"} ms over the window`,
      xRange: grid.range, yTitle: "ms",
    });
  }

  function money(value, currency, options = {}) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency, ...options }).format(value);
    } catch {
      return `${value.toFixed(2)} ${currency}`; // a code Intl does not know
    }
  }

  function setNumber(id, value, text = numberFormat.format(value)) {
    const node = byId(id);
    node.dataset.value = String(value);
    node.textContent = text;
  }

  function drawNumbers(doc, health) {
    const totals = doc.totals;
    setNumber("stat-events", totals.events);
    setNumber("stat-users", totals.unique_users);
    // The headline rounds large amounts to fit its card; its tooltip has the exact one.
    const { revenue } = totals;
    const whole = { minimumFractionDigits: 0, maximumFractionDigits: 0 };
    const headline = revenue >= 1e6 ? { notation: "compact" } : revenue >= 1000 ? whole : {};
    setNumber("stat-revenue", revenue, money(revenue, doc.currency, headline));
    byId("stat-revenue").title = money(revenue, doc.currency);
    setNumber("stat-duplicates", totals.duplicates);
    setNumber("stat-rejected", sum(totals.rejected));
    setNumber("stat-bots", totals.bots ?? 0);
    const batches = health.batches ?? {};
    const failed = batches.failed ? ` (${numberFormat.format(batches.failed)} failed)` : "";
    setNumber("stat-pending", batches.pending ?? 0, numberFormat.format(batches.pending ?? 0) + failed);
    const worker = health.worker;
    setNumber("stat-processed", worker?.batches_processed ?? 0);
    setNumber("stat-worker", worker?.alive ? 1 : 0, worker ? (worker.alive ? "alive" : "down") : "–");
  }

  const MAX_COUNTRIES = 10;

  function drawCountries(byCountry) {
    const entries = Object.entries(byCountry).slice(0, MAX_COUNTRIES); // the server sorts them, most first
    const most = entries.length ? entries[0][1] : 0;
    const items = entries.map(([country, n]) => {
      const bar = el("span", "bar");
      bar.style.width = `${Math.max(1, Math.round((100 * n) / most))}%`;
      const item = el("li", null, el("span", "country", country), bar, el("span", "count", numberFormat.format(n)));
      item.dataset.country = country;
      item.dataset.value = String(n);
      return item;
    });
    if (items.length === 0) {
      items.push(el("li", "empty", "No located events: set EVENTPIPE_GEOIP_DB to a GeoLite2 or DB-IP .mmdb file."));
    }
    byId("countries").replaceChildren(...items);
  }

  // The app selector keeps the choice while the list is refreshed; a revoked app stays listed (its data does).
  function drawApps(apps) {
    const select = byId("app-select");
    const chosen = select.value;
    const options = [el("option", null, "All apps")];
    options[0].value = "";
    for (const app of apps) {
      const option = el("option", null, `${app.name} (${app.app_id})${app.revoked ? ", revoked" : ""}`);
      option.value = app.app_id;
      options.push(option);
    }
    select.replaceChildren(...options);
    select.value = apps.some((app) => app.app_id === chosen) ? chosen : "";
  }

  function drawRejections(rejections) {
    const rows = rejections.map((r) => {
      const reasons = el("td", null, ...r.reasons.map((reason) =>
        el("p", "reason", el("span", "code", reason.code), " at ", el("code", null, reason.path),
          `: ${reason.message}`)));
      const raw = el("td", "raw", r.raw);
      raw.title = r.raw; // an attribute set as a property: text, never markup
      return el("tr", null, reasons, el("td", null, r.stage), el("td", "id", r.event_id ?? "–"),
        el("td", "id", `${r.batch_id} #${r.index}`), raw);
    });
    if (rows.length === 0) {
      const cell = el("td", "empty", "No rejections yet.");
      cell.colSpan = 5;
      rows.push(el("tr", null, cell));
    }
    byId("rejections-body").replaceChildren(...rows);
  }

  function setStatus(state, text) {
    const status = byId("status");
    status.dataset.state = state;
    status.textContent = text;
  }

  function explain(error) {
    const now = new Date().toLocaleTimeString();
    if (error instanceof HttpError && error.status === 401) {
      return error.hadToken
        ? "The server refused the token in this page's address (401). Check EVENTPIPE_API_TOKEN and the #token= part."
        : "This server needs a token (it answered 401): add #token=<EVENTPIPE_API_TOKEN> to the end of " +
          "this page's address.";
    }
    if (error instanceof HttpError) {
      return `The server answered HTTP ${error.status} at ${now}; retrying every 3 seconds.`;
    }
    if (error instanceof UnreachableError) {
      return `Cannot reach the server (last try ${now}); retrying every 3 seconds. ` +
        "The numbers shown may be out of date.";
    }
    console.error(error); // a bug here, not the server: keep it visible to developers too
    return `The dashboard could not show the data (${error.message}); retrying every 3 seconds.`;
  }

  async function refresh() {
    const since = new Date(Date.now() - WINDOW_MS).toISOString();
    const app = byId("app-select").value;
    const query = `since=${encodeURIComponent(since)}` + (app ? `&app_id=${encodeURIComponent(app)}` : "");
    try {
      const [doc, health, latest, apps] = await Promise.all([
        getJSON(`/insights?${query}`),
        getJSON("/health"),
        getJSON("/dashboard/rejections?limit=20"),
        getJSON("/dashboard/apps"),
      ]);
      drawApps(apps.apps);
      drawNumbers(doc, health);
      drawCharts(doc);
      drawCountries(doc.totals.by_country ?? {});
      drawRejections(latest.rejections);
      const updated = `updated ${new Date().toLocaleTimeString()}`;
      if (doc.totals.events === 0) {
        setStatus("empty", `No data yet: no curated events in the last 60 minutes (${updated}). ` +
          "Send events to POST /events, or run eventpipe up --demo.");
      } else {
        setStatus("live", `Live: ${updated}.`);
      }
    } catch (error) {
      setStatus(error instanceof HttpError && error.status === 401 ? "auth" : "error", explain(error));
    } finally {
      schedule(REFRESH_MS);
    }
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = setTimeout(refresh, delay);
  }

  window.addEventListener("hashchange", () => schedule(0)); // a token was added: try again at once
  byId("app-select").addEventListener("change", () => schedule(0));
  if (typeof Plotly === "undefined") {
    setStatus("error", "The chart library (/dashboard/vendor/plotly.min.js) did not load: reload the page.");
  } else {
    refresh();
  }
})();
