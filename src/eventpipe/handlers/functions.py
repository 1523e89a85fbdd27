"""Every function the templates define, by name: what `eventpipe invoke` runs on this machine.

All but `start_batches`, which retries workflow starts that failed in AWS from an SQS queue: here a
start is a call in the same process, and a failed one stays pending for `eventpipe replay`.

In AWS each is a Lambda entry point of `src/lambda_pipeline.py`; here each takes the event and a
runtime's services, so the local runtime answers exactly as the Lambda functions do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eventpipe.handlers.export import handle_export
from eventpipe.handlers.ingest import handle_ingest
from eventpipe.handlers.replay import handle_replay

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.handlers.services import Services

Handler = Callable[[Any, "Services"], Any]


def _step(name: str) -> Handler:
    def run(event: Mapping[str, Any], services: Services) -> Any:
        return getattr(services.steps, name)(event)

    return run


FUNCTIONS: dict[str, Handler] = {
    "ingest": handle_ingest,
    "process_batch": _step("process_batch"),
    "mark_done": _step("mark_done"),
    "mark_failed": _step("mark_failed"),
    "export_insights": handle_export,
    "replay": handle_replay,
}
