"""Run the pipeline's Amazon States Language definition in-process, as Step Functions would."""

from __future__ import annotations

from eventpipe.workflow.interpreter import StateMachine

__all__ = ["StateMachine"]
