"""Start one Step Functions execution per batch, named after it; the batch record, not the execution,
says whether the batch is done, so a repeated start is harmless."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import orjson

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.errors import AWS_ERRORS, error_code, storage_error
from eventpipe.core.batch_ids import execution_retry_name

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions.client import SFNClient


class StepFunctionsStarter:
    """The `WorkflowStarter` port on Step Functions. The input is a claim check: a bucket key, never events."""

    def __init__(self, state_machine_arn: str, client: SFNClient | None = None) -> None:
        self.state_machine_arn = state_machine_arn
        self._client: SFNClient = client or make_client("stepfunctions")

    def start(self, batch_id: str, raw_key: str, *, retry: bool = False) -> None:
        """Start an execution for the batch, named after it (a retry: `<batch_id>-retry-<ms>`).

        The workflow is Express: Step Functions does not deduplicate its executions by name, and
        DescribeExecution does not serve them. Nothing here needs either: the batch record is the
        source of truth. ProcessBatch does nothing for a batch that is done, and every step may run
        twice, so a second execution of a batch (a repeated start, a restart racing the first run)
        stores and counts nothing twice. On a Standard workflow, a name taken by a closed execution
        answers ExecutionAlreadyExists, and the batch is started under a retry name instead.
        """
        payload = orjson.dumps({"batch_id": batch_id, "raw_key": raw_key}).decode()
        if retry or not self._start(batch_id, batch_id, payload):
            # Batch ids have at most 31 characters of [A-Za-z0-9_-]: with the suffix, under the 80 allowed.
            self._start(execution_retry_name(batch_id, time.time_ns() // 1_000_000), batch_id, payload)

    def _start(self, name: str, batch_id: str, payload: str) -> bool:
        """Start an execution; False when the name is taken (a Standard workflow keeps names 90 days)."""
        try:
            self._client.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=payload)
        except AWS_ERRORS as exc:
            if error_code(exc) != "ExecutionAlreadyExists":
                raise storage_error(exc, f"cannot start the workflow for batch {batch_id}") from exc
            return False
        return True
