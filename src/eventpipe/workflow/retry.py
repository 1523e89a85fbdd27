"""Retry and Catch of Amazon States Language Task states: which errors they handle and how long to wait.

Retriers and catchers are checked when the definition is loaded; the Task state applies them at
run time, trying its retriers first and its catchers once no retrier takes the error.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eventpipe.workflow.paths import (
    RUNTIME_ERROR,
    DefinitionProblem,
    StatesError,
    check_fields,
    number,
    optional_path,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.workflow.paths import ReferencePath

_ALL_ERRORS = "States.ALL"
_TASK_FAILED = "States.TaskFailed"
_RETRIER_FIELDS = {"ErrorEquals", "IntervalSeconds", "MaxAttempts"} | {
    "BackoffRate",
    "MaxDelaySeconds",
    "JitterStrategy",
}
_CATCHER_FIELDS = {"ErrorEquals", "Next", "ResultPath"}
# Jitter only spreads the retries of concurrent executions apart; it needs no reproducibility.
_jitter = random.Random()


class TaskFailure(StatesError):
    """An exception raised by a task's resource; these are what `States.TaskFailed` matches."""


def handles(error_equals: tuple[str, ...], error: StatesError) -> bool:
    # States.Runtime is terminal in Step Functions: no retrier or catcher ever sees it.
    if error.error == RUNTIME_ERROR:
        return False
    return (
        _ALL_ERRORS in error_equals
        or error.error in error_equals
        or (_TASK_FAILED in error_equals and isinstance(error, TaskFailure))
    )


@dataclass(frozen=True)
class Retrier:
    error_equals: tuple[str, ...]
    interval_seconds: float
    max_attempts: int
    backoff_rate: float
    max_delay_seconds: float | None
    full_jitter: bool

    def delay_seconds(self, retries_done: int) -> float:
        """IntervalSeconds * BackoffRate^n, capped by MaxDelaySeconds; FULL jitter draws from [0, that]."""
        delay = self.interval_seconds * self.backoff_rate**retries_done
        if self.max_delay_seconds is not None:
            delay = min(delay, self.max_delay_seconds)
        return _jitter.uniform(0, delay) if self.full_jitter else delay


@dataclass(frozen=True)
class Catcher:
    error_equals: tuple[str, ...]
    next_state: str
    result_path: ReferencePath | None


def load_retrier(raw: Mapping[str, object], location: str, is_last: bool) -> Retrier:
    check_fields(raw, _RETRIER_FIELDS, location)
    jitter = raw.get("JitterStrategy", "NONE")
    if jitter not in ("FULL", "NONE"):
        raise DefinitionProblem(f"{location}.JitterStrategy must be FULL or NONE, got {jitter!r}")

    def read_number(field: str, default: float, minimum: float, integer: bool = True) -> float:
        return number(raw, field, default=default, minimum=minimum, integer=integer, location=f"{location}.")

    return Retrier(
        error_equals=_error_equals(raw, location, is_last),
        interval_seconds=read_number("IntervalSeconds", default=1, minimum=1),
        max_attempts=int(read_number("MaxAttempts", default=3, minimum=0)),
        backoff_rate=read_number("BackoffRate", default=2.0, minimum=1.0, integer=False),
        max_delay_seconds=read_number("MaxDelaySeconds", default=1, minimum=1) if "MaxDelaySeconds" in raw else None,
        full_jitter=jitter == "FULL",
    )


def load_catcher(raw: Mapping[str, object], location: str, is_last: bool) -> Catcher:
    check_fields(raw, _CATCHER_FIELDS, location)
    next_state = raw.get("Next")
    if not isinstance(next_state, str):
        raise DefinitionProblem(f"{location} needs a Next naming a state")
    return Catcher(_error_equals(raw, location, is_last), next_state, optional_path(raw, "ResultPath"))


def _error_equals(raw: Mapping[str, object], location: str, is_last: bool) -> tuple[str, ...]:
    names = raw.get("ErrorEquals")
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise DefinitionProblem(f"{location}.ErrorEquals must be a non-empty list of error names")
    if _ALL_ERRORS in names and (len(names) > 1 or not is_last):
        raise DefinitionProblem(f"{location}: States.ALL must be alone in ErrorEquals and in the last entry")
    return tuple(names)
