"""Settings.from_env: every EVENTPIPE_* variable, parsed once, with errors that name the variable."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest

from eventpipe.core.enrich import ALL_ENRICHERS, ENRICHER_ORDER, build_enrichers, default_rates
from eventpipe.core.errors import ConfigError
from eventpipe.core.model import Limits
from eventpipe.settings import AwsResources, Settings

if TYPE_CHECKING:
    from collections.abc import Callable

INT_VARIABLES = {
    "EVENTPIPE_MAX_EVENT_BYTES": "max_event_bytes",
    "EVENTPIPE_MAX_BODY_BYTES": "max_body_bytes",
    "EVENTPIPE_MAX_BATCH_EVENTS": "max_batch_events",
    "EVENTPIPE_MAX_FILE_BYTES": "max_file_bytes",
}


def test_defaults_without_any_variable() -> None:
    # GIVEN an empty environment
    settings = Settings.from_env({})
    # THEN the documented defaults apply (docs/event-envelope.md and docs/cli.md)
    assert settings.data_dir == Path(".eventpipe")
    assert settings.schema_dir is None
    assert settings.limits.max_event_bytes == 64 * 1024
    assert settings.limits.max_body_bytes == 1024 * 1024
    assert settings.limits.max_batch_events == 500
    assert settings.enrichment.enabled == ALL_ENRICHERS
    assert settings.enrichment.pseudonymise_fields == ()
    assert settings.enrichment.pseudonym_key is None
    assert settings.enrichment.base_currency == "EUR"
    assert dict(settings.enrichment.rates) == dict(default_rates())
    # AND the default enrichers can be built: all of them but geo (no database), in their fixed order
    assert settings.enrichment.geoip_db is None
    assert [e.name for e in build_enrichers(settings.enrichment)] == [n for n in ENRICHER_ORDER if n != "geo"]


def test_the_max_file_bytes_default_is_the_documented_one() -> None:
    assert Settings.from_env({}).limits.max_file_bytes == 4_294_967_296


def test_empty_values_mean_the_default() -> None:
    environ = {name: "" for name in INT_VARIABLES} | {"EVENTPIPE_DATA_DIR": "", "EVENTPIPE_SCHEMA_DIR": ""}
    settings = Settings.from_env(environ)
    assert settings.limits == Limits()
    assert settings.data_dir == Path(".eventpipe")
    assert settings.schema_dir is None


def test_paths_are_read(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"EVENTPIPE_DATA_DIR": str(tmp_path / "data"), "EVENTPIPE_SCHEMA_DIR": str(tmp_path / "schemas")}
    )
    assert settings.data_dir == tmp_path / "data"
    assert settings.schema_dir == tmp_path / "schemas"


@pytest.mark.parametrize(("name", "field"), sorted(INT_VARIABLES.items()))
def test_each_limit_is_read_from_its_variable(name: str, field: str) -> None:
    # GIVEN one limit set
    limits = Settings.from_env({name: "1234"}).limits
    # THEN that limit has the value and the others keep their defaults
    assert getattr(limits, field) == 1234
    for other in INT_VARIABLES.values():
        if other != field:
            assert getattr(limits, other) == getattr(Limits(), other)


def test_all_limits_together() -> None:
    environ = {name: str(n) for n, name in enumerate(sorted(INT_VARIABLES), start=1)}
    limits = Settings.from_env(environ).limits
    assert limits == Limits(max_batch_events=1, max_body_bytes=2, max_event_bytes=3, max_file_bytes=4)


@pytest.mark.parametrize("name", sorted(INT_VARIABLES))
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("abc", "whole number"),
        ("1.5", "whole number"),
        ("10k", "whole number"),
        ("0", "greater than 0"),
        ("-5", "greater than 0"),
    ],
)
def test_a_bad_limit_is_a_config_error_naming_the_variable(name: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)
    assert repr(value) in str(info.value)


def test_enrichers_none_switches_every_enricher_off() -> None:
    settings = Settings.from_env({"EVENTPIPE_ENRICHERS": "none"})
    assert settings.enrichment.enabled == frozenset()
    assert build_enrichers(settings.enrichment) == []


def test_enrichers_all_is_every_enricher() -> None:
    assert Settings.from_env({"EVENTPIPE_ENRICHERS": " all "}).enrichment.enabled == ALL_ENRICHERS


def test_enrichers_list_is_trimmed_and_runs_in_the_fixed_order() -> None:
    # GIVEN a list with spaces, an empty item, and an order unlike the fixed one
    settings = Settings.from_env({"EVENTPIPE_ENRICHERS": " currency, ip ,,timestamps"})
    # THEN the names are read, and the chain runs them in ENRICHER_ORDER
    assert settings.enrichment.enabled == frozenset({"currency", "ip", "timestamps"})
    assert [e.name for e in build_enrichers(settings.enrichment)] == ["timestamps", "ip", "currency"]


def test_an_unknown_enricher_fails_when_the_enrichers_are_built() -> None:
    # GIVEN a list with a typo: reading the environment does not judge names
    settings = Settings.from_env({"EVENTPIPE_ENRICHERS": "ip,user_agnet"})
    # WHEN the chain is built
    with pytest.raises(ConfigError, match="user_agnet") as info:
        build_enrichers(settings.enrichment)
    # THEN the error names the bad one and lists the known ones
    assert "user_agent" in str(info.value)


def test_an_empty_enrichers_variable_means_the_default() -> None:
    assert Settings.from_env({"EVENTPIPE_ENRICHERS": ""}).enrichment.enabled == ALL_ENRICHERS


def test_pseudonymise_fields_and_key_are_read() -> None:
    settings = Settings.from_env(
        {"EVENTPIPE_PSEUDONYMISE_FIELDS": "user_id, context.email,", "EVENTPIPE_PSEUDONYM_KEY": "k" * 32}
    )
    assert settings.enrichment.pseudonymise_fields == ("user_id", "context.email")
    assert settings.enrichment.pseudonym_key == b"k" * 32
    assert "pseudonymise" in [e.name for e in build_enrichers(settings.enrichment)]


def test_pseudonymise_fields_without_a_key_fail_when_the_enrichers_are_built() -> None:
    settings = Settings.from_env({"EVENTPIPE_PSEUDONYMISE_FIELDS": "user_id"})
    assert settings.enrichment.pseudonym_key is None
    with pytest.raises(ConfigError, match="pseudonym key"):
        build_enrichers(settings.enrichment)


def test_the_key_is_kept_out_of_the_settings_repr() -> None:
    settings = Settings.from_env({"EVENTPIPE_PSEUDONYM_KEY": "s3cret-key-value"})
    assert "s3cret-key-value" not in repr(settings)


def test_a_currency_rates_file_sets_the_base_and_the_rates(tmp_path: Path) -> None:
    # GIVEN a USD-based rates file without USD itself
    path = tmp_path / "rates.json"
    path.write_bytes(orjson.dumps({"base": "USD", "rates": {"EUR": 0.5, "GBP": 0.25}}))
    # WHEN it is named
    enrichment = Settings.from_env({"EVENTPIPE_CURRENCY_RATES": str(path)}).enrichment
    # THEN it is the base, at 1.0
    assert enrichment.base_currency == "USD"
    assert dict(enrichment.rates) == {"EUR": 0.5, "GBP": 0.25, "USD": 1.0}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected an object"),
        (b'{"base": "eur", "rates": {"USD": 1.1}}', "3 upper-case letters"),
        (b'{"base": "EUR", "rates": {}}', "non-empty object"),
        (b'{"base": "EUR", "rates": {"USD": -1}}', "positive number"),
        (b'{"base": "EUR", "rates": {"USD": "1.1"}}', "must be a number"),
        (b'{"base": "EUR", "rates": {"USD": true}}', "must be a number"),
        (b'{"base": "EUR", "rates": {"EUR": 2.0}}', "must have rate 1.0"),
    ],
)
def test_a_malformed_currency_rates_file_is_a_config_error(tmp_path: Path, content: bytes, problem: str) -> None:
    # GIVEN a rates file with one mistake
    path = tmp_path / "rates.json"
    path.write_bytes(content)
    # WHEN the settings are read
    with pytest.raises(ConfigError, match=problem) as info:
        Settings.from_env({"EVENTPIPE_CURRENCY_RATES": str(path)})
    # THEN the error names the file
    assert f"currency rates file {path}" in str(info.value)


def test_a_missing_currency_rates_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    with pytest.raises(ConfigError, match="cannot read") as info:
        Settings.from_env({"EVENTPIPE_CURRENCY_RATES": str(path)})
    assert "EVENTPIPE_CURRENCY_RATES" in str(info.value)
    assert str(path) in str(info.value)


def test_the_batch_size_is_capped() -> None:
    # A batch is one workflow execution, whose state must stay small.
    assert Settings.from_env({"EVENTPIPE_MAX_BATCH_EVENTS": "5000"}).limits.max_batch_events == 5000
    with pytest.raises(ConfigError, match="EVENTPIPE_MAX_BATCH_EVENTS=5001 is above the most allowed, 5000"):
        Settings.from_env({"EVENTPIPE_MAX_BATCH_EVENTS": "5001"})


def test_the_sqlite_cache_is_read_and_checked() -> None:
    assert Settings.from_env({}).sqlite_cache_mib == 4
    assert Settings.from_env({"EVENTPIPE_SQLITE_CACHE_MIB": "32"}).sqlite_cache_mib == 32
    with pytest.raises(ConfigError, match="EVENTPIPE_SQLITE_CACHE_MIB"):
        Settings.from_env({"EVENTPIPE_SQLITE_CACHE_MIB": "0"})


def test_event_size_is_capped_so_an_event_fits_a_dynamodb_item() -> None:
    assert Settings.from_env({"EVENTPIPE_MAX_EVENT_BYTES": "262144"}).limits.max_event_bytes == 262144
    with pytest.raises(ConfigError, match="EVENTPIPE_MAX_EVENT_BYTES=262145 is above the most allowed, 262144"):
        Settings.from_env({"EVENTPIPE_MAX_EVENT_BYTES": "262145"})


AWS_NAMES = {
    "EVENTPIPE_BUCKET": "b",
    "EVENTPIPE_CURATED_TABLE": "c",
    "EVENTPIPE_STATE_TABLE": "s",
    "EVENTPIPE_INSIGHTS_TABLE": "i",
}


def test_the_curated_items_ttl_defaults_to_a_week_and_is_read_in_days() -> None:

    assert AwsResources.from_env(AWS_NAMES).curated_ttl_days == 7
    assert AwsResources.from_env({**AWS_NAMES, "EVENTPIPE_CURATED_TTL_DAYS": "30"}).curated_ttl_days == 30


@pytest.mark.parametrize("text", ["0", "-1", "seven", "1.5"])
def test_a_curated_ttl_that_is_not_a_positive_number_of_days_is_refused(text: str) -> None:

    with pytest.raises(ConfigError, match="EVENTPIPE_CURATED_TTL_DAYS"):
        AwsResources.from_env({**AWS_NAMES, "EVENTPIPE_CURATED_TTL_DAYS": text})


def test_the_dedup_filter_size_is_read_and_checked() -> None:
    assert Settings.from_env({}).dedup_filter_mib == 64
    assert Settings.from_env({"EVENTPIPE_DEDUP_FILTER_MIB": "48"}).dedup_filter_mib == 48
    for bad, message in (("0", "greater than 0"), ("4097", "above the most allowed, 4096"), ("x", "whole number")):
        with pytest.raises(ConfigError, match=f"EVENTPIPE_DEDUP_FILTER_MIB.*{message}"):
            Settings.from_env({"EVENTPIPE_DEDUP_FILTER_MIB": bad})


@pytest.mark.parametrize("bad", ["512MiB", "1.5", "-1", "0x200", "1e3", "half"])
def test_a_malformed_pending_bound_is_refused_naming_the_variable(bad: str) -> None:
    with pytest.raises(
        ConfigError, match=f"^EVENTPIPE_MAX_PENDING_MIB={bad!r} (is not a whole number|must be greater)"
    ):
        Settings.from_env({"EVENTPIPE_MAX_PENDING_MIB": bad})


@pytest.mark.parametrize(
    ("name", "most", "read"),
    [
        ("EVENTPIPE_MAX_BATCH_EVENTS", 5000, lambda s: s.limits.max_batch_events),
        ("EVENTPIPE_MAX_EVENT_BYTES", 262144, lambda s: s.limits.max_event_bytes),
        ("EVENTPIPE_DEDUP_FILTER_MIB", 4096, lambda s: s.dedup_filter_mib),
        ("EVENTPIPE_GROUP_MAX_EVENTS", 5000, lambda s: s.group_max_events),
        ("EVENTPIPE_WORKER_PROCESSES", 16, lambda s: s.worker_processes),
        ("EVENTPIPE_MAX_PENDING_MIB", 65536, lambda s: s.max_pending_mib),
        ("EVENTPIPE_MAX_BODY_BYTES", 256 * 1024**2, lambda s: s.limits.max_body_bytes),
        ("EVENTPIPE_MAX_FILE_BYTES", 1 << 40, lambda s: s.limits.max_file_bytes),
        ("EVENTPIPE_SQLITE_CACHE_MIB", 65536, lambda s: s.sqlite_cache_mib),
        ("EVENTPIPE_SCHEMA_REFRESH_S", 86400, lambda s: s.schema_refresh_s),
    ],
)
def test_a_capped_whole_number_is_taken_up_to_its_most_and_refused_above(
    name: str, most: int, read: Callable[[Settings], int]
) -> None:
    assert read(Settings.from_env({name: str(most)})) == most
    with pytest.raises(ConfigError, match=f"^{name}={most + 1} is above the most allowed, {most}$"):
        Settings.from_env({name: str(most + 1)})
    with pytest.raises(ConfigError, match=f"^{name}='0' must be greater than 0$"):
        Settings.from_env({name: "0"})


@pytest.mark.parametrize(
    ("name", "most", "read"),
    [
        ("EVENTPIPE_MICROBATCH_BELOW_EVENTS", 5000, lambda r: r.microbatch_below_events),
        ("EVENTPIPE_CURATED_TTL_DAYS", 36500, lambda r: r.curated_ttl_days),
        ("EVENTPIPE_QUARANTINE_TTL_DAYS", 36500, lambda r: r.quarantine_ttl_days),
    ],
)
def test_a_capped_aws_setting_is_taken_up_to_its_most_and_refused_above(
    name: str, most: int, read: Callable[[AwsResources], int]
) -> None:
    assert read(AwsResources.from_env({**AWS_NAMES, name: str(most)})) == most
    with pytest.raises(ConfigError, match=f"^{name}={most + 1} is above the most allowed, {most}$"):
        AwsResources.from_env({**AWS_NAMES, name: str(most + 1)})
