"""The chain a user would write first, for `make bench` to compare against.

json module, python-jsonschema (all errors, formats checked), uncached pure-Python user-agent
parsing, `ipaddress` for anonymisation, urllib for campaigns, and one SQLite insert (and commit)
per event. The same input as `eventpipe ingest`, and about the same work (it skips currency and
fingerprints, so it is, if anything, flattered).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import sqlite3
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import jsonschema
from ua_parser import BasicResolver, Parser, load_builtins

from eventpipe.core.envelope import envelope_with
from eventpipe.core.registry import BUNDLED_SCHEMA_DIR


def main(path: str, db_path: str) -> None:
    validators = {}
    for schema_file in BUNDLED_SCHEMA_DIR.glob("*/*.json"):
        schema = envelope_with(json.loads(schema_file.read_text()), f"urn:{schema_file.parent.name}")
        validators[schema_file.parent.name] = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
    user_agents = Parser(BasicResolver(load_builtins()))
    db = sqlite3.connect(db_path)
    db.execute("CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, event_type TEXT, payload TEXT)")
    counts = {"curated": 0, "duplicates": 0, "rejected": 0}
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                counts["rejected"] += 1
                continue
            validator = validators.get(event.get("event_type")) if isinstance(event, dict) else None
            if validator is None or list(validator.iter_errors(event)):
                counts["rejected"] += 1
                continue
            context = event.get("context", {})
            ua = user_agents.parse(context.get("user_agent", ""))
            query = dict(parse_qsl(urlsplit(context.get("page_url", "")).query))
            ip = ipaddress.ip_address(context.pop("ip", "0.0.0.0"))
            prefix = 24 if ip.version == 4 else 48
            event["enrichment"] = {
                "browser": ua.user_agent.family if ua.user_agent else None,
                "campaign": {k: v for k, v in query.items() if k.startswith("utm_")},
                "ip": str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address),
                "user": hmac.new(b"key", str(event.get("user_id")).encode(), hashlib.sha256).hexdigest(),
            }
            try:
                db.execute(
                    "INSERT INTO events VALUES (?, ?, ?)",
                    (event["event_id"], event["event_type"], json.dumps(event)),
                )
                db.commit()
                counts["curated"] += 1
            except sqlite3.IntegrityError:
                counts["duplicates"] += 1
    print(json.dumps(counts))
    Path(db_path).unlink(missing_ok=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
