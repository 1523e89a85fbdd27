"""Run the Lambda entry points under moto as AWS would: Step Functions executions, interpreted locally
with each Task bound to the Lambda handler its `${...FunctionArn}` names."""

from __future__ import annotations

import gc
import importlib
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import orjson

from eventpipe.core.errors import ExecutionFailedError
from eventpipe.handlers.functions import TASKS
from eventpipe.workflow import PIPELINE_DEFINITION, StateMachine
from tests.aws.conftest import (
    ANALYTICS_BUCKET,
    APPS_TABLE,
    BUCKET,
    CURATED_TABLE,
    INSIGHTS_TABLE,
    REGION,
    STATE_TABLE,
)
from tests.aws.curated_stream import CuratedStream
from tests.aws.insights_stream import InsightsStream, stream_event

if TYPE_CHECKING:
    from types import ModuleType

    import pytest

ACCOUNT = "123456789012"


@dataclass
class LambdaContext:
    function_name: str = "eventpipe-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:eventpipe-test"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"


@dataclass
class Pipeline:
    """The loaded `lambda_pipeline` module with a moto state machine, and the executions it ran."""

    module: ModuleType
    state_machine_arn: str
    sfn: Any
    ran: set[str] = field(default_factory=set)
    failed: list[str] = field(default_factory=list)  # executions that ended in their Fail state
    state_sizes: list[int] = field(default_factory=list)  # bytes of every state input and output
    insights_stream: InsightsStream | None = None  # the insights table's stream, played to fold_insights
    folds: list[dict[str, Any]] = field(default_factory=list)  # what each fold_insights invocation answered
    curated_stream: CuratedStream | None = None  # the curated table's stream, played to write_lake
    lake_writes: list[dict[str, Any]] = field(default_factory=list)  # what each write_lake invocation answered
    slept: list[float] = field(default_factory=list)  # what the functions slept (the erasure's wait), not slept

    def invoke(self, name: str, event: Any) -> Any:
        handler = getattr(self.module, name)
        return handler(event, LambdaContext(function_name=name))

    def drain(self, *, sleep: Any = lambda _seconds: None, lake: bool = True) -> list[str]:
        """Run every started execution not run yet, as Step Functions would; return their names. Then the
        streams: the insights deltas to `fold_insights`, and (unless `lake` is False: records still in a
        batching window) the curated inserts to `write_lake`."""
        machine = StateMachine.from_file(
            PIPELINE_DEFINITION,
            resources={placeholder: self._task(name) for placeholder, name in TASKS.items()},
            sleep=sleep,
        )
        names = []
        paginator = self.sfn.get_paginator("list_executions")
        for page in paginator.paginate(stateMachineArn=self.state_machine_arn):
            for execution in page["executions"]:
                if execution["name"] in self.ran:
                    continue
                self.ran.add(execution["name"])
                names.append(execution["name"])
                described = self.sfn.describe_execution(executionArn=execution["executionArn"])
                self.state_sizes.append(len(described["input"]))
                try:
                    machine.run(orjson.loads(described["input"]), execution_name=execution["name"])
                except ExecutionFailedError:
                    self.failed.append(execution["name"])
        self.fold()
        if lake:
            self.write_lake()
        return names

    def write_lake(self) -> None:
        """Hand the curated inserts since the last call to `write_lake`, as the curated table's stream does."""
        if self.curated_stream is None:
            return
        records = self.curated_stream.take()
        if records:
            self.lake_writes.append(self.invoke("write_lake", {"Records": records}))

    def fold(self) -> None:
        """Hand the deltas put since the last fold to `fold_insights`, as the table's stream does in AWS."""
        if self.insights_stream is None:
            return
        items = self.insights_stream.take()
        if items:
            self.folds.append(self.invoke("fold_insights", stream_event(items)))

    def _task(self, name: str) -> Any:
        def call(event: Any) -> Any:
            self.state_sizes.append(len(orjson.dumps(event)))
            result = self.invoke(name, event)
            self.state_sizes.append(len(orjson.dumps(result)))
            return result

        return call


def load_pipeline(monkeypatch: pytest.MonkeyPatch, **settings: str) -> Pipeline:
    """Create the state machine in moto, set the functions' environment and (re)import the entry module."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = PIPELINE_DEFINITION.read_text()
    for placeholder, name in TASKS.items():
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:eventpipe-{name}"
        definition = definition.replace("${" + placeholder + "}", arn)
    arn = sfn.create_state_machine(
        name="eventpipe-pipeline", definition=definition, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eventpipe-workflow"
    )["stateMachineArn"]
    environment = {
        "EVENTPIPE_BUCKET": BUCKET,
        "EVENTPIPE_ANALYTICS_BUCKET": ANALYTICS_BUCKET,
        "EVENTPIPE_CURATED_TABLE": CURATED_TABLE,
        "EVENTPIPE_STATE_TABLE": STATE_TABLE,
        "EVENTPIPE_INSIGHTS_TABLE": INSIGHTS_TABLE,
        "EVENTPIPE_APPS_TABLE": APPS_TABLE,
        "EVENTPIPE_STATE_MACHINE_ARN": arn,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "eventpipe",
        **settings,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    try:
        module = importlib.reload(sys.modules["lambda_pipeline"]) if "lambda_pipeline" in sys.modules else None
        module = module or importlib.import_module("lambda_pipeline")
    finally:
        # The module's init pauses the collector and ends in gc.freeze(): right once in a Lambda container.
        # Here it runs once a test, and would freeze with the test process's objects the garbage of the
        # tests before (botocore sessions, moto backends: cycles of 20 MB or more a test), which the
        # collector then never frees. An init that raised left the collector paused.
        gc.unfreeze()
        gc.enable()
    client = boto3.client("dynamodb", region_name=REGION)
    stream = InsightsStream(client, INSIGHTS_TABLE)
    pipeline = Pipeline(module, arn, sfn, insights_stream=stream, curated_stream=CuratedStream(client))
    module.runtime.sleep = pipeline.slept.append
    return pipeline


def count_clients(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The services of every client the container builds from now on, one entry a client, in order."""
    session = pipeline.module.runtime._session
    built: list[str] = []
    create_client = session.create_client

    def counted(service: str, *args: Any, **kwargs: Any) -> Any:
        built.append(service)
        return create_client(service, *args, **kwargs)

    monkeypatch.setattr(session, "create_client", counted)
    return built
