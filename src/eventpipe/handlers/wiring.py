"""The pipeline built from a runtime's ports, the same way on AWS, on one machine and on Azure.

A runtime (`awsrun/`, `localrun/`, docs/azure) only chooses its adapters; what is built from them,
and which function serves each workflow Task, is decided here and in `functions.py`.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Protocol

from eventpipe.core.steps import PipelineSteps
from eventpipe.handlers.functions import task_resources
from eventpipe.workflow import PIPELINE_DEFINITION, StateMachine

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from contextlib import AbstractContextManager

    from eventpipe.core.enrich import Enricher
    from eventpipe.core.ports import (
        BatchStore,
        Clock,
        CuratedStore,
        InsightsStore,
        Quarantine,
        RawBucket,
    )
    from eventpipe.core.registry import SchemaRegistry
    from eventpipe.handlers.services import Services


class StepPorts(Protocol):
    """The ports the workflow's steps write to and read from."""

    @property
    def bucket(self) -> RawBucket: ...

    @property
    def curated(self) -> CuratedStore: ...

    @property
    def quarantine(self) -> Quarantine: ...

    @property
    def batches(self) -> BatchStore: ...

    @property
    def insights(self) -> InsightsStore: ...

    @property
    def clock(self) -> Clock: ...


def build_steps(
    ports: StepPorts,
    registry: SchemaRegistry,
    enrichers: Sequence[Enricher],
    *,
    atomically: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> PipelineSteps:
    """The workflow's steps over `ports`, validating with `registry` and enriching with `enrichers`."""
    return PipelineSteps(
        registry=registry,
        enrichers=enrichers,
        bucket=ports.bucket,
        curated=ports.curated,
        quarantine=ports.quarantine,
        batches=ports.batches,
        insights=ports.insights,
        clock=ports.clock,
        atomically=atomically,
    )


def build_workflow(
    services: Services, *, name: str = "local", sleep: Callable[[float], None] = time.sleep
) -> StateMachine:
    """pipeline.asl.json, run in-process, each Task served by its function on `services`."""
    return StateMachine.from_file(PIPELINE_DEFINITION, resources=task_resources(services), sleep=sleep, name=name)
