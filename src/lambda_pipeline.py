"""The Lambda entry points the templates name: `lambda_pipeline.ingest`, `lambda_pipeline.process_batch`, ...

One per function of `eventpipe.handlers.functions.FUNCTIONS`, each the function under the same
Powertools decorators (`entry_point`). Settings and clients are built once per container, at cold
start; logs are JSON with the batch id as correlation id, metrics go out as CloudWatch EMF.

The init runs with the garbage collector paused (see the end of the module).
"""

# ruff: noqa: E402  (three calls must run before the imports that follow them)
from __future__ import annotations

import gc
import os

# The init imports some 400 modules and creates 75,000 objects, nearly all living as long as the
# container; the collector's young-generation passes over them cost 13 ms of a cold start (8%) and
# find a few hundred objects to free. Paused here, and at the end of the init the survivors are
# frozen (`gc.freeze`): later collections no longer traverse them.
gc.disable()

from eventpipe.adapters.aws.regex_cache import REGEX_CACHE_NAME, use_compiled_regexes

# Before anything compiles a regular expression: those recorded at package time are built from their
# opcodes (regex_cache.py; 20 ms less).
if "LAMBDA_TASK_ROOT" in os.environ:
    use_compiled_regexes(os.path.join(os.environ["LAMBDA_TASK_ROOT"], REGEX_CACHE_NAME))

import logging
import warnings
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from eventpipe.adapters.aws.botocore_docs import defer_botocore_docs
from eventpipe.adapters.aws.urllib3_http2 import defer_urllib3_http2

# Before anything imports botocore's client module: its docstrings are built when read (6 ms less).
defer_botocore_docs()
# Before anything imports urllib3: its opt-in HTTP/2 package, and importlib.metadata with it, is
# loaded when used, which botocore never does (10 to 15 ms less on Python 3.12).
defer_urllib3_http2()

from eventpipe.awsrun.runtime import AwsRuntime
from eventpipe.awsrun.tracing import SampledTracer
from eventpipe.handlers.functions import FUNCTIONS
from eventpipe.settings import AwsResources, Settings

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeAlias

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from eventpipe.handlers.functions import Function, Unit

    LambdaHandler: TypeAlias = Callable[[dict[str, Any], LambdaContext], Any]

NAMESPACE = "eventpipe"

logger = Logger(service="eventpipe")
metrics = Metrics(namespace=NAMESPACE, service="eventpipe")
# The X-Ray SDK is imported only when an invocation is sampled (awsrun/tracing.py); botocore is our
# only I/O library, and patching all modules costs 20 ms more.
tracer = SampledTracer(service="eventpipe", patch_modules=("botocore",))
copy_config_to_registered_loggers(source_logger=logger)  # the eventpipe.* loggers log JSON too
# botocore logs where it found the credentials at INFO, once a container: "Found credentials in
# environment variables." on every cold start says nothing. Its warnings and errors still go out.
logging.getLogger("botocore.credentials").setLevel(logging.WARNING)
# A request put on the request stream adds no metrics (handlers/functions.py): no notice about it.
warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
runtime = AwsRuntime(Settings.from_env(on_aws=True), AwsResources.from_env())

Event = dict[str, Any]


class PowertoolsReport:
    """A function's report as CloudWatch metrics (EMF, flushed by `log_metrics`) and JSON log lines."""

    def metric(self, name: str, value: float, unit: Unit = "Count", **dimensions: str) -> None:
        if not dimensions:
            metrics.add_metric(name, MetricUnit(unit), value)
            return
        # A metric with its own dimensions (e.g. rejections by reason) is flushed at once.
        with single_metric(name=name, unit=MetricUnit(unit), value=value, namespace=NAMESPACE) as metric:
            metric.add_dimension("service", "eventpipe")
            for key, dimension in dimensions.items():
                metric.add_dimension(key, dimension)

    def info(self, message: str, **extra: Any) -> None:
        logger.info(message, extra=extra)

    def error(self, message: str, **extra: Any) -> None:
        logger.error(message, extra=extra)

    def correlate(self, correlation_id: str) -> None:
        logger.set_correlation_id(correlation_id)


REPORT = PowertoolsReport()


def entry_point(function: Function) -> LambdaHandler:
    """`function` as a Lambda handler: structured logs, tracing and metrics around one call."""

    def handler(event: Event, context: LambdaContext) -> Any:
        return function.run(event, runtime, REPORT)

    # Named before decorating: the tracer names its subsegment after the function.
    handler.__name__ = handler.__qualname__ = function.name
    handler.__doc__ = function.doc
    wrapped = metrics.log_metrics(handler)  # no ColdStart metric: $0.30 a month for what X-Ray shows
    wrapped = tracer.capture_lambda_handler(wrapped)
    logged: LambdaHandler = logger.inject_lambda_context(
        wrapped, correlation_id_path=function.correlation_id_path, clear_state=True
    )
    return logged


# The module attributes the templates name as handlers, one per function.
for _function in FUNCTIONS.values():
    globals()[_function.name] = entry_point(_function)
__all__ = [*FUNCTIONS]

gc.freeze()  # the init's objects to the permanent generation (its few hundred cycles stay with them)
gc.enable()
