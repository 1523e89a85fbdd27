"""Start one Step Functions execution per batch; the batch id names it, so a repeated start is harmless."""

from __future__ import annotations

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

    def start(self, batch_id: str, raw_key: str) -> None:
        # Batch ids are at most 80 characters of [A-Za-z0-9_-], as execution names must be.
        payload = orjson.dumps({"batch_id": batch_id, "raw_key": raw_key}).decode()
        try:
            self._client.start_execution(stateMachineArn=self.state_machine_arn, name=batch_id, input=payload)
        except AWS_ERRORS as exc:
            if error_code(exc) == "ExecutionAlreadyExists":  # a Standard workflow saw this batch: it runs or ran
                return
            raise storage_error(exc, f"cannot start the workflow for batch {batch_id}") from exc
