"""Choice rules of the Amazon States Language, checked when the definition is loaded.

Rules compile into small objects whose `matches` reads the Choice state's effective input. As in
Step Functions, a comparison whose value (or operand) is not of the operator's type is simply
false, while a Variable that selects nothing fails the execution with States.Runtime.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from eventpipe.workflow.paths import DataFlow, DefinitionProblem, ReferencePath, StatesError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from eventpipe.workflow.paths import ContextObject


def _is_string(value: object) -> bool:
    return isinstance(value, str)


def _is_number(value: object) -> bool:
    # JSON has no bool/int confusion; Python does, and `true` is not a number in Step Functions.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_boolean(value: object) -> bool:
    return isinstance(value, bool)


def _is_null(value: object) -> bool:
    return value is None


_Compare = Callable[[Any, Any], bool]  # called only once `has_type` holds for both sides
_ORDERINGS: dict[str, _Compare] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "GreaterThan": operator.gt,
    "LessThanEquals": operator.le,
    "GreaterThanEquals": operator.ge,
}

# Operator name -> (type both sides must have, comparison). Each also exists as `<name>Path`,
# whose operand is a path read from the input instead of a literal.
_COMPARISONS: dict[str, tuple[Callable[[object], bool], _Compare]] = {
    **{f"String{suffix}": (_is_string, compare) for suffix, compare in _ORDERINGS.items()},
    **{f"Numeric{suffix}": (_is_number, compare) for suffix, compare in _ORDERINGS.items()},
    "BooleanEquals": (_is_boolean, operator.eq),
}
_TYPE_TESTS: dict[str, Callable[[object], bool]] = {
    "IsNull": _is_null,
    "IsString": _is_string,
    "IsNumeric": _is_number,
    "IsBoolean": _is_boolean,
}
_SUPPORTED_OPERATORS = sorted([*_COMPARISONS, *(f"{name}Path" for name in _COMPARISONS), *_TYPE_TESTS, "IsPresent"])


class ChoiceRule(Protocol):
    """A boolean expression over the Choice state's effective input and the context object."""

    def matches(self, document: object, context: object) -> bool:
        """Whether the rule holds for this input."""
        ...


@dataclass(frozen=True)
class _Comparison:
    variable: ReferencePath
    has_type: Callable[[object], bool]
    compare: _Compare
    operand: object
    operand_path: ReferencePath | None

    def matches(self, document: object, context: object) -> bool:
        value = self.variable.select(document, context)
        operand = self.operand if self.operand_path is None else self.operand_path.select(document, context)
        return self.has_type(value) and self.has_type(operand) and self.compare(value, operand)


@dataclass(frozen=True)
class _TypeTest:
    variable: ReferencePath
    has_type: Callable[[object], bool]
    expected: bool

    def matches(self, document: object, context: object) -> bool:
        return self.has_type(self.variable.select(document, context)) == self.expected


@dataclass(frozen=True)
class _IsPresent:
    variable: ReferencePath
    expected: bool

    def matches(self, document: object, context: object) -> bool:
        found, _ = self.variable.find(document, context)
        return found == self.expected


@dataclass(frozen=True)
class _Combination:
    rules: tuple[ChoiceRule, ...]
    combine: Callable[[Iterable[bool]], bool]  # `all` for And, `any` for Or

    def matches(self, document: object, context: object) -> bool:
        return self.combine(rule.matches(document, context) for rule in self.rules)


@dataclass(frozen=True)
class _Not:
    rule: ChoiceRule

    def matches(self, document: object, context: object) -> bool:
        return not self.rule.matches(document, context)


@dataclass(frozen=True)
class Choice:
    """One entry of a Choice state's `Choices`: when `rule` matches, go to `next_state`."""

    rule: ChoiceRule
    next_state: str


@dataclass(frozen=True)
class ChoiceState:
    """A Choice state: the first matching rule picks the next state, else Default."""

    flow: DataFlow
    choices: tuple[Choice, ...]
    default: str | None

    @classmethod
    def load(cls, raw: Mapping[str, object]) -> ChoiceState:
        """Compile a Choice state (the loader has checked its fields); DefinitionProblem if malformed."""
        default = raw.get("Default")
        if default is not None and not isinstance(default, str):
            raise DefinitionProblem("Default must name a state")
        return cls(DataFlow.load(raw), _compile_choices(raw.get("Choices")), default)

    def targets(self) -> list[tuple[str, str]]:
        """(field, state name) for each transition, for the loader's checks."""
        nexts = [(f"Choices[{index}].Next", choice.next_state) for index, choice in enumerate(self.choices)]
        return nexts + ([("Default", self.default)] if self.default else [])

    def execute(self, document: object, context: ContextObject) -> tuple[object, str | None]:
        """Pick the next state; the output is the effective input, through OutputPath."""
        effective_input = self.flow.effective_input(document, context)
        next_state = next(
            (choice.next_state for choice in self.choices if choice.rule.matches(effective_input, context)),
            self.default,
        )
        if next_state is None:
            raise StatesError("States.NoChoiceMatched", "no Choices rule matched and there is no Default")
        return self.flow.output(effective_input, effective_input, context), next_state


def _compile_choices(raw: object) -> tuple[Choice, ...]:
    if not isinstance(raw, list) or not raw:
        raise DefinitionProblem("Choices must be a non-empty list of rules")
    choices = []
    for index, raw_rule in enumerate(raw):
        location = f"Choices[{index}]"
        if not isinstance(raw_rule, dict):
            raise DefinitionProblem(f"{location} must be an object")
        next_state = raw_rule.get("Next")
        if not isinstance(next_state, str):
            raise DefinitionProblem(f"{location} needs a Next naming a state")
        rule = {key: value for key, value in raw_rule.items() if key != "Next"}
        choices.append(Choice(_compile_rule(rule, location), next_state))
    return tuple(choices)


def _compile_rule(raw: object, location: str) -> ChoiceRule:
    if not isinstance(raw, dict):
        raise DefinitionProblem(f"{location} must be an object")
    if "Next" in raw:
        raise DefinitionProblem(f"{location}: a rule nested in And/Or/Not cannot have Next")
    fields = {key: value for key, value in raw.items() if key != "Comment"}
    if "Not" in fields or "And" in fields or "Or" in fields:
        return _compile_boolean(fields, location)
    variable_text = fields.pop("Variable", None)
    if variable_text is None:
        raise DefinitionProblem(f"{location} needs a Variable or one of And, Or, Not")
    if len(fields) != 1:
        raise DefinitionProblem(f"{location} needs exactly one comparison operator, got {sorted(fields)}")
    [(name, operand)] = fields.items()
    variable = _parse_path(variable_text, f"{location}.Variable")
    return _compile_operator(variable, name, operand, f"{location}.{name}")


def _compile_boolean(fields: dict[str, object], location: str) -> ChoiceRule:
    if len(fields) != 1:
        raise DefinitionProblem(f"{location}: And, Or and Not must stand alone in a rule, got {sorted(fields)}")
    [(name, operands)] = fields.items()
    if name == "Not":
        return _Not(_compile_rule(operands, f"{location}.Not"))
    if not isinstance(operands, list) or not operands:
        raise DefinitionProblem(f"{location}.{name} must be a non-empty list of rules")
    rules = tuple(_compile_rule(rule, f"{location}.{name}[{index}]") for index, rule in enumerate(operands))
    return _Combination(rules, all if name == "And" else any)


def _compile_operator(variable: ReferencePath, name: str, operand: object, location: str) -> ChoiceRule:
    if name == "IsPresent" or name in _TYPE_TESTS:
        if not isinstance(operand, bool):
            raise DefinitionProblem(f"{location} must be true or false, got {operand!r}")
        if name == "IsPresent":
            return _IsPresent(variable, operand)
        return _TypeTest(variable, _TYPE_TESTS[name], operand)
    if name.endswith("Path") and name[: -len("Path")] in _COMPARISONS:
        has_type, compare = _COMPARISONS[name[: -len("Path")]]
        return _Comparison(variable, has_type, compare, None, _parse_path(operand, location))
    if name in _COMPARISONS:
        has_type, compare = _COMPARISONS[name]
        if not has_type(operand):
            raise DefinitionProblem(f"{location}: {operand!r} is not a valid operand for {name}")
        return _Comparison(variable, has_type, compare, operand, None)
    raise DefinitionProblem(
        f"{location}: unknown comparison operator {name!r} (supported: {', '.join(_SUPPORTED_OPERATORS)})"
    )


def _parse_path(text: object, location: str) -> ReferencePath:
    try:
        return ReferencePath.parse(text, allow_context=True)
    except DefinitionProblem as problem:
        raise DefinitionProblem(f"{location}: {problem}") from None
