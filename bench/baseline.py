"""The chain a competent user writes first, for `make bench` to compare against.

    python bench/baseline.py EVENTS.ndjson WORK_DIR    # prints {"curated", "duplicates", "rejected": {code: n}}

The libraries as their READMEs show them: the json module, python-jsonschema (all errors, formats
checked), ua-parser 1.x through `ua_parser.parse` (its default parser, which caches), `datetime`,
`urllib.parse`, `ipaddress`, `hmac` and `hashlib` for the same enrichments as eventpipe (`user_id`
pseudonymised), one SQLite INSERT per event (curated or quarantined) and one commit per batch of
500 lines, per-minute counts added up in memory and written with each batch. Unique users are not
counted (no sketch library), so it is, if anything, flattered.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import sqlite3
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import ua_parser

from eventpipe.core.enrich.rates import default_rates
from eventpipe.core.envelope import envelope_with
from eventpipe.core.registry import BUNDLED_SCHEMA_DIR

BATCH = 500
KEY = b"lean-bench-pseudonym-key-32-bytes"
UTM = {"utm_source": "source", "utm_medium": "medium", "utm_campaign": "name", "utm_term": "term"}


def load_validators() -> dict[str, jsonschema.Draft202012Validator]:
    validators = {}
    for schema_file in BUNDLED_SCHEMA_DIR.glob("*/*.json"):
        schema = envelope_with(json.loads(schema_file.read_text()), f"urn:{schema_file.parent.name}")
        validators[schema_file.parent.name] = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
    return validators


def enrich(event: dict, received_at: datetime, rates: dict[str, float]) -> dict:
    """The enrichment of eventpipe's chain, written plainly; ValueError when an event cannot be enriched."""
    occurred = datetime.fromisoformat(event["occurred_at"])
    skew = received_at - datetime.fromisoformat(event["sent_at"]) if "sent_at" in event else None
    corrected = occurred + skew if skew is not None else occurred
    context = event.get("context", {})
    enrichment: dict = {
        "corrected_at": corrected.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "clock_skew_ms": int(skew.total_seconds() * 1000) if skew is not None else 0,
        "event_time_ms": int(corrected.timestamp() * 1000),
    }
    if context.get("user_agent"):
        ua = ua_parser.parse(context["user_agent"])
        enrichment["user_agent"] = {
            "browser": ua.user_agent.family if ua.user_agent else "Other",
            "browser_version": ua.user_agent.major if ua.user_agent else None,
            "os": ua.os.family if ua.os else "Other",
            "device": ua.device.family if ua.device else "Other",
        }
    page = urlsplit(context.get("page_url", ""))
    campaign = {UTM[k]: v for k, v in parse_qsl(page.query) if k in UTM}
    if campaign:
        enrichment["campaign"] = campaign
    if context.get("referrer"):
        host = (urlsplit(context["referrer"]).hostname or "").removeprefix("www.")
        enrichment["referrer"] = {"host": host, "internal": host == (page.hostname or "").removeprefix("www.")}
    if "ip" in context:
        ip = ipaddress.ip_address(context.pop("ip"))
        network = ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 48}", strict=False)
        enrichment["ip"] = str(network.network_address)
    if event.get("user_id"):
        event["user_id"] = hmac.new(KEY, str(event["user_id"]).encode(), hashlib.sha256).hexdigest()[:32]
    properties = event["properties"]
    if "revenue" in properties and "currency" in properties:
        if properties["currency"] not in rates:
            raise ValueError(f"unknown currency {properties['currency']}")
        enrichment["revenue"] = {"amount": round(properties["revenue"] / rates[properties["currency"]], 4)}
    content = [event["event_type"], event.get("user_id"), event["occurred_at"], properties]
    digest = hashlib.blake2b(json.dumps(content, sort_keys=True).encode(), digest_size=16)
    enrichment["fingerprint"] = digest.hexdigest()
    return enrichment


def main(path: str, work: str) -> None:
    validators = load_validators()
    rates = default_rates()
    Path(work).mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(Path(work) / "baseline.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE events (event_id TEXT PRIMARY KEY, event_type TEXT, payload TEXT)")
    db.execute("CREATE TABLE quarantine (line INTEGER, reason TEXT, raw TEXT)")
    db.execute("CREATE TABLE counts (minute INTEGER, event_type TEXT, n INTEGER, PRIMARY KEY (minute, event_type))")
    counts: Counter[str] = Counter()
    per_minute: Counter[tuple[int, str]] = Counter()
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            received_at = datetime.now(UTC)
            reason = None
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                reason = "malformed_json"
            else:
                validator = validators.get(event.get("event_type")) if isinstance(event, dict) else None
                if validator is None:
                    reason = "unknown_event_type"
                elif errors := list(validator.iter_errors(event)):
                    reason = errors[0].message[:200]
                else:
                    try:
                        event["enrichment"] = enrich(event, received_at, rates)
                    except ValueError as exc:
                        reason = str(exc)
            if reason is not None:
                db.execute("INSERT INTO quarantine VALUES (?, ?, ?)", (number, reason, line))
                counts["rejected"] += 1
            else:
                try:
                    db.execute(
                        "INSERT INTO events VALUES (?, ?, ?)",
                        (event["event_id"], event["event_type"], json.dumps(event)),
                    )
                    counts["curated"] += 1
                    per_minute[event["enrichment"]["event_time_ms"] // 60_000, event["event_type"]] += 1
                except sqlite3.IntegrityError:
                    counts["duplicates"] += 1
            if number % BATCH == 0:
                flush(db, per_minute)
    flush(db, per_minute)
    print(json.dumps(counts))


def flush(db: sqlite3.Connection, per_minute: Counter[tuple[int, str]]) -> None:
    db.executemany(
        "INSERT INTO counts VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
        [(minute, event_type, n) for (minute, event_type), n in per_minute.items()],
    )
    per_minute.clear()
    db.commit()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
