"""Settings that live outside the environment on AWS, under moto.

The pseudonym key is read from SSM Parameter Store (SecureString) at cold start; schemas come from
an S3 prefix and are refreshed on a TTL without a deploy; currency rates and the GeoIP database may be
S3 objects.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import boto3
import orjson
import pytest

from eventpipe.adapters.aws.dynamodb_curated import decompress_payload
from eventpipe.core.enrich.pseudonymise import pseudonym
from eventpipe.core.errors import ConfigError, SchemaLoadError, StorageError
from eventpipe.settings import Settings
from tests.aws.conftest import BUCKET, CURATED_TABLE, REGION
from tests.aws.pipeline_harness import Pipeline, count_clients, load_pipeline
from tests.conftest import make_event

if TYPE_CHECKING:
    from pathlib import Path

KEY = "k" * 48
KEY_PARAM = "/eventpipe/test/pseudonym-key"
SCHEMAS = f"s3://{BUCKET}/config/schemas/"
VIDEO_SCHEMA = {"type": "object", "required": ["video_id"], "properties": {"video_id": {"type": "string"}}}


def curated_payload(dynamodb: Any, event_id: str) -> dict[str, Any] | None:
    item = dynamodb.get_item(TableName=CURATED_TABLE, Key={"event_id": {"S": event_id}}).get("Item")
    return None if item is None else dict(orjson.loads(decompress_payload(item["payload"]["B"])))


def ingest(pipeline: Pipeline, *events: dict[str, Any]) -> None:
    pipeline.invoke("ingest", {"events": list(events)})
    pipeline.drain()


# --- parsing: settings.py ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"EVENTPIPE_SCHEMA_DIR": "s3://b/schemas/"}, "s3:// locations are read on AWS only"),
        ({"EVENTPIPE_CURRENCY_RATES": "s3://b/rates.json"}, "s3:// locations are read on AWS only"),
        ({"EVENTPIPE_GEOIP_DB": "s3://b/config/geo.mmdb"}, "s3:// locations are read on AWS only"),
        ({"EVENTPIPE_PSEUDONYM_KEY_PARAM": KEY_PARAM}, "read on AWS only"),
    ],
)
def test_remote_settings_are_refused_on_one_machine(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ)


def test_on_aws_remote_settings_are_kept_as_names() -> None:
    environ = {
        "EVENTPIPE_SCHEMA_DIR": SCHEMAS,
        "EVENTPIPE_CURRENCY_RATES": f"s3://{BUCKET}/config/rates.json",
        "EVENTPIPE_PSEUDONYM_KEY_PARAM": KEY_PARAM,
        "EVENTPIPE_SCHEMA_REFRESH_S": "30",
    }
    settings = Settings.from_env(environ, on_aws=True)
    assert (settings.schema_uri, settings.schema_dir, settings.schema_refresh_s) == (SCHEMAS, None, 30)
    assert settings.currency_rates_uri == f"s3://{BUCKET}/config/rates.json"
    assert settings.pseudonym_key_param == KEY_PARAM
    assert settings.enrichment.pseudonym_key is None  # the key is never in the environment


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"EVENTPIPE_PSEUDONYM_KEY_PARAM": KEY_PARAM, "EVENTPIPE_PSEUDONYM_KEY": KEY}, "not both"),
        ({"EVENTPIPE_PSEUDONYM_KEY_PARAM": "no spaces allowed"}, "not an SSM parameter name"),
        ({"EVENTPIPE_SCHEMA_REFRESH_S": "0"}, "must be greater than 0"),
        ({"EVENTPIPE_SCHEMA_REFRESH_S": "9"}, "must be at least 10"),  # a LIST request a second, per container
    ],
)
def test_bad_remote_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ, on_aws=True)


# --- the pseudonym key from SSM ------------------------------------------------------------------------


def put_key(value: str = KEY) -> None:
    boto3.client("ssm", region_name=REGION).put_parameter(Name=KEY_PARAM, Value=value, Type="SecureString")


def test_the_pseudonym_key_is_read_from_a_securestring_parameter(
    dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the key in SSM, and functions told only its name
    put_key()
    pipeline = load_pipeline(
        monkeypatch, EVENTPIPE_PSEUDONYMISE_FIELDS="user_id", EVENTPIPE_PSEUDONYM_KEY_PARAM=KEY_PARAM
    )
    # WHEN an event with a user id goes through the workflow
    event = make_event("page_view", user_id="u-123")
    ingest(pipeline, event)
    # THEN the curated event holds the HMAC of the id under that key
    stored = curated_payload(dynamodb, event["event_id"])
    assert stored is not None
    assert stored["user_id"] == pseudonym(KEY.encode(), "u-123") != "u-123"


@pytest.mark.parametrize(("value", "message"), [(None, "cannot read SSM parameter"), ("short", "at least 32 bytes")])
def test_a_missing_or_short_key_fails_the_function_at_start(
    dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch, value: str | None, message: str
) -> None:
    if value is not None:
        put_key(value)
    pipeline = load_pipeline(
        monkeypatch, EVENTPIPE_PSEUDONYMISE_FIELDS="user_id", EVENTPIPE_PSEUDONYM_KEY_PARAM=KEY_PARAM
    )
    with pytest.raises(ConfigError, match=message):
        pipeline.module.runtime.steps  # noqa: B018  # what the first workflow step builds


# --- schemas and rates from S3 -------------------------------------------------------------------------


def put_schema(s3: Any, relative: str, schema: Any) -> None:
    body = schema if isinstance(schema, bytes) else orjson.dumps(schema)
    s3.put_object(Bucket=BUCKET, Key=f"config/schemas/{relative}", Body=body)


def video(**properties: Any) -> dict[str, Any]:
    event = make_event("page_view")
    return {**event, "event_type": "video_play", "properties": properties or {"video_id": "v-1"}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def s3_schemas(dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> Pipeline:
    put_schema(s3, "video_play/1-0-0.json", VIDEO_SCHEMA)
    pipeline = load_pipeline(monkeypatch, EVENTPIPE_SCHEMA_DIR=SCHEMAS, EVENTPIPE_SCHEMA_REFRESH_S="60")
    pipeline.module.runtime.monotonic = clock
    return pipeline


def test_a_new_event_type_from_s3_is_validated_without_a_deploy(
    s3_schemas: Pipeline, s3: Any, dynamodb: Any, clock: Clock
) -> None:
    # GIVEN a type that exists only in S3, and the bundled ones
    first, bundled = video(), make_event("signup")
    ingest(s3_schemas, first, bundled)
    assert curated_payload(dynamodb, first["event_id"]) is not None
    assert curated_payload(dynamodb, bundled["event_id"]) is not None
    # WHEN a team uploads a second type
    put_schema(s3, "podcast_play/1-0-0.json", {"type": "object", "required": ["episode"]})
    podcast = {**make_event("page_view"), "event_type": "podcast_play", "properties": {"episode": 7}}
    # THEN it is unknown until the refresh interval has passed ...
    clock.now += 30
    ingest(s3_schemas, podcast)
    assert curated_payload(dynamodb, podcast["event_id"]) is None
    # ... and validated after it, by the same warm container
    clock.now += 31
    again = {**podcast, "event_id": make_event()["event_id"]}
    ingest(s3_schemas, again)
    assert curated_payload(dynamodb, again["event_id"]) is not None


def test_a_broken_schema_upload_keeps_the_schemas_in_use(
    s3_schemas: Pipeline, s3: Any, dynamodb: Any, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    ingest(s3_schemas, video())
    # WHEN a broken file is uploaded and the refresh interval passes
    put_schema(s3, "video_play/1-0-1.json", b"{not json")
    clock.now += 61
    event = video()
    with caplog.at_level(logging.ERROR):
        ingest(s3_schemas, event)
    # THEN the previous schemas stay in use, and the log says why
    assert curated_payload(dynamodb, event["event_id"]) is not None
    assert any(
        "not reloaded" in record.getMessage() and "1-0-1.json" in record.getMessage() for record in caplog.records
    )


@pytest.mark.parametrize(
    ("relative", "body", "message"),
    [
        ("video_play/1-0-1.json", b"{not json", "not valid JSON"),
        ("Video/1-0-0.json", orjson.dumps(VIDEO_SCHEMA), "not <event_type>/<MODEL-REVISION-ADDITION>.json"),
        ("video_play/latest.json", orjson.dumps(VIDEO_SCHEMA), "not <event_type>/<MODEL-REVISION-ADDITION>.json"),
        ("video_play/1-0-2.json", b"x" * (256 * 1024 + 1), "larger than"),
    ],
)
def test_a_broken_schema_at_cold_start_fails_loudly(
    dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch, relative: str, body: bytes, message: str
) -> None:
    put_schema(s3, relative, body)
    pipeline = load_pipeline(monkeypatch, EVENTPIPE_SCHEMA_DIR=SCHEMAS)
    with pytest.raises(SchemaLoadError, match=message):
        pipeline.module.runtime.steps  # noqa: B018


def test_currency_rates_from_s3(dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rates = {"base": "USD", "rates": {"EUR": 0.5}}
    s3.put_object(Bucket=BUCKET, Key="config/rates.json", Body=orjson.dumps(rates))
    pipeline = load_pipeline(monkeypatch, EVENTPIPE_CURRENCY_RATES=f"s3://{BUCKET}/config/rates.json")
    assert pipeline.module.runtime.enrichment.base_currency == "USD"
    purchase = make_event("purchase")
    ingest(pipeline, purchase)
    stored = curated_payload(dynamodb, purchase["event_id"])
    assert stored is not None
    assert stored["enrichment"]["revenue"] == {"amount": pytest.approx(59.9 / 0.5), "currency": "USD"}


def test_the_currency_rates_are_read_with_the_one_s3_client_of_the_container(
    dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a fresh container whose rates are in S3, every client it builds counted
    s3.put_object(Bucket=BUCKET, Key="config/rates.json", Body=orjson.dumps({"base": "USD", "rates": {"EUR": 0.5}}))
    pipeline = load_pipeline(monkeypatch, EVENTPIPE_CURRENCY_RATES=f"s3://{BUCKET}/config/rates.json")
    built = count_clients(pipeline, monkeypatch)
    # WHEN it reads the rates, then a batch's raw events from the bucket
    purchase = make_event("purchase")
    ingest(pipeline, purchase)
    # THEN one S3 client served both
    assert curated_payload(dynamodb, purchase["event_id"]) is not None
    assert built.count("s3") == 1


# --- the GeoIP database from S3 ------------------------------------------------------------------------

GEOIP_DB = f"s3://{BUCKET}/config/geo/city.mmdb"


def test_the_geoip_database_is_read_from_s3_at_cold_start(
    dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.unit.test_enrich_geo import write_city_db

    # GIVEN a City database uploaded under config/ (no Lambda package has room for one)
    s3.put_object(Bucket=BUCKET, Key="config/geo/city.mmdb", Body=write_city_db(tmp_path / "city.mmdb").read_bytes())
    pipeline = load_pipeline(monkeypatch, EVENTPIPE_GEOIP_DB=GEOIP_DB)
    # WHEN an event from an address in Berlin is curated
    event = make_event()
    event["context"]["ip"] = "203.0.113.9"
    ingest(pipeline, event)
    # THEN it has its place, and the database was read once, into the container's temporary folder
    stored = curated_payload(dynamodb, event["event_id"])
    assert stored is not None
    assert stored["enrichment"]["geo"] == {"country": "DE", "region": "Land Berlin", "city": "Berlin"}
    assert pipeline.module.runtime.enrichment.geoip_db.name == "geo.mmdb"


@pytest.mark.parametrize(
    ("body", "most", "message"),
    [
        (b"not a MaxMind database", None, f"EVENTPIPE_GEOIP_DB={GEOIP_DB}: not a readable MaxMind DB"),
        (b"x" * 4097, 4096, f"s3://{BUCKET}/config/geo/city.mmdb is larger than 4096 bytes"),
        (None, None, "cannot read s3://"),
    ],
    ids=["not-mmdb", "too-large", "missing"],
)
def test_a_broken_or_missing_geoip_database_fails_the_function_at_start(
    dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch, body: bytes | None, most: int | None, message: str
) -> None:
    if body is not None:
        s3.put_object(Bucket=BUCKET, Key="config/geo/city.mmdb", Body=body)
    if most is not None:
        monkeypatch.setattr("eventpipe.awsrun.secrets.MAX_GEOIP_DB_BYTES", most)
    pipeline = load_pipeline(monkeypatch, EVENTPIPE_GEOIP_DB=GEOIP_DB)
    with pytest.raises(Exception, match=message) as raised:
        pipeline.module.runtime.enrichment  # noqa: B018
    assert isinstance(raised.value, (ConfigError, StorageError)), raised.value
