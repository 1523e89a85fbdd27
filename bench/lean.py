"""The same work as `eventpipe ingest`, written lean: the reference `make bench` holds eventpipe to.

    python bench/lean.py EVENTS.ndjson WORK_DIR [--batch N]   # prints {"curated", "duplicates", "rejected": {...}}

Same input, schemas, enrichments and outcomes as eventpipe with `user_id` pseudonymised, and the
same guarantees, with no plumbing: one pass over each batch of lines in plain functions.
`bench/run.py` passes `--batch` as the group size eventpipe cuts a file into
(EVENTPIPE_GROUP_MAX_EVENTS), so both share a batch's fixed costs over the same number of events.

- Each batch's raw lines are written and fsynced before they are processed (the acknowledgement),
  its curated payloads to one segment file, fsynced, before the index points at them.
- Validation: the bundled schemas, each compiled once with jsonschema-rs (`is_valid`, then the
  first error only for an invalid event: its code is all the outcome needs).
- Enrichment, every one eventpipe runs: clock skew, user agent (ua-parser behind an lru_cache of
  eventpipe's summary), UTM campaign, referrer host and medium (hosts cached), IP anonymised,
  `user_id` HMAC-SHA256, revenue in EUR (an unknown currency rejects the event), the keyed
  BLAKE2b fingerprint.
- One SQLite transaction per batch: the 16-byte event-id index (first one wins, exact dedup), the
  quarantine, the batch record, per-minute counts and lag, the funnel, and each touched minute's
  HyperLogLog sketch, kept in memory between batches and written serialised (no merge per batch).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import socket
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import datasketches
import jsonschema_rs
import orjson

from eventpipe.core.enrich.rates import default_rates
from eventpipe.core.enrich.referrer import classify_host
from eventpipe.core.enrich.user_agent import summarise_user_agent
from eventpipe.core.envelope import envelope_with
from eventpipe.core.histogram import bucket_of
from eventpipe.core.registry import BUNDLED_SCHEMA_DIR

KEY = b"lean-bench-pseudonym-key-32-bytes"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UTM = {
    "utm_source": "source",
    "utm_medium": "medium",
    "utm_campaign": "name",
    "utm_term": "term",
    "utm_content": "content",
}
FUNNEL = {"page_view": 0, "add_to_cart": 1, "purchase": 2}
SCHEMA = """
CREATE TABLE curated (event_id BLOB PRIMARY KEY, batch_id TEXT, event_type TEXT, idx INTEGER) WITHOUT ROWID;
CREATE TABLE quarantine (batch_id TEXT, idx INTEGER, code TEXT, raw TEXT, PRIMARY KEY (batch_id, idx));
CREATE TABLE batches (batch_id TEXT PRIMARY KEY, curated INTEGER, duplicates INTEGER, rejected TEXT);
CREATE TABLE counts (minute INTEGER, metric TEXT, key TEXT, value REAL, PRIMARY KEY (minute, metric, key))
    WITHOUT ROWID;
CREATE TABLE sketches (minute INTEGER PRIMARY KEY, users BLOB);
CREATE TABLE funnel (minute INTEGER, session_id TEXT, step INTEGER, PRIMARY KEY (minute, session_id, step))
    WITHOUT ROWID;
"""
ADD_COUNT = (
    "INSERT INTO counts VALUES (?, ?, ?, ?)"
    " ON CONFLICT (minute, metric, key) DO UPDATE SET value = value + excluded.value"
)


def validators() -> dict[str, Any]:
    found = {}
    for path in BUNDLED_SCHEMA_DIR.glob("*/*.json"):
        schema = envelope_with(orjson.loads(path.read_bytes()), f"urn:{path.parent.name}")
        found[path.parent.name] = jsonschema_rs.Draft202012Validator(schema, validate_formats=True, offline=True)
    return found


VALIDATORS = validators()
ENVELOPE = next(iter(VALIDATORS.values()))  # any type's validator reports an envelope error first
RATES = default_rates()
FINGERPRINT = hashlib.blake2b(digest_size=16, key=hashlib.blake2b(KEY, digest_size=32, person=b"eventpipe-fp").digest())


def rejection_code(event: Any) -> str:
    """The first reason eventpipe gives for an invalid event."""
    if not isinstance(event, dict):
        return "envelope_invalid"
    event_type = event.get("event_type")
    validator = VALIDATORS.get(event_type) if isinstance(event_type, str) else None
    if validator is None:
        registered = isinstance(event_type, str) and event_type[:1].isalpha() and event_type.islower()
        return "unknown_event_type" if registered else "envelope_invalid"
    error = next(validator.iter_errors(event))
    path = list(error.instance_path)
    if error.kind.name == "required":
        path.append(error.kind.property)
    return "schema_violation" if len(path) > 1 and path[0] == "properties" else "envelope_invalid"


def epoch_ms(text: str) -> int:
    delta = datetime.fromisoformat(text) - EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


@lru_cache(maxsize=4096)
def url_host(url: str) -> str | None:
    rest = url.partition("//")[2]
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2].split(":", 1)[0]
    host = host.lower().rstrip(".").removeprefix("www.")
    return host or None


def anonymise_ip(ip: str) -> str:
    if ip.count(".") == 3 and ":" not in ip:
        socket.inet_aton(ip)  # OSError for a bad address
        return ip[: ip.rfind(".")] + ".0"
    packed = socket.inet_pton(socket.AF_INET6, ip)
    return socket.inet_ntop(socket.AF_INET6, packed[:6] + bytes(10))


def enrich(event: dict[str, Any], received_ms: int) -> tuple[int, float] | None:
    """Enrich in place; the event time and EUR revenue, or None when eventpipe would reject it."""
    occurred_ms = epoch_ms(event["occurred_at"])
    skew = received_ms - epoch_ms(event["sent_at"]) if "sent_at" in event else 0
    event_ms = occurred_ms + skew
    corrected = datetime.fromtimestamp(event_ms / 1000, UTC).isoformat(timespec="milliseconds")
    out: dict[str, Any] = {"corrected_at": corrected[:-6] + "Z", "clock_skew_ms": skew, "event_time_ms": event_ms}
    context = event.get("context") or {}
    if ua := context.get("user_agent"):
        summary = summarise_user_agent(ua)
        out["user_agent"] = dict(summary)
        out["bot"] = summary["is_bot"]
    page = context.get("page_url") or ""
    if "utm_" in page:
        query = page.partition("#")[0].partition("?")[2]
        campaign = {}
        for pair in query.split("&"):
            key, _, value = pair.partition("=")
            name = UTM.get(key)
            if name is not None and value and name not in campaign:
                campaign[name] = unquote_plus(value) if "%" in value or "+" in value else value
        if campaign:
            out["campaign"] = campaign
    if referrer := context.get("referrer"):
        host = url_host(referrer)
        if host:
            medium = "internal" if url_host(page) == host else classify_host(host)
            out["referrer"] = {"host": host, "medium": medium}
    if ip := context.pop("ip", None):
        try:
            out["ip"] = anonymise_ip(ip)
        except OSError:
            return None
    if user := event.get("user_id"):
        event["user_id"] = hmac.digest(KEY, str(user).encode(), "sha256")[:16].hex()
        out["pseudonymised"] = ["user_id"]
    properties = event["properties"]
    revenue = 0.0
    if "revenue" in properties and "currency" in properties:
        rate = RATES.get(properties["currency"])
        if rate is None:
            return None
        revenue = round(properties["revenue"] / rate, 4)
        out["revenue"] = {"amount": revenue, "currency": "EUR"}
    fingerprint = FINGERPRINT.copy()
    user = event.get("user_id") or event.get("anonymous_id")
    content = [event["event_type"], user, event["occurred_at"], properties]
    fingerprint.update(orjson.dumps(content, option=orjson.OPT_SORT_KEYS))
    out["fingerprint"] = fingerprint.hexdigest()
    event["enrichment"] = out
    return event_ms, revenue


def write_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class Lean:
    def __init__(self, work: Path) -> None:
        self.work = work
        for folder in ("raw", "curated"):
            (work / folder).mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(work / "lean.db", isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-4096"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.executescript(SCHEMA)
        self.sketches: dict[int, datasketches.hll_sketch] = {}
        self.totals: Counter[str] = Counter()

    def batch(self, number: int, lines: list[bytes], received_ms: int) -> None:
        batch_id = f"b-{number}"
        write_durably(self.work / "raw" / f"{batch_id}.ndjson", b"\n".join(lines))
        rejected: Counter[str] = Counter()
        quarantine, keys, payloads, facts = [], [], [], []
        for index, line in enumerate(lines):
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                code: str | None = "malformed_json"
            else:
                validator = VALIDATORS.get(event.get("event_type")) if isinstance(event, dict) else None
                code = None if validator is not None and validator.is_valid(event) else rejection_code(event)
            if code is None and (fact := enrich(event, received_ms)) is not None:
                keys.append(bytes.fromhex(event["event_id"].replace("-", "")))
                payloads.append(orjson.dumps(event))
                facts.append((event["event_type"], *fact, event.get("user_id") or event.get("anonymous_id"), event))
                continue
            code = code or "enrichment_failed"
            rejected[code] += 1
            quarantine.append((batch_id, index, code, line.decode("utf-8", "replace")))
        if payloads:
            write_durably(self.work / "curated" / f"{batch_id}.ndjson", b"\n".join(payloads))
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.store(batch_id, keys, facts, rejected, quarantine, received_ms)

    def store(self, batch_id: str, keys: list[bytes], facts: list[Any], rejected: Counter[str], quarantine: list[Any],
              received_ms: int) -> None:  # fmt: skip
        db, now_ms = self.db, time.time_ns() // 1_000_000
        marks = ",".join("?" * len(keys))
        stored = {row[0] for row in db.execute(f"SELECT event_id FROM curated WHERE event_id IN ({marks})", keys)}
        rows, counts, funnel = [], Counter[tuple[int, str, str]](), set()
        for index, (key, (event_type, event_ms, revenue, user, event)) in enumerate(zip(keys, facts, strict=True)):
            if key in stored:
                continue
            stored.add(key)
            rows.append((key, batch_id, event_type, index))
            minute = event_ms // 60_000 * 60
            counts[minute, "events", event_type] += 1
            counts[minute, "revenue", ""] += revenue
            counts[minute, "lag", str(bucket_of(max(0, now_ms - event_ms)))] += 1
            if user:
                sketch = self.sketches.get(minute) or self.sketch(minute)
                sketch.update(user)
            step = FUNNEL.get(event_type)
            if step is not None and (session := event.get("session_id")):
                funnel.add((minute, session, step))
        duplicates = len(keys) - len(rows)
        batch_minute = received_ms // 60_000 * 60
        for code, count in rejected.items():
            counts[batch_minute, "rejected", code] += count
        counts[batch_minute, "duplicates", ""] += duplicates
        db.executemany("INSERT INTO curated VALUES (?, ?, ?, ?)", rows)
        db.executemany("INSERT OR IGNORE INTO quarantine VALUES (?, ?, ?, ?)", quarantine)
        db.executemany(ADD_COUNT, [(*key, value) for key, value in counts.items()])
        db.executemany("INSERT OR IGNORE INTO funnel VALUES (?, ?, ?)", sorted(funnel))
        touched = {minute for minute, metric, _ in counts if metric == "events"}
        db.executemany(
            "INSERT OR REPLACE INTO sketches VALUES (?, ?)",
            [(minute, self.sketches[minute].serialize_compact()) for minute in touched if minute in self.sketches],
        )
        db.execute("INSERT INTO batches VALUES (?, ?, ?, ?)", (batch_id, len(rows), duplicates, orjson.dumps(rejected)))
        self.totals.update({"curated": len(rows), "duplicates": duplicates, **rejected})

    def sketch(self, minute: int) -> datasketches.hll_sketch:
        row = self.db.execute("SELECT users FROM sketches WHERE minute = ?", (minute,)).fetchone()
        sketch = (
            datasketches.hll_sketch.deserialize(row[0])
            if row
            else datasketches.hll_sketch(14, datasketches.tgt_hll_type.HLL_4)
        )
        if len(self.sketches) >= 256:  # a bounded working set: the oldest minute goes back to the store
            self.sketches.pop(min(self.sketches))
        self.sketches[minute] = sketch
        return sketch


def main(path: str, work: str, batch: int) -> None:
    lean = Lean(Path(work))
    with open(path, "rb") as source:
        lines = (line.rstrip(b"\n") for line in source if line.strip())
        number = 0
        while chunk := list(islice(lines, batch)):
            lean.batch(number, chunk, time.time_ns() // 1_000_000)
            number += 1
    totals = lean.totals
    curated, duplicates = totals.pop("curated", 0), totals.pop("duplicates", 0)
    print(
        orjson.dumps({"curated": curated, "duplicates": duplicates, "rejected": dict(sorted(totals.items()))}).decode()
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("events", help="the NDJSON input")
    parser.add_argument("work", help="a folder for the lean chain's files (created)")
    parser.add_argument("--batch", type=int, default=500, help="lines per batch (one transaction, two fsyncs)")
    args = parser.parse_args()
    main(args.events, args.work, args.batch)
