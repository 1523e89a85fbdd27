"""Settings from environment variables, parsed once; the same names in AWS and on one machine.

Each variable, its default and its bounds are in docs/settings.md; tests/docs/test_settings_reference.py
parses every row of that table here, so a default changed in one place and not the other fails.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, overload

from eventpipe.core.enrich import ALL_ENRICHERS, EnrichmentConfig, load_rates
from eventpipe.core.errors import ConfigError
from eventpipe.core.model import Limits

if TYPE_CHECKING:
    from collections.abc import Mapping

BUNDLED_RATES = Path(__file__).parent / "data" / "currency_rates.json"
MAX_BATCH_EVENTS = 5000
SSM_PARAMETER = re.compile(r"^/?[A-Za-z0-9_.\-/]{1,1011}$")
MAX_BATCH_WINDOW_MS = 60_000
MAX_DEDUP_FILTER_MIB = 4096  # 4 GiB: about 2 billion ids at 16 bits each
MAX_WORKER_PROCESSES = 16  # each holds a runtime (tens of MiB) and shares SQLite's one write lock
# 64 GiB of requests not yet grouped: past that the log is not a backlog that backpressure paces but
# a disk filling (and a value this large is more likely a slip, e.g. bytes given for MiB).
MAX_PENDING_MIB = 65_536
MAX_EVENT_BYTES = 256 * 1024  # a curated event and its quarantine record must fit a 400 KB DynamoDB item
MAX_BODY_BYTES = 256 * 1024**2  # a body is held whole in memory (API Gateway stops at 10 MB anyway)
MAX_FILE_BYTES = 1 << 40  # 1 TiB decompressed: past it, a file is a mistake or a bomb, not a batch of events
MAX_SQLITE_CACHE_MIB = 65_536
MAX_SCHEMA_REFRESH_S = 86_400  # a day: schemas looked for less often than that are as good as never
# Each look is a LIST request (about $0.005 per 1,000) and a round trip inside a batch's invocation, by
# every warm container: once a second would be some $13 a month per busy container for nothing.
MIN_SCHEMA_REFRESH_S = 10
MAX_DAYS = 36_500  # a hundred years: more is a slip, not a policy
MIN_FILE_RANGE_BYTES = 1024 * 1024  # a range per MiB at the least: smaller ranges would cost more invocations than work


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".eventpipe")
    schema_dir: Path | None = None
    limits: Limits = field(default_factory=Limits)
    enrichment: EnrichmentConfig = field(default_factory=EnrichmentConfig)
    sqlite_cache_mib: int = 4
    dedup_filter_mib: int = 64  # the most: the filter is sized to the ids (adapters/local/dedup_runs.py)
    api_token: str | None = field(default=None, repr=False)
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # AWS only (`from_env(on_aws=True)`): read by eventpipe.awsrun at cold start, never held in the environment
    schema_uri: str | None = None
    schema_refresh_s: int = 60
    file_range_bytes: int = 128 * 1024 * 1024
    currency_rates_uri: str | None = None
    geoip_db_uri: str | None = None
    pseudonym_key_param: str | None = None
    batch_window_ms: int = 600  # the oldest request's wait: freshness p95 under 1 s with the group's run
    group_max_events: int = 2000  # `eventpipe up`'s groups: a batch's fixed cost shared by more events
    worker_processes: int = 2  # `eventpipe up`'s runner processes (localrun/runners.py): 1 runs batches in the worker
    max_pending_mib: int = 512  # `eventpipe up`: requests not yet grouped, past which POST /events answers 429

    @property
    def schema_dirs(self) -> tuple[Path, ...]:
        """The user schema directories, loaded after the bundled schemas."""
        return (self.schema_dir,) if self.schema_dir else ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, *, on_aws: bool = False) -> Settings:
        """Read every setting, failing with `ConfigError` that names the variable at fault.

        With `on_aws`, `EVENTPIPE_SCHEMA_DIR`, `EVENTPIPE_CURRENCY_RATES` and `EVENTPIPE_GEOIP_DB` may name
        `s3://` locations and `EVENTPIPE_PSEUDONYM_KEY_PARAM` an SSM parameter: they are kept as names,
        and the AWS runtime reads them. On one machine they are refused.
        """
        remote = _remote_settings(environ, on_aws=on_aws)
        schema_dir = None if remote.get("schema_uri") else environ.get("EVENTPIPE_SCHEMA_DIR")
        defaults = Limits()
        # A batch is one workflow execution: its state must stay far below Step Functions' 256 KiB.
        batch_events = positive_int(
            environ, "EVENTPIPE_MAX_BATCH_EVENTS", defaults.max_batch_events, most=MAX_BATCH_EVENTS
        )
        event_bytes = positive_int(environ, "EVENTPIPE_MAX_EVENT_BYTES", defaults.max_event_bytes, most=MAX_EVENT_BYTES)
        limits = Limits(
            max_event_bytes=event_bytes,
            max_body_bytes=positive_int(
                environ, "EVENTPIPE_MAX_BODY_BYTES", defaults.max_body_bytes, most=MAX_BODY_BYTES
            ),
            max_batch_events=batch_events,
            max_file_bytes=positive_int(
                environ, "EVENTPIPE_MAX_FILE_BYTES", defaults.max_file_bytes, most=MAX_FILE_BYTES
            ),
        )
        enrichers = _names(environ.get("EVENTPIPE_ENRICHERS") or "all")
        rates_file = None if remote.get("currency_rates_uri") else environ.get("EVENTPIPE_CURRENCY_RATES")
        base, rates = load_rates(Path(rates_file or BUNDLED_RATES))  # from S3: replaced at cold start
        key = environ.get("EVENTPIPE_PSEUDONYM_KEY")
        enrichment = EnrichmentConfig(
            enabled=ALL_ENRICHERS if enrichers == ("all",) else frozenset(n for n in enrichers if n != "none"),
            pseudonymise_fields=_names(environ.get("EVENTPIPE_PSEUDONYMISE_FIELDS", "")),
            pseudonym_key=key.encode() if key else None,
            base_currency=base,
            rates=rates,
            geoip_db=Path(geoip)
            if (geoip := environ.get("EVENTPIPE_GEOIP_DB")) and not remote.get("geoip_db_uri")
            else None,
        )
        return cls(
            data_dir=Path(environ.get("EVENTPIPE_DATA_DIR") or ".eventpipe"),
            schema_dir=Path(schema_dir) if schema_dir else None,
            limits=limits,
            enrichment=enrichment,
            sqlite_cache_mib=positive_int(
                environ, "EVENTPIPE_SQLITE_CACHE_MIB", cls.sqlite_cache_mib, most=MAX_SQLITE_CACHE_MIB
            ),
            dedup_filter_mib=positive_int(
                environ, "EVENTPIPE_DEDUP_FILTER_MIB", cls.dedup_filter_mib, most=MAX_DEDUP_FILTER_MIB
            ),
            api_token=environ.get("EVENTPIPE_API_TOKEN") or None,
            trusted_proxies=_networks(environ, "EVENTPIPE_TRUSTED_PROXIES"),
            schema_refresh_s=_schema_refresh_s(environ),
            file_range_bytes=_file_range_bytes(environ, event_bytes),
            batch_window_ms=_window_ms(environ, "EVENTPIPE_BATCH_WINDOW_MS", cls.batch_window_ms),
            group_max_events=positive_int(
                environ, "EVENTPIPE_GROUP_MAX_EVENTS", cls.group_max_events, most=MAX_BATCH_EVENTS
            ),
            worker_processes=positive_int(
                environ, "EVENTPIPE_WORKER_PROCESSES", cls.worker_processes, most=MAX_WORKER_PROCESSES
            ),
            max_pending_mib=positive_int(
                environ, "EVENTPIPE_MAX_PENDING_MIB", cls.max_pending_mib, most=MAX_PENDING_MIB
            ),
            **remote,
        )


def _schema_refresh_s(environ: Mapping[str, str]) -> int:
    value = positive_int(environ, "EVENTPIPE_SCHEMA_REFRESH_S", Settings.schema_refresh_s, most=MAX_SCHEMA_REFRESH_S)
    if value < MIN_SCHEMA_REFRESH_S:
        raise ConfigError(f"EVENTPIPE_SCHEMA_REFRESH_S={value} must be at least {MIN_SCHEMA_REFRESH_S} (seconds)")
    return value


def _file_range_bytes(environ: Mapping[str, str], event_bytes: int) -> int:
    value = positive_int(environ, "EVENTPIPE_FILE_RANGE_BYTES", Settings.file_range_bytes)
    if value < MIN_FILE_RANGE_BYTES or value <= event_bytes:
        raise ConfigError(
            f"EVENTPIPE_FILE_RANGE_BYTES={value} must be at least {MIN_FILE_RANGE_BYTES} and above one event's limit"
        )
    return value


def _remote_settings(environ: Mapping[str, str], *, on_aws: bool) -> dict[str, str]:
    """The settings that name an S3 object or an SSM parameter rather than hold a value."""
    found: dict[str, str] = {}
    for field_name, variable in (
        ("schema_uri", "EVENTPIPE_SCHEMA_DIR"),
        ("currency_rates_uri", "EVENTPIPE_CURRENCY_RATES"),
        ("geoip_db_uri", "EVENTPIPE_GEOIP_DB"),
    ):
        value = environ.get(variable) or ""
        if value.startswith("s3://"):
            if not on_aws:
                raise ConfigError(f"{variable}={value!r}: s3:// locations are read on AWS only; give a local path")
            found[field_name] = value
    parameter = environ.get("EVENTPIPE_PSEUDONYM_KEY_PARAM") or ""
    if parameter:
        if not on_aws:
            raise ConfigError("EVENTPIPE_PSEUDONYM_KEY_PARAM is read on AWS only; set EVENTPIPE_PSEUDONYM_KEY here")
        if environ.get("EVENTPIPE_PSEUDONYM_KEY"):
            raise ConfigError("set EVENTPIPE_PSEUDONYM_KEY_PARAM or EVENTPIPE_PSEUDONYM_KEY, not both")
        if not SSM_PARAMETER.match(parameter):
            raise ConfigError(f"EVENTPIPE_PSEUDONYM_KEY_PARAM={parameter!r} is not an SSM parameter name (/path/name)")
        found["pseudonym_key_param"] = parameter
    return found


@overload
def positive_int(environ: Mapping[str, str], name: str, default: int, *, most: int | None = None) -> int: ...
@overload
def positive_int(environ: Mapping[str, str], name: str, default: None, *, most: int | None = None) -> int | None: ...
def positive_int(environ: Mapping[str, str], name: str, default: int | None, *, most: int | None = None) -> int | None:
    """The whole number `name` holds (`default` when unset or blank), greater than 0 and at most `most`."""
    text = (environ.get(name) or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a whole number") from None
    if value <= 0:
        raise ConfigError(f"{name}={text!r} must be greater than 0")
    if most is not None and value > most:
        raise ConfigError(f"{name}={value} is above the most allowed, {most}")
    return value


def _networks(environ: Mapping[str, str], name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for text in _names(environ.get(name, "")):
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {text!r} is not an IP address or CIDR range") from None
    return tuple(networks)


def _window_ms(environ: Mapping[str, str], name: str, default: int) -> int:
    """0 (no waiting) to 60,000 ms: longer would only delay the events."""
    text = environ.get(name)
    if not text:
        return default
    if not text.isdigit() or int(text) > MAX_BATCH_WINDOW_MS:
        raise ConfigError(f"{name}={text!r} must be a whole number of milliseconds from 0 to {MAX_BATCH_WINDOW_MS}")
    return int(text)


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


@dataclass(frozen=True)
class AwsResources:
    """The names of the AWS resources the Lambda functions use; the templates set them."""

    bucket: str
    curated_table: str
    state_table: str
    insights_table: str
    state_machine_arn: str | None = None
    apps_table: str | None = None
    start_function: str | None = None
    range_function: str | None = None
    analytics_bucket: str | None = None  # only the export writes it
    request_stream: str | None = None  # a Firehose delivery stream's name
    # Requests of this many events or more are batches of their own, not micro-batched.
    microbatch_below_events: int = 100
    # Days a curated event's DynamoDB item lives (its TTL): the deduplication window on AWS.
    curated_ttl_days: int = 7
    # Days a quarantine item lives (its TTL): the stack's RawRetentionDays, as long as raw batches.
    quarantine_ttl_days: int = 30

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> AwsResources:
        names = {
            "bucket": "EVENTPIPE_BUCKET",
            "curated_table": "EVENTPIPE_CURATED_TABLE",
            "state_table": "EVENTPIPE_STATE_TABLE",
            "insights_table": "EVENTPIPE_INSIGHTS_TABLE",
        }
        missing = [variable for variable in names.values() if not environ.get(variable)]
        if missing:
            raise ConfigError(f"{', '.join(missing)} not set: the Lambda functions need every AWS resource named")
        return cls(
            **{field_name: environ[variable] for field_name, variable in names.items()},
            state_machine_arn=environ.get("EVENTPIPE_STATE_MACHINE_ARN") or None,
            apps_table=environ.get("EVENTPIPE_APPS_TABLE") or None,
            start_function=environ.get("EVENTPIPE_START_FUNCTION") or None,
            range_function=environ.get("EVENTPIPE_RANGE_FUNCTION") or None,
            analytics_bucket=environ.get("EVENTPIPE_ANALYTICS_BUCKET") or None,
            request_stream=environ.get("EVENTPIPE_REQUEST_STREAM") or None,
            microbatch_below_events=positive_int(
                environ, "EVENTPIPE_MICROBATCH_BELOW_EVENTS", cls.microbatch_below_events, most=MAX_BATCH_EVENTS
            ),
            curated_ttl_days=positive_int(environ, "EVENTPIPE_CURATED_TTL_DAYS", cls.curated_ttl_days, most=MAX_DAYS),
            quarantine_ttl_days=positive_int(
                environ, "EVENTPIPE_QUARANTINE_TTL_DAYS", cls.quarantine_ttl_days, most=MAX_DAYS
            ),
        )
