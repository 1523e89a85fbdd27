"""The JSONPath subset of the Amazon States Language: reference paths, ResultPath and payload templates.

Paths are parsed once, when the definition is loaded, so a path the interpreter cannot evaluate is
refused before any task runs instead of failing half-way through an execution. The small field
checks that the other definition loaders share live here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from collections.abc import Mapping

RUNTIME_ERROR = "States.Runtime"
RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"

# One step after `$`: `.name`, `['name']`, `["name"]` or `[0]`. AWS also writes `$.a.['b c']`, so
# a dot may precede a bracket. Anything else (wildcards, filters, slices, `..`) is not a
# reference path and the whole path is refused.
_STEP = re.compile(
    r"""\.?\[(?:'(?P<single>[^']*)'|"(?P<double>[^"]*)"|(?P<index>\d+))\]"""
    r"""|\.(?P<name>[^.\[\]\s'"*@?(),:$]+)"""
)


class StateContext(TypedDict):
    """`$$.State` of the context object: the state running, since when, and its retries so far."""

    Name: str
    EnteredTime: str
    RetryCount: int


class ContextObject(TypedDict):
    """The context object (`$$`) a state's paths may read: the execution, the state machine, the state."""

    Execution: dict[str, object]
    StateMachine: dict[str, str]
    State: StateContext


class DefinitionProblem(ValueError):
    """A fragment of a definition is malformed; the loader prefixes the name of the state it is in."""


class StatesError(Exception):
    """A runtime error named the way Step Functions names it (e.g. `States.Runtime`), with its cause."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


def check_fields(raw: Mapping[str, object], allowed: set[str], owner: str) -> None:
    unknown = ", ".join(repr(field) for field in sorted(set(raw) - allowed))
    if unknown:
        raise DefinitionProblem(f"unknown field(s) {unknown} in {owner} (allowed: {', '.join(sorted(allowed))})")


def number(
    raw: Mapping[str, object], field: str, *, default: float, minimum: float, integer: bool, location: str = ""
) -> float:
    """Read a numeric field, refusing booleans (Python counts them as integers) and values below `minimum`."""
    value = raw.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float) or value < minimum:
        kind = "an integer" if integer else "a number"
        raise DefinitionProblem(f"{location}{field} must be {kind} >= {minimum}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ReferencePath:
    """A path that names at most one node: `$`, `$.a.b`, `$.a[0]`, `$['a']`, or `$$.…` for the context."""

    text: str
    steps: tuple[str | int, ...]
    reads_context: bool

    @classmethod
    def parse(cls, text: object, *, allow_context: bool) -> ReferencePath:
        """Parse `text`, raising DefinitionProblem for anything that is not a supported reference path."""
        if not isinstance(text, str):
            raise DefinitionProblem(f"a path must be a string, got {text!r}")
        reads_context = text.startswith("$$")
        if reads_context and not allow_context:
            raise DefinitionProblem(f"path {text!r} cannot read the context object ($$) here")
        position = 2 if reads_context else 1
        if not text.startswith("$"):
            raise DefinitionProblem(f"path {text!r} must start with '$'")
        steps: list[str | int] = []
        while position < len(text):
            match = _STEP.match(text, position)
            if match is None:
                raise DefinitionProblem(
                    f"path {text!r} is not a supported reference path (use $.a.b, $.a[0] or $['a'];"
                    f" wildcards, filters and slices are not supported)"
                )
            index = match.group("index")
            if index is not None:
                steps.append(int(index))
            else:
                steps.append(next(group for group in match.group("single", "double", "name") if group is not None))
            position = match.end()
        return cls(text, tuple(steps), reads_context)

    def find(self, document: object, context: object = None) -> tuple[bool, object]:
        """Return (True, value) if the path selects a node, else (False, None); never raises."""
        node = context if self.reads_context else document
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(node, list) or step >= len(node):
                    return False, None
                node = node[step]
            else:
                if not isinstance(node, dict) or step not in node:
                    return False, None
                node = node[step]
        return True, node

    def select(self, document: object, context: object = None) -> object:
        """Return the node the path names; a path that selects nothing fails with States.Runtime."""
        found, value = self.find(document, context)
        if not found:
            raise StatesError(RUNTIME_ERROR, f"the JSONPath {self.text!r} could not be found in the input")
        return value

    def assign(self, document: object, value: object) -> object:
        """Return a copy of `document` with `value` placed at this path (ResultPath semantics).

        Only the objects along the path are copied: the input is never mutated, and the branches
        the path does not touch are shared because nothing in the interpreter mutates in place.
        Missing objects along the path are created, as Step Functions does.
        """
        return _assign(document, self.steps, value, self.text)


WHOLE_DOCUMENT = ReferencePath("$", (), reads_context=False)


def optional_path(raw: Mapping[str, object], field: str) -> ReferencePath | None:
    """Read InputPath, OutputPath or ResultPath: absent means `$`, null (None) means "no path".

    The caller gives None its meaning: InputPath/OutputPath select `{}`, ResultPath discards the result.
    ResultPath may only name object fields, since it writes into the input.
    """
    if field not in raw:
        return WHOLE_DOCUMENT
    if raw[field] is None:
        return None
    try:
        path = ReferencePath.parse(raw[field], allow_context=False)
    except DefinitionProblem as problem:
        raise DefinitionProblem(f"{field}: {problem}") from None
    if field == "ResultPath" and any(isinstance(step, int) for step in path.steps):
        raise DefinitionProblem(f"ResultPath {path.text!r} may only name object fields, not array indices")
    return path


def place_result(path: ReferencePath | None, document: object, result: object) -> object:
    """Apply ResultPath: a null path discards the result and passes the input through unchanged."""
    return document if path is None else path.assign(document, result)


def _assign(node: object, steps: tuple[str | int, ...], value: object, path_text: str) -> object:
    if not steps:
        return value
    if not isinstance(node, dict):
        raise StatesError(
            RESULT_PATH_MATCH_FAILURE,
            f"cannot apply ResultPath {path_text!r}: it goes through a {type(node).__name__}, not an object",
        )
    field = steps[0]
    updated = dict(node)
    updated[field] = _assign(node.get(field, {}), steps[1:], value, path_text)
    return updated


@dataclass(frozen=True)
class _Literal:
    value: object


@dataclass(frozen=True)
class _ArrayTemplate:
    items: tuple[_TemplateNode, ...]


@dataclass(frozen=True)
class PayloadTemplate:
    """A Parameters or ResultSelector object: fields ending in `.$` take their value from a path."""

    fields: tuple[tuple[str, _TemplateNode], ...]

    @classmethod
    def compile(cls, raw: object, *, field: str) -> PayloadTemplate:
        """Check and pre-parse a payload template; `field` (e.g. "Parameters") names it in errors."""
        if not isinstance(raw, dict):
            raise DefinitionProblem(f"{field} must be an object, got {type(raw).__name__}")
        fields: list[tuple[str, _TemplateNode]] = []
        for key, value in raw.items():
            location = f"{field}.{key}"
            if key.endswith(".$"):
                name = key[:-2]
                if name in raw:
                    raise DefinitionProblem(f"{field} has both {name!r} and {key!r}")
                fields.append((name, _compile_path_value(value, location)))
            else:
                fields.append((key, _compile_node(value, location)))
        return cls(tuple(fields))

    def evaluate(self, document: object, context: object) -> dict[str, object]:
        """Build the payload from the state's effective input and the context object."""
        return {name: _evaluate(node, document, context) for name, node in self.fields}


_TemplateNode = _Literal | ReferencePath | PayloadTemplate | _ArrayTemplate


def _optional_template(raw: Mapping[str, object], field: str) -> PayloadTemplate | None:
    return PayloadTemplate.compile(raw[field], field=field) if field in raw else None


@dataclass(frozen=True)
class DataFlow:
    """A state's input and output processing, in the order Step Functions applies it.

    InputPath -> Parameters -> (the state's work) -> ResultSelector -> ResultPath -> OutputPath.
    A state type without some of these fields simply keeps their neutral defaults.
    """

    input_path: ReferencePath | None = WHOLE_DOCUMENT
    parameters: PayloadTemplate | None = None
    result_selector: PayloadTemplate | None = None
    result_path: ReferencePath | None = WHOLE_DOCUMENT
    output_path: ReferencePath | None = WHOLE_DOCUMENT

    @classmethod
    def load(cls, raw: Mapping[str, object]) -> DataFlow:
        """Read the five fields from a state; the loader has already refused those its type lacks."""
        return cls(
            input_path=optional_path(raw, "InputPath"),
            parameters=_optional_template(raw, "Parameters"),
            result_selector=_optional_template(raw, "ResultSelector"),
            result_path=optional_path(raw, "ResultPath"),
            output_path=optional_path(raw, "OutputPath"),
        )

    def effective_input(self, document: object, context: object) -> object:
        """InputPath then Parameters: what a task receives, or what a Pass or Choice state works on."""
        selected = {} if self.input_path is None else self.input_path.select(document)
        return selected if self.parameters is None else self.parameters.evaluate(selected, context)

    def output(self, document: object, result: object, context: object) -> object:
        """ResultSelector, then ResultPath into the state's raw input `document`, then OutputPath."""
        if self.result_selector is not None:
            result = self.result_selector.evaluate(result, context)
        combined = place_result(self.result_path, document, result)
        return {} if self.output_path is None else self.output_path.select(combined)


def _compile_path_value(value: object, location: str) -> ReferencePath:
    if isinstance(value, str) and value.startswith("States."):
        raise DefinitionProblem(f"{location}: intrinsic function {value!r} is not supported")
    try:
        return ReferencePath.parse(value, allow_context=True)
    except DefinitionProblem as problem:
        raise DefinitionProblem(f"{location}: {problem}") from None


def _compile_node(value: object, location: str) -> _TemplateNode:
    if isinstance(value, dict):
        return PayloadTemplate.compile(value, field=location)
    if isinstance(value, list):
        return _ArrayTemplate(tuple(_compile_node(item, f"{location}[{index}]") for index, item in enumerate(value)))
    return _Literal(value)


def _evaluate(node: _TemplateNode, document: object, context: object) -> object:
    if isinstance(node, ReferencePath):
        return node.select(document, context)
    if isinstance(node, PayloadTemplate):
        return node.evaluate(document, context)
    if isinstance(node, _ArrayTemplate):
        return [_evaluate(item, document, context) for item in node.items]
    # Only scalars reach here: objects and arrays were compiled into nodes, so every evaluation
    # builds fresh containers and no output shares mutable state with the definition.
    return node.value
