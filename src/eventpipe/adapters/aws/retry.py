"""Exponential backoff with full jitter, for what botocore's own retries leave to us.

botocore retries a throttled call a few times by itself; `UnprocessedItems`, conditional races and
throttling that outlasts its budget come back to us. Full jitter (a random wait up to the
exponential cap) keeps many concurrent Lambdas from retrying in step.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@dataclass(frozen=True)
class Backoff:
    attempts: int = 8
    base_s: float = 0.05
    cap_s: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False)

    def waits(self) -> Iterator[None]:
        """Yield before each of `attempts` tries, sleeping before every try but the first.

        Usage: `for _ in backoff.waits(): ... break on success`; falling off the end means
        every attempt failed.
        """
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.jitter() * min(self.cap_s, self.base_s * 2 ** (attempt - 1)))
            yield None


NO_WAIT = Backoff(sleep=lambda _seconds: None)
