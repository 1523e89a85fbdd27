"""Which step serves each Task of `pipeline.asl.json`: the `${...}` names the templates substitute."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventpipe.core.steps import PipelineSteps

PIPELINE_DEFINITION = Path(__file__).parent / "pipeline.asl.json"


def step_resources(steps: PipelineSteps) -> dict[str, Callable[[Any], Any]]:
    return {
        "ValidateEnrichFunctionArn": steps.validate_enrich,
        "PersistFunctionArn": steps.persist,
        "AggregateFunctionArn": steps.aggregate,
        "MarkDoneFunctionArn": steps.mark_done,
        "MarkFailedFunctionArn": steps.mark_failed,
    }
