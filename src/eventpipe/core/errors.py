"""One tree of exceptions: callers catch `EventpipeError` and never see vendor exceptions."""

from __future__ import annotations


class EventpipeError(Exception):
    """Base of every error eventpipe raises on purpose."""


class ConfigError(EventpipeError):
    """A setting, schema file or data file is wrong; the message says which and how to fix it."""


class SchemaLoadError(ConfigError):
    """A schema file cannot be used (not JSON, not valid JSON Schema, misplaced)."""


class InputError(EventpipeError):
    """Input that the command cannot process at all (missing path, directory, unreadable file)."""


class StorageError(EventpipeError):
    """A store or bucket failed; the step that met it may be retried."""


class BusyError(StorageError):
    """A store takes nothing more for now, its backlog at its bound: HTTP 429, retried after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ObjectNotFoundError(StorageError):
    """The bucket has no object under that key (or that version); retrying will not bring it back."""


class BatchNotFoundError(EventpipeError):
    """The batch id is unknown."""


class EnrichmentError(EventpipeError):
    """An enricher cannot enrich one event; that event is rejected with `enrichment_failed`."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.path = path


class WorkflowDefinitionError(ConfigError):
    """The state machine definition uses something the local interpreter cannot run, or is malformed."""


class ExecutionFailedError(EventpipeError):
    """A workflow execution ended in failure (a Fail state or an uncaught error)."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause
