"""The `erase` function on AWS: an erasure request for one user, by `user_id` and/or `anonymous_id`.

    aws lambda invoke --function-name <stack>-erase --payload '{"user_id": "u-123"}' out.json

Ids are given in clear; with pseudonymisation configured the stored HMAC is matched too. The answer
and the log line hold the time and the counts, never an id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from eventpipe.core.errors import InputError
from eventpipe.core.utf8 import is_utf8_text
from eventpipe.erasure.target import MAX_ID_CHARS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.adapters.aws.erasure import AwsErasure, ErasureAnswer
    from eventpipe.core.enrich import EnrichmentConfig

MAX_IDS = 100


class ErasureServices(Protocol):
    @property
    def erasure(self) -> AwsErasure: ...

    @property
    def enrichment(self) -> EnrichmentConfig: ...


def handle_erase(event: Mapping[str, Any], services: ErasureServices) -> ErasureAnswer:
    """`{"user_id": ID | [ID...], "anonymous_id": ID | [ID...]}`: erase every event of those ids."""
    from eventpipe.erasure.target import ErasureTarget

    if not isinstance(event, dict):
        raise InputError("the erasure request must be an object with user_id and/or anonymous_id")
    user_ids = _ids(event, "user_id")
    anonymous_ids = _ids(event, "anonymous_id")
    if not user_ids and not anonymous_ids:
        raise InputError("give user_id and/or anonymous_id: the ids whose events to erase")
    target = ErasureTarget.of(user_ids, anonymous_ids, services.enrichment.pseudonym_key)
    return services.erasure.erase(target)


def _ids(event: Mapping[str, Any], field: str) -> list[str]:
    value = event.get(field)
    values = [] if value is None else value if isinstance(value, list) else [value]
    if len(values) > MAX_IDS:
        raise InputError(f"{field}: at most {MAX_IDS} ids per request")
    for item in values:
        if not isinstance(item, str) or not 0 < len(item) <= MAX_ID_CHARS or not is_utf8_text(item):
            raise InputError(f"{field} must be a non-empty string of at most {MAX_ID_CHARS} characters")
    return list(values)
