"""Reference paths, ResultPath and payload templates of the local States Language interpreter."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from eventpipe.workflow.paths import (
    DataFlow,
    DefinitionProblem,
    PayloadTemplate,
    ReferencePath,
    StatesError,
    optional_path,
    place_result,
)

DOCUMENT: dict[str, Any] = {
    "a": {"b": [10, {"c": "deep"}]},
    "with space": 1,
    "flag": False,
    "nothing": None,
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", DOCUMENT),
        ("$.a.b", [10, {"c": "deep"}]),
        ("$.a.b[0]", 10),
        ("$.a.b[1].c", "deep"),
        ("$['with space']", 1),
        ('$["a"]["b"][0]', 10),
        ("$.a.['b'][1]['c']", "deep"),
        ("$.flag", False),
        ("$.nothing", None),
    ],
)
def test_reference_path_selects_the_named_node(path: str, expected: Any) -> None:
    # GIVEN a parsed reference path
    parsed = ReferencePath.parse(path, allow_context=False)
    # WHEN it is applied to the document
    selected = parsed.select(DOCUMENT)
    # THEN it returns exactly that node (False and null are values, not "missing")
    assert selected == expected


@pytest.mark.parametrize("path", ["$.missing", "$.a.b[2]", "$.a.b.c", "$.flag.x", "$.a[0]"])
def test_path_that_selects_nothing_fails_with_states_runtime(path: str) -> None:
    # GIVEN a path naming a node absent from the document
    parsed = ReferencePath.parse(path, allow_context=False)
    # WHEN it is selected
    with pytest.raises(StatesError) as raised:
        parsed.select(DOCUMENT)
    # THEN the error is States.Runtime and the cause names the path
    assert raised.value.error == "States.Runtime"
    assert path in raised.value.cause


def test_find_reports_absence_without_raising() -> None:
    # GIVEN one present and one absent path
    present = ReferencePath.parse("$.nothing", allow_context=False)
    absent = ReferencePath.parse("$.missing", allow_context=False)
    # WHEN / THEN find tells a null value apart from a missing field
    assert present.find(DOCUMENT) == (True, None)
    assert absent.find(DOCUMENT) == (False, None)


def test_context_path_reads_the_context_object() -> None:
    # GIVEN a `$$` path and a context object
    parsed = ReferencePath.parse("$$.Execution.Name", allow_context=True)
    # WHEN it is selected
    name = parsed.select(DOCUMENT, {"Execution": {"Name": "batch-1"}})
    # THEN the value comes from the context, not from the document
    assert name == "batch-1"


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("a.b", "must start with '$'"),
        ("$..a", "not a supported reference path"),
        ("$.a[*]", "not a supported reference path"),
        ("$.a[?(@.x > 1)]", "not a supported reference path"),
        ("$.a[0:2]", "not a supported reference path"),
        ("$.a[-1]", "not a supported reference path"),
        ("$$.Execution.Id", "cannot read the context object"),
        (42, "must be a string"),
    ],
)
def test_unsupported_path_syntax_is_refused_at_parse_time(path: object, problem: str) -> None:
    # GIVEN a path outside the reference-path subset (or a context path where none is allowed)
    # WHEN it is parsed
    with pytest.raises(DefinitionProblem) as raised:
        ReferencePath.parse(path, allow_context=False)
    # THEN the problem says why
    assert problem in str(raised.value)


def test_assign_creates_missing_objects_and_leaves_the_input_untouched() -> None:
    # GIVEN a document and a snapshot of it
    document = {"keep": {"x": 1}, "a": {"existing": True}}
    snapshot = copy.deepcopy(document)
    # WHEN a result is placed at a nested path whose last objects do not exist yet
    updated = ReferencePath.parse("$.a.b.c", allow_context=False).assign(document, {"r": 2})
    # THEN the result is set, siblings are kept, and the original is unchanged
    assert updated == {"keep": {"x": 1}, "a": {"existing": True, "b": {"c": {"r": 2}}}}
    assert document == snapshot


def test_assign_at_the_root_replaces_the_document() -> None:
    # GIVEN / WHEN the result is placed at `$`
    updated = ReferencePath.parse("$", allow_context=False).assign({"old": 1}, [1, 2])
    # THEN the result replaces the document
    assert updated == [1, 2]


def test_assign_through_a_non_object_fails_with_result_path_match_failure() -> None:
    # GIVEN a ResultPath whose parent is a number in the document
    path = ReferencePath.parse("$.count.total", allow_context=False)
    # WHEN the result is placed
    with pytest.raises(StatesError) as raised:
        path.assign({"count": 3}, "x")
    # THEN the Step Functions error for that case is raised
    assert raised.value.error == "States.ResultPathMatchFailure"


def test_optional_path_tells_absent_from_null() -> None:
    # GIVEN / WHEN a state without InputPath, with a null one, and with a path
    absent = optional_path({}, "InputPath")
    null = optional_path({"InputPath": None}, "InputPath")
    given = optional_path({"InputPath": "$.a"}, "InputPath")
    # THEN absent means `$`, null means "no path", a path is parsed
    assert absent is not None
    assert absent.steps == ()
    assert null is None
    assert given is not None
    assert given.steps == ("a",)


def test_result_path_with_an_array_index_is_refused() -> None:
    # GIVEN / WHEN a ResultPath that would write into an array
    with pytest.raises(DefinitionProblem) as raised:
        optional_path({"ResultPath": "$.items[0]"}, "ResultPath")
    # THEN it is refused
    assert "only name object fields" in str(raised.value)


def test_place_result_with_null_path_discards_the_result() -> None:
    # GIVEN / WHEN ResultPath is null
    output = place_result(None, {"input": 1}, {"result": 2})
    # THEN the input passes through
    assert output == {"input": 1}


def test_payload_template_resolves_paths_in_nested_objects_and_arrays() -> None:
    # GIVEN a template with literals, `.$` fields, nested objects and objects inside arrays
    template = PayloadTemplate.compile(
        {
            "literal": "x",
            "value.$": "$.a.b[0]",
            "nested": {"deep.$": "$.a.b[1].c", "n": 1},
            "items": [{"flag.$": "$.flag"}, 7, ["y"]],
            "name.$": "$$.Execution.Name",
        },
        field="Parameters",
    )
    # WHEN it is evaluated
    payload = template.evaluate(DOCUMENT, {"Execution": {"Name": "run-7"}})
    # THEN every `.$` field is replaced by its selection and loses its suffix
    assert payload == {
        "literal": "x",
        "value": 10,
        "nested": {"deep": "deep", "n": 1},
        "items": [{"flag": False}, 7, ["y"]],
        "name": "run-7",
    }


def test_payload_template_literals_are_copied_for_each_evaluation() -> None:
    # GIVEN a template with a mutable literal
    template = PayloadTemplate.compile({"list": [1]}, field="Parameters")
    first = template.evaluate({}, {})
    # WHEN a consumer mutates one payload
    first["list"].append(2)
    # THEN the next evaluation is unaffected
    assert template.evaluate({}, {}) == {"list": [1]}


def test_payload_template_path_that_selects_nothing_fails_with_states_runtime() -> None:
    # GIVEN a template reading a field the input lacks
    template = PayloadTemplate.compile({"id.$": "$.id"}, field="Parameters")
    # WHEN it is evaluated
    with pytest.raises(StatesError) as raised:
        template.evaluate({"other": 1}, {})
    # THEN States.Runtime is raised
    assert raised.value.error == "States.Runtime"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (["not", "an", "object"], "Parameters must be an object"),
        ({"f.$": "States.Format('{}', $.a)"}, "intrinsic function"),
        ({"f.$": "States.JsonToString($.a)"}, "intrinsic function"),
        ({"f.$": 3}, "must be a string"),
        ({"f.$": "$.a", "f": 1}, "has both 'f' and 'f.$'"),
        ({"outer": {"f.$": "$.items[*].id"}}, "Parameters.outer.f.$"),
    ],
)
def test_malformed_payload_templates_are_refused(raw: object, problem: str) -> None:
    # GIVEN / WHEN a template the interpreter cannot evaluate faithfully
    with pytest.raises(DefinitionProblem) as raised:
        PayloadTemplate.compile(raw, field="Parameters")
    # THEN the problem names it
    assert problem in str(raised.value)


def test_data_flow_applies_processing_in_step_functions_order() -> None:
    # GIVEN all five processing fields
    flow = DataFlow.load(
        {
            "InputPath": "$.order",
            "Parameters": {"id.$": "$.id"},
            "ResultSelector": {"status.$": "$.status"},
            "ResultPath": "$.order.outcome",
            "OutputPath": "$.order",
        }
    )
    raw_input = {"order": {"id": 7, "lines": 2}, "other": True}
    # WHEN the effective input is built and a result is folded back in
    effective_input = flow.effective_input(raw_input, {})
    output = flow.output(raw_input, {"status": "ok", "noise": 1}, {})
    # THEN Parameters saw only the InputPath selection, and ResultPath wrote into the raw input
    assert effective_input == {"id": 7}
    assert output == {"id": 7, "lines": 2, "outcome": {"status": "ok"}}


def test_data_flow_null_paths_give_empty_objects() -> None:
    # GIVEN null InputPath and OutputPath
    flow = DataFlow.load({"InputPath": None, "OutputPath": None})
    # WHEN / THEN both select `{}`
    assert flow.effective_input({"a": 1}, {}) == {}
    assert flow.output({"a": 1}, {"r": 1}, {}) == {}
