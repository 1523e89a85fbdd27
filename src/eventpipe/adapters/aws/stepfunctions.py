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
        """Start the batch's execution, named after the batch, unless one of that name is running.

        A Standard workflow keeps names for 90 days: a second start of a running execution succeeds
        without a second run; a closed one (failed, timed out, aborted, or done but the start was
        repeated) answers ExecutionAlreadyExists, and the batch is started again under a new name,
        as is a retry of a failed batch. Every step may run twice, so an extra run is harmless.
        """
        payload = orjson.dumps({"batch_id": batch_id, "raw_key": raw_key}).decode()
        if retry or not self._start(batch_id, batch_id, payload):
            # Batch ids have at most 31 characters of [A-Za-z0-9_-]: with the suffix, under the 80 allowed.
            self._start(f"{batch_id}-retry-{time.time_ns() // 1_000_000}", batch_id, payload)

    def _start(self, name: str, batch_id: str, payload: str) -> bool:
        """Start an execution; False when a closed one has that name (a running one counts as started)."""
        try:
            self._client.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=payload)
            return True
        except AWS_ERRORS as exc:
            if error_code(exc) != "ExecutionAlreadyExists":
                raise storage_error(exc, f"cannot start the workflow for batch {batch_id}") from exc
        execution_arn = self.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"
        try:
            status = self._client.describe_execution(executionArn=execution_arn)["status"]
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot look up the execution of batch {batch_id}") from exc
        return status in ("RUNNING", "PENDING_REDRIVE")
