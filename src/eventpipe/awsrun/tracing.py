"""X-Ray tracing that costs the cold start nothing: Powertools' Tracer, loaded when a request is sampled.

With `Tracing: Active`, Lambda itself records each invocation's segment (init, invocation,
overhead) without any SDK in the function. The X-Ray SDK only adds subsegments: the handler and
each AWS call. Importing it (and wrapt, and patching botocore) cost 20 to 44 ms of every cold
start, and `POWERTOOLS_TRACE_DISABLED` does not avoid that import. Here the Tracer is built the
first time an invocation arrives sampled (`Sampled=1` in the trace header Lambda puts in
`_X_AMZN_TRACE_ID`), so unsampled containers never load it; once built it traces as before,
patching botocore's client class (clients built earlier are traced too).

One difference: Powertools marks its first traced invocation as the cold start, so a container
whose first sampled invocation is not its first one reports `ColdStart` on that one.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools import Tracer

__all__ = ["SampledTracer", "is_sampled"]

Handler = TypeVar("Handler", bound="Callable[[Any, Any], Any]")


def is_sampled() -> bool:
    """Whether X-Ray samples the current invocation (Lambda sets the header per invocation)."""
    return "Sampled=1" in os.environ.get("_X_AMZN_TRACE_ID", "")


class SampledTracer:
    """A stand-in for `Tracer(service=..., patch_modules=...)` whose decorator loads it only when sampled."""

    def __init__(self, *, service: str, patch_modules: tuple[str, ...]) -> None:
        self._service = service
        self._patch_modules = patch_modules
        self._tracer: Tracer | None = None

    def tracer(self) -> Tracer:
        """The Powertools Tracer, imported and built on the first call."""
        if self._tracer is None:
            from aws_lambda_powertools import Tracer

            self._tracer = Tracer(service=self._service, patch_modules=self._patch_modules)
        return self._tracer

    def capture_lambda_handler(self, handler: Handler) -> Handler:
        """As `Tracer.capture_lambda_handler`, for sampled invocations; others call the handler as is."""
        traced: Callable[[Any, Any], Any] | None = None

        @functools.wraps(handler)
        def wrapper(event: Any, context: Any) -> Any:
            nonlocal traced
            if not is_sampled():
                return handler(event, context)
            if traced is None:
                traced = self.tracer().capture_lambda_handler(handler)
            return traced(event, context)

        return wrapper  # type: ignore[return-value]
