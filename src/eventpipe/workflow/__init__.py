"""Run the pipeline's Amazon States Language definition in-process, as Step Functions would."""

from __future__ import annotations

from pathlib import Path

from eventpipe.workflow.interpreter import StateMachine

# The one workflow definition: Step Functions runs it in AWS, the interpreter everywhere else.
PIPELINE_DEFINITION = Path(__file__).parent / "pipeline.asl.json"

__all__ = ["PIPELINE_DEFINITION", "StateMachine"]
