"""The enrichment settings that live outside the environment on AWS, read once at cold start.

- The pseudonym key: an SSM Parameter Store SecureString named by `EVENTPIPE_PSEUDONYM_KEY_PARAM`,
  read with Powertools Parameters (decrypted by SSM; cached for the container's life, so a rotation
  takes effect as containers are replaced: RUNBOOK.md, Key rotation). The template, the
  environment and the Terraform state hold only the parameter's name.
- The currency rates: a JSON file in S3 when `EVENTPIPE_CURRENCY_RATES` is `s3://bucket/key`, read
  with the runtime's S3 client (a container builds one).
- The GeoIP database: a `.mmdb` file in S3 when `EVENTPIPE_GEOIP_DB` is `s3://bucket/key`, copied to
  the container's temporary folder (a Lambda package has no room for one: pyarrow brings it near its
  250 MiB) and opened from there, as a local file would be.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.parameters import SSMProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.s3_config import download_object, parse_s3_uri
from eventpipe.core.enrich import EnrichmentConfig, load_rates
from eventpipe.core.enrich.geo import MAX_GEOIP_DB_BYTES, open_geo_database
from eventpipe.core.enrich.rates import MAX_RATES_BYTES
from eventpipe.core.errors import ConfigError

if TYPE_CHECKING:
    import botocore.session

    from eventpipe.settings import Settings

MIN_KEY_BYTES = 32  # an HMAC key shorter than its hash's output weakens it; 32 random bytes is the floor
KEY_CACHE_S = 365 * 24 * 3600  # read once per container: every container of a deploy uses one key


def resolve_enrichment(settings: Settings, session: botocore.session.Session, s3: Any) -> EnrichmentConfig:
    """`settings.enrichment` with the S3 rates and GeoIP database (read with the client `s3`) and the
    SSM key filled in, where settings name them."""
    config = settings.enrichment
    if settings.currency_rates_uri is not None:
        base, rates = _rates_from_s3(settings.currency_rates_uri, s3)
        config = dataclasses.replace(config, base_currency=base, rates=rates)
    if settings.geoip_db_uri is not None:
        config = dataclasses.replace(config, geoip_db=_geoip_db_from_s3(settings.geoip_db_uri, s3))
    if settings.pseudonym_key_param is not None:
        key = pseudonym_key(settings.pseudonym_key_param, SSMProvider(boto3_client=make_client("ssm", session)))
        config = dataclasses.replace(config, pseudonym_key=key)
    return config


def pseudonym_key(name: str, provider: SSMProvider) -> bytes:
    """The key held by the SecureString parameter `name`; `ConfigError` when it is missing or short."""
    try:
        value = provider.get(name, decrypt=True, max_age=KEY_CACHE_S)
    except GetParameterError as exc:
        raise ConfigError(f"EVENTPIPE_PSEUDONYM_KEY_PARAM: cannot read SSM parameter {name}: {exc}") from exc
    if not isinstance(value, str) or len(value.encode()) < MIN_KEY_BYTES:
        raise ConfigError(
            f"EVENTPIPE_PSEUDONYM_KEY_PARAM: SSM parameter {name} must hold a key of at least {MIN_KEY_BYTES} bytes"
        )
    return value.encode()


def _rates_from_s3(uri: str, s3: Any) -> tuple[str, dict[str, float]]:
    bucket, key = parse_s3_uri(uri, "EVENTPIPE_CURRENCY_RATES")
    with tempfile.TemporaryDirectory(prefix="eventpipe-rates-") as folder:
        path = Path(folder) / "rates.json"
        download_object(s3, bucket, key, path, MAX_RATES_BYTES)
        return load_rates(path)  # the same checks as a local rates file


def _geoip_db_from_s3(uri: str, s3: Any) -> Path:
    """The database copied to a folder of its own, kept for the container's life (the reader maps it)."""
    bucket, key = parse_s3_uri(uri, "EVENTPIPE_GEOIP_DB")
    path = Path(tempfile.mkdtemp(prefix="eventpipe-geo-")) / "geo.mmdb"
    download_object(s3, bucket, key, path, MAX_GEOIP_DB_BYTES)
    try:
        open_geo_database(path)  # checked here, so that the error names the object, not the copy
    except ConfigError:
        raise ConfigError(f"EVENTPIPE_GEOIP_DB={uri}: not a readable MaxMind DB (.mmdb) file") from None
    return path
