"""The one retry of the AWS adapters: exponential backoff with full jitter, for what botocore leaves to us.

Every client retries throttling and transient errors by itself (botocore's standard mode, `clients.py`).
What comes back to us is retried here, and only here: throttling that outlasts botocore's budget,
BatchWriteItem's `UnprocessedItems` and BatchGetItem's `UnprocessedKeys`, a transaction cancelled by a
conflict, an optimistic write that lost its race. One try of such an operation raises `TryAgain`;
`retried` waits and tries again, up to `Backoff.attempts` tries, then raises `StorageError`. Full
jitter (a random wait up to the exponential cap) keeps many concurrent Lambdas from retrying in step.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from eventpipe.core.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

_T = TypeVar("_T")


@dataclass(frozen=True)
class Backoff:
    attempts: int = 8
    base_s: float = 0.05
    cap_s: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False)

    def waits(self) -> Iterator[None]:
        """Yield before each of `attempts` tries, sleeping before every try but the first."""
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.jitter() * min(self.cap_s, self.base_s * 2 ** (attempt - 1)))
            yield None


NO_WAIT = Backoff(sleep=lambda _seconds: None)


class TryAgain(Exception):
    """One try did not get through (throttled, conflicted, left items unprocessed); its message says how."""


def retried(backoff: Backoff, action: str, one_try: Callable[[], _T]) -> _T:
    """`one_try()` until it returns, waiting after each `TryAgain`; any other exception passes through.

    Past `backoff.attempts` tries: `StorageError("<action>: <the last try's message> after N tries")`.
    """
    last: TryAgain | None = None
    for _ in backoff.waits():
        try:
            return one_try()
        except TryAgain as exc:
            last = exc
    raise StorageError(f"{action}: {last} after {backoff.attempts} tries") from (last.__cause__ if last else None)
