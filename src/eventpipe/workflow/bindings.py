"""Which step serves each Task of `pipeline.asl.json`: the `${...}` names the templates substitute."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventpipe.core.steps import PipelineSteps

PIPELINE_DEFINITION = Path(__file__).parent / "pipeline.asl.json"
# Each Task's substitution variable and the function (entry point of `lambda_pipeline`) it names.
TASK_FUNCTIONS = {
    "ProcessBatchFunctionArn": "process_batch",
    "MarkDoneFunctionArn": "mark_done",
    "MarkFailedFunctionArn": "mark_failed",
}


def step_resources(steps: PipelineSteps) -> dict[str, Callable[[Any], Any]]:
    return {placeholder: getattr(steps, name) for placeholder, name in TASK_FUNCTIONS.items()}
