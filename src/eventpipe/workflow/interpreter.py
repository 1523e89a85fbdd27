"""An in-process interpreter for the Amazon States Language (AWS Step Functions, JSONPath mode).

The same definition runs on Step Functions and, through this module, on one machine. Only the
Task, Choice, Pass, Succeed and Fail states are supported, and everything else is refused when the
definition is loaded, so a definition never runs locally with a feature silently ignored.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from eventpipe.core.errors import ExecutionFailedError, WorkflowDefinitionError
from eventpipe.workflow.choice import ChoiceState
from eventpipe.workflow.paths import (
    RUNTIME_ERROR,
    DataFlow,
    DefinitionProblem,
    StatesError,
    check_fields,
    number,
    place_result,
)
from eventpipe.workflow.retry import TaskFailure, handles, load_catcher, load_retrier

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventpipe.workflow.paths import ContextObject, StateContext
    from eventpipe.workflow.retry import Catcher, Retrier

    Resource = Callable[[object], object]
    Sleep = Callable[[float], None]

MAX_TRANSITIONS = 10_000
_PLACEHOLDER = re.compile(r"\$\{(?P<name>[A-Za-z0-9_]+)\}")
_TOP_LEVEL_FIELDS = {"Comment", "StartAt", "States", "Version", "TimeoutSeconds", "QueryLanguage"}
_FLOW_FIELDS = {"Type", "Comment", "QueryLanguage", "InputPath", "OutputPath"}
_STATE_FIELDS = {
    "Task": _FLOW_FIELDS
    | {"Next", "End", "Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch"}
    | {"TimeoutSeconds", "HeartbeatSeconds"},
    "Choice": _FLOW_FIELDS | {"Choices", "Default"},
    "Pass": _FLOW_FIELDS | {"Next", "End", "Parameters", "Result", "ResultPath"},
    "Succeed": _FLOW_FIELDS,
    "Fail": {"Type", "Comment", "QueryLanguage", "Error", "Cause"},
}
_Entry = TypeVar("_Entry")


class _State(Protocol):
    def targets(self) -> list[tuple[str, str]]:
        """(field, state name) for every transition, so the loader can check that each target exists."""
        ...

    def execute(self, document: object, context: ContextObject) -> tuple[object, str | None]:
        """Run the state on its raw input; return its output and the next state (None ends the run)."""
        ...


def _json_copy(value: object) -> object:
    # A round trip through JSON is what Step Functions does to every payload: it detaches task
    # inputs from interpreter state and surfaces non-JSON values (sets, datetimes, NaN) locally.
    return json.loads(json.dumps(value, allow_nan=False))


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class _TaskState:
    flow: DataFlow
    resource: Resource
    retriers: tuple[Retrier, ...]
    catchers: tuple[Catcher, ...]
    next_state: str | None
    sleep: Sleep

    def targets(self) -> list[tuple[str, str]]:
        catches = [(f"Catch[{index}].Next", catcher.next_state) for index, catcher in enumerate(self.catchers)]
        return catches + ([("Next", self.next_state)] if self.next_state else [])

    def execute(self, document: object, context: ContextObject) -> tuple[object, str | None]:
        retries_done: Counter[Retrier] = Counter()  # each retrier counts its own attempts
        while True:
            try:
                return self._attempt(document, context), self.next_state
            except StatesError as error:
                retrier = next((r for r in self.retriers if handles(r.error_equals, error)), None)
                if retrier is not None and retries_done[retrier] < retrier.max_attempts:
                    self.sleep(retrier.delay_seconds(retries_done[retrier]))
                    retries_done[retrier] += 1
                    context["State"]["RetryCount"] += 1
                    continue
                catcher = next((c for c in self.catchers if handles(c.error_equals, error)), None)
                if catcher is None:
                    raise
                # A catcher's ResultPath writes into the state's raw input, and no OutputPath applies.
                error_output = {"Error": error.error, "Cause": error.cause}
                return place_result(catcher.result_path, document, error_output), catcher.next_state

    def _attempt(self, document: object, context: ContextObject) -> object:
        effective_input = self.flow.effective_input(document, context)
        try:
            result = _json_copy(self.resource(_json_copy(effective_input)))
        except Exception as exc:  # reported as Lambda reports errors: exception class name and message
            raise TaskFailure(type(exc).__name__, str(exc)) from exc
        return self.flow.output(document, result, context)


@dataclass(frozen=True)
class _PassState:
    """A Pass state; also a Succeed state, which is a Pass with only InputPath/OutputPath and no Next."""

    flow: DataFlow
    result: tuple[object] | None  # a 1-tuple, so that `"Result": null` differs from having no Result
    next_state: str | None

    def targets(self) -> list[tuple[str, str]]:
        return [("Next", self.next_state)] if self.next_state else []

    def execute(self, document: object, context: ContextObject) -> tuple[object, str | None]:
        effective_input = self.flow.effective_input(document, context)
        result = effective_input if self.result is None else _json_copy(self.result[0])
        return self.flow.output(document, result, context), self.next_state


@dataclass(frozen=True)
class _FailState:
    error: str
    cause: str

    def targets(self) -> list[tuple[str, str]]:
        return []

    def execute(self, document: object, context: ContextObject) -> tuple[object, str | None]:
        raise ExecutionFailedError(self.error, self.cause)


class StateMachine:
    """A loaded, checked definition whose Task resources are bound to Python callables."""

    def __init__(self, start_at: str, states: Mapping[str, _State], name: str) -> None:
        """Prefer `from_definition` / `from_file`, which check the definition before building this."""
        self._start_at = start_at
        self._states = dict(states)
        self._name = name

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        resources: Mapping[str, Resource],
        sleep: Sleep = time.sleep,
        name: str = "local",
    ) -> StateMachine:
        """Load a JSON definition file such as pipeline.asl.json; see `from_definition`."""
        try:
            definition = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise WorkflowDefinitionError(f"cannot read state machine definition {str(path)!r}: {exc}") from exc
        return cls.from_definition(definition, resources=resources, sleep=sleep, name=name)

    @classmethod
    def from_definition(
        cls,
        definition: Mapping[str, object],
        *,
        resources: Mapping[str, Resource],
        sleep: Sleep = time.sleep,
        name: str = "local",
    ) -> StateMachine:
        """Check a parsed definition and bind each Task's `"Resource": "${Name}"` to `resources["Name"]`.

        Whatever the interpreter cannot run faithfully is refused here with WorkflowDefinitionError,
        so a broken or unsupported definition fails before any task has side effects. `sleep` waits
        between retries (tests pass a recorder); `name` is `$$.StateMachine.Name`.
        """
        if not isinstance(definition, Mapping):
            raise WorkflowDefinitionError("definition: must be a JSON object")
        try:
            check_fields(definition, _TOP_LEVEL_FIELDS, "the definition")
            _check_query_language(definition)
            _check_timeouts(definition, ("TimeoutSeconds",))
        except DefinitionProblem as problem:
            raise WorkflowDefinitionError(f"definition: {problem}") from None
        start_at, raw_states = definition.get("StartAt"), definition.get("States")
        if not isinstance(start_at, str):
            raise WorkflowDefinitionError("definition: StartAt must name the first state")
        if not isinstance(raw_states, Mapping) or not raw_states:
            raise WorkflowDefinitionError("definition: States must be a non-empty object")
        states: dict[str, _State] = {}
        for state_name, raw_state in raw_states.items():
            try:
                states[state_name] = _load_state(raw_state, resources, sleep)
            except DefinitionProblem as problem:
                raise WorkflowDefinitionError(f"state {state_name!r}: {problem}") from None
        if start_at not in states:
            raise WorkflowDefinitionError(f"definition: StartAt {start_at!r} is not a state in States")
        _check_transitions(start_at, states)
        return cls(start_at, states, name)

    def run(self, input_document: object, execution_name: str | None = None) -> object:
        """Run one execution and return its final output; raise ExecutionFailedError if it fails.

        The caller's `input_document` is never mutated: the execution works on its own JSON copy.
        """
        execution_name = execution_name or str(uuid.uuid4())
        try:
            document = _json_copy(input_document)
        except (TypeError, ValueError) as exc:
            raise ExecutionFailedError(RUNTIME_ERROR, f"the execution input is not JSON: {exc}") from exc
        arn_prefix = "arn:aws:states:local:000000000000"
        execution: dict[str, object] = {
            "Id": f"{arn_prefix}:execution:{self._name}:{execution_name}",
            "Name": execution_name,
            "StartTime": _timestamp(),
            "Input": document,
        }
        state_machine = {"Id": f"{arn_prefix}:stateMachine:{self._name}", "Name": self._name}
        state_name = self._start_at
        for _ in range(MAX_TRANSITIONS):
            state: StateContext = {"Name": state_name, "EnteredTime": _timestamp(), "RetryCount": 0}
            context: ContextObject = {"Execution": execution, "StateMachine": state_machine, "State": state}
            try:
                document, next_state = self._states[state_name].execute(document, context)
            except TaskFailure as error:
                raise ExecutionFailedError(error.error, error.cause) from error
            except StatesError as error:  # raised by the interpreter itself: say where
                raise ExecutionFailedError(error.error, f"state {state_name!r}: {error.cause}") from error
            if next_state is None:
                return document
            state_name = next_state
        raise ExecutionFailedError(
            RUNTIME_ERROR,
            f"the execution entered {MAX_TRANSITIONS} states without ending (a loop with no exit?)",
        )


def _check_transitions(start_at: str, states: Mapping[str, _State]) -> None:
    """Every transition must name a state and, as Step Functions insists, every state must be reachable."""
    reached, pending = {start_at}, deque([start_at])
    while pending:
        state_name = pending.popleft()
        for field, target in states[state_name].targets():
            if target not in states:
                raise WorkflowDefinitionError(f"state {state_name!r}: {field} {target!r} is not a state in States")
            if target not in reached:
                reached.add(target)
                pending.append(target)
    for state_name in states.keys() - reached:
        raise WorkflowDefinitionError(f"state {state_name!r}: not reachable from StartAt {start_at!r}")


def _load_state(raw: object, resources: Mapping[str, Resource], sleep: Sleep) -> _State:
    if not isinstance(raw, Mapping):
        raise DefinitionProblem("must be an object")
    state_type = raw.get("Type")
    if not isinstance(state_type, str) or state_type not in _STATE_FIELDS:
        supported = ", ".join(_STATE_FIELDS)
        raise DefinitionProblem(f"unsupported state type {state_type!r} (supported: {supported})")
    check_fields(raw, _STATE_FIELDS[state_type], f"a {state_type} state")
    _check_query_language(raw)
    if state_type == "Task":
        return _load_task(raw, resources, sleep)
    if state_type == "Choice":
        return ChoiceState.load(raw)
    if state_type == "Fail":
        error, cause = raw.get("Error", ""), raw.get("Cause", "")
        if not isinstance(error, str) or not isinstance(cause, str):
            raise DefinitionProblem("Error and Cause must be strings")
        return _FailState(error, cause)
    result = (raw["Result"],) if "Result" in raw else None
    return _PassState(DataFlow.load(raw), result, _next_state(raw) if state_type == "Pass" else None)


def _load_task(raw: Mapping[str, object], resources: Mapping[str, Resource], sleep: Sleep) -> _TaskState:
    _check_timeouts(raw, ("TimeoutSeconds", "HeartbeatSeconds"))
    resource = raw.get("Resource")
    placeholder = _PLACEHOLDER.fullmatch(resource) if isinstance(resource, str) else None
    if placeholder is None:
        raise DefinitionProblem(f"Resource {resource!r} is not a ${{Name}} definition substitution placeholder")
    if placeholder["name"] not in resources:
        bound = ", ".join(sorted(resources)) or "none"
        raise DefinitionProblem(f"Resource {resource!r} has no callable in resources (bound: {bound})")
    return _TaskState(
        flow=DataFlow.load(raw),
        resource=resources[placeholder["name"]],
        retriers=_load_list(raw, "Retry", load_retrier),
        catchers=_load_list(raw, "Catch", load_catcher),
        next_state=_next_state(raw),
        sleep=sleep,
    )


def _load_list(
    raw: Mapping[str, object], field: str, load: Callable[[Mapping[str, object], str, bool], _Entry]
) -> tuple[_Entry, ...]:
    """Load Retry or Catch; `load` gets each entry, its location and whether it is the last one."""
    entries = raw.get(field, [])
    if not isinstance(entries, list) or not all(isinstance(entry, Mapping) for entry in entries):
        raise DefinitionProblem(f"{field} must be a list of objects")
    return tuple(load(entry, f"{field}[{i}]", i == len(entries) - 1) for i, entry in enumerate(entries))


def _check_query_language(raw: Mapping[str, object]) -> None:
    language = raw.get("QueryLanguage", "JSONPath")
    if language != "JSONPath":
        raise DefinitionProblem(f"QueryLanguage {language!r} is not supported (only JSONPath)")


def _check_timeouts(raw: Mapping[str, object], fields: tuple[str, ...]) -> None:
    # Checked but not enforced: a local call cannot be abandoned safely half-way, and these limits
    # guard against lost remote workers, which a single process does not have.
    for field in fields:
        if field in raw:
            number(raw, field, default=1, minimum=1, integer=True)


def _next_state(raw: Mapping[str, object]) -> str | None:
    """The Next of a Task or Pass state, or None for `End: true`."""
    if raw.get("End") is True:
        if "Next" in raw:
            raise DefinitionProblem("has both Next and End: true")
        return None
    next_state = raw.get("Next")
    if not isinstance(next_state, str):
        raise DefinitionProblem("needs Next naming the following state, or End: true")
    return next_state
