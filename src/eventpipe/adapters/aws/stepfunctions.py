"""Start one Step Functions execution per batch; the batch id names it, so a repeated start is harmless."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import orjson

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.errors import AWS_ERRORS, error_code, storage_error

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions.client import SFNClient


class StepFunctionsStarter:
    """The `WorkflowStarter` port on Step Functions. The input is a claim check: a bucket key, never events."""

    def __init__(self, state_machine_arn: str, client: SFNClient | None = None) -> None:
        self.state_machine_arn = state_machine_arn
        self._client: SFNClient = client or make_client("stepfunctions")

    def start(self, batch_id: str, raw_key: str, *, retry: bool = False) -> None:
        """Start the batch's execution, named after the batch.

        A Standard workflow answers a second start of a running execution with success, and of a
        closed one with ExecutionAlreadyExists, taken here as "it ran": the batch record says how.
        A retry of a failed batch gets a new name, since a name cannot be reused for 90 days.
        """
        # Batch ids are at most 30 characters of [A-Za-z0-9_-]: names may have 80.
        name = f"{batch_id}-retry-{time.time_ns() // 1_000_000}" if retry else batch_id
        payload = orjson.dumps({"batch_id": batch_id, "raw_key": raw_key}).decode()
        try:
            self._client.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=payload)
        except AWS_ERRORS as exc:
            if error_code(exc) == "ExecutionAlreadyExists":
                return
            raise storage_error(exc, f"cannot start the workflow for batch {batch_id}") from exc
