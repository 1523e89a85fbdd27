"""The one retry of the AWS adapters (adapters/aws/retry.py): `retried` and its backoff."""

from __future__ import annotations

import pytest

from eventpipe.adapters.aws.retry import Backoff, TryAgain, retried
from eventpipe.core.errors import StorageError


def backoff(sleeps: list[float], attempts: int = 4) -> Backoff:
    return Backoff(attempts=attempts, base_s=0.1, cap_s=0.3, sleep=sleeps.append, jitter=lambda: 1.0)


def test_a_try_that_gets_through_is_not_repeated_and_nothing_waits() -> None:
    sleeps: list[float] = []
    assert retried(backoff(sleeps), "read", lambda: 42) == 42
    assert sleeps == []


def test_tries_that_say_try_again_are_repeated_with_capped_exponential_waits() -> None:
    # GIVEN a try that conflicts twice, then gets through
    sleeps: list[float] = []
    outcomes = iter([TryAgain("conflict"), TryAgain("conflict"), None])

    def one_try() -> str:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome
        return "done"

    # WHEN retried THEN its answer comes back after two waits, the second twice the first
    assert retried(backoff(sleeps), "write", one_try) == "done"
    assert sleeps == pytest.approx([0.1, 0.2])


def test_tries_that_never_get_through_are_a_storage_error_naming_the_action_and_the_last_reason() -> None:
    sleeps: list[float] = []
    cause = RuntimeError("vendor said no")

    def one_try() -> None:
        raise TryAgain(f"{len(sleeps)} items still unprocessed") from cause

    with pytest.raises(StorageError, match=r"^write t: 3 items still unprocessed after 4 tries$") as caught:
        retried(backoff(sleeps), "write t", one_try)
    assert caught.value.__cause__ is cause
    assert sleeps == pytest.approx([0.1, 0.2, 0.3])  # the cap holds the third wait


def test_any_other_exception_passes_through_at_once() -> None:
    sleeps: list[float] = []

    def one_try() -> None:
        raise StorageError("not transient")

    with pytest.raises(StorageError, match="not transient"):
        retried(backoff(sleeps), "write", one_try)
    assert sleeps == []
