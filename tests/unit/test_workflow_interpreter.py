"""The local Amazon States Language interpreter: states, data flow, Retry/Catch, Choice, refusals."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from eventpipe.core.errors import ExecutionFailedError, WorkflowDefinitionError
from eventpipe.workflow import StateMachine

PIPELINE_DEFINITION = Path(__file__).parents[2] / "src" / "eventpipe" / "workflow" / "pipeline.asl.json"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class TransientError(Exception):
    """Stands for a retryable failure such as a throttled store."""


class PermanentError(Exception):
    """Stands for a failure no retry fixes."""


class ScriptedTask:
    """A resource that raises the scripted exceptions in turn, then returns `result`; records its inputs."""

    def __init__(self, result: Any = None, failures: tuple[Exception, ...] = ()) -> None:
        self.result = result
        self.failures = list(failures)
        self.inputs: list[Any] = []

    def __call__(self, payload: Any) -> Any:
        self.inputs.append(payload)
        if self.failures:
            raise self.failures.pop(0)
        return self.result


def build(
    states: dict[str, Any],
    resources: dict[str, Any] | None = None,
    delays: list[float] | None = None,
    **top_level: Any,
) -> StateMachine:
    """A machine starting at the first state; `delays` records what Retry would have slept."""
    definition = {"StartAt": next(iter(states)), "States": states, **top_level}
    sleep = delays.append if delays is not None else _refuse_to_sleep
    return StateMachine.from_definition(definition, resources=resources or {}, sleep=sleep)


def _refuse_to_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected retry sleep of {seconds}s")


def task(resource: str = "Work", **fields: Any) -> dict[str, Any]:
    """A Task state bound to `${resource}`; it ends the execution unless `fields` give a Next."""
    transition = {} if "Next" in fields else {"End": True}
    return {"Type": "Task", "Resource": f"${{{resource}}}", **transition, **fields}


def single_task_machine(work: ScriptedTask, delays: list[float] | None = None, **fields: Any) -> StateMachine:
    return build({"Work": task(**fields)}, {"Work": work}, delays)


def run_failing(machine: StateMachine, document: Any = None) -> ExecutionFailedError:
    with pytest.raises(ExecutionFailedError) as raised:
        machine.run({} if document is None else document)
    return raised.value


# --- data flow ---------------------------------------------------------------------------------


def test_task_receives_parameters_and_its_result_lands_at_result_path() -> None:
    # GIVEN a task whose Parameters mix literals, input paths and the context object
    work = ScriptedTask(result={"rows": 3})
    machine = single_task_machine(
        work,
        Parameters={"batch.$": "$.batch_id", "mode": "full", "run.$": "$$.Execution.Name"},
        ResultPath="$.work",
    )
    # WHEN it runs
    output = machine.run({"batch_id": "b-1", "extra": True}, execution_name="batch-123")
    # THEN the resource got the built payload and the output is the input plus the result
    assert work.inputs == [{"batch": "b-1", "mode": "full", "run": "batch-123"}]
    assert output == {"batch_id": "b-1", "extra": True, "work": {"rows": 3}}


def test_processing_runs_in_aws_order() -> None:
    # GIVEN InputPath, Parameters, ResultSelector, ResultPath and OutputPath together
    work = ScriptedTask(result={"status": "ok", "noise": [1, 2]})
    machine = single_task_machine(
        work,
        InputPath="$.order",
        Parameters={"id.$": "$.id"},
        ResultSelector={"status.$": "$.status"},
        ResultPath="$.order.outcome",
        OutputPath="$.order",
    )
    # WHEN it runs
    output = machine.run({"order": {"id": 7}, "other": 1})
    # THEN Parameters saw the InputPath selection, and ResultPath wrote into the raw input
    assert work.inputs == [{"id": 7}]
    assert output == {"id": 7, "outcome": {"status": "ok"}}


def test_default_result_path_replaces_the_input() -> None:
    # GIVEN a task with no ResultPath
    machine = single_task_machine(ScriptedTask(result={"only": "result"}))
    # WHEN / THEN the output is the result alone
    assert machine.run({"input": 1}) == {"only": "result"}


def test_result_path_null_discards_the_result() -> None:
    # GIVEN a task with ResultPath null
    machine = single_task_machine(ScriptedTask(result={"ignored": True}), ResultPath=None)
    # WHEN / THEN the input passes through
    assert machine.run({"input": 1}) == {"input": 1}


def test_null_input_path_sends_an_empty_object() -> None:
    # GIVEN InputPath null
    work = ScriptedTask(result="r")
    machine = single_task_machine(work, InputPath=None)
    # WHEN it runs
    machine.run({"secret": 1})
    # THEN the task received {}
    assert work.inputs == [{}]


def test_null_output_path_outputs_an_empty_object() -> None:
    # GIVEN OutputPath null
    machine = single_task_machine(ScriptedTask(result="r"), OutputPath=None)
    # WHEN / THEN the output is {}
    assert machine.run({"a": 1}) == {}


def test_the_callers_input_is_never_mutated() -> None:
    # GIVEN a resource that mutates what it receives, and nested ResultPaths
    def vandal(payload: dict[str, Any]) -> dict[str, Any]:
        payload["nested"]["list"].append("vandal")
        return {"done": True}

    machine = build(
        {
            "Mutate": task("Vandal", ResultPath="$.nested.result", Next="Tag"),
            "Tag": {"Type": "Pass", "Result": "tagged", "ResultPath": "$.nested.tag", "End": True},
        },
        {"Vandal": vandal},
    )
    document = {"nested": {"list": [1]}, "top": "x"}
    snapshot = copy.deepcopy(document)
    # WHEN it runs
    output = machine.run(document)
    # THEN the caller's document is unchanged, and the output carries the results
    assert document == snapshot
    assert output == {"nested": {"list": [1], "result": {"done": True}, "tag": "tagged"}, "top": "x"}


def test_result_path_through_a_non_object_fails_with_result_path_match_failure() -> None:
    # GIVEN a ResultPath below a field that holds a number
    machine = single_task_machine(ScriptedTask(result=1), ResultPath="$.count.total")
    # WHEN it runs
    failure = run_failing(machine, {"count": 3})
    # THEN the documented error is raised
    assert failure.error == "States.ResultPathMatchFailure"


def test_path_selecting_nothing_fails_with_states_runtime_naming_the_state() -> None:
    # GIVEN Parameters reading a field the input lacks
    machine = single_task_machine(ScriptedTask(), Parameters={"id.$": "$.batch_id"})
    # WHEN it runs
    failure = run_failing(machine, {"other": 1})
    # THEN States.Runtime says which state and which path
    assert failure.error == "States.Runtime"
    assert "state 'Work'" in failure.cause
    assert "$.batch_id" in failure.cause


def test_task_result_that_is_not_json_fails_the_task() -> None:
    # GIVEN a resource returning a Python set, which Step Functions could never carry
    machine = single_task_machine(ScriptedTask(result={1, 2}))
    # WHEN / THEN the task fails with the serialisation error's class name
    assert run_failing(machine).error == "TypeError"


def test_input_that_is_not_json_is_refused() -> None:
    # GIVEN / WHEN the execution input cannot be serialised
    failure = run_failing(single_task_machine(ScriptedTask()), {"when": object()})
    # THEN the execution fails before any state runs
    assert failure.error == "States.Runtime"
    assert "not JSON" in failure.cause


# --- context object ----------------------------------------------------------------------------


def test_context_object_describes_execution_state_and_machine() -> None:
    # GIVEN a Pass state copying the context object into its output
    definition = {
        "StartAt": "Look",
        "States": {
            "Look": {
                "Type": "Pass",
                "Parameters": {
                    "id.$": "$$.Execution.Id",
                    "name.$": "$$.Execution.Name",
                    "start.$": "$$.Execution.StartTime",
                    "input.$": "$$.Execution.Input",
                    "state.$": "$$.State.Name",
                    "entered.$": "$$.State.EnteredTime",
                    "retries.$": "$$.State.RetryCount",
                    "machine.$": "$$.StateMachine.Name",
                },
                "End": True,
            }
        },
    }
    machine = StateMachine.from_definition(definition, resources={}, name="pipeline")
    # WHEN it runs
    seen = machine.run({"batch_id": "b-9"}, execution_name="batch-123")
    # THEN each field holds what Step Functions would put there
    assert seen["id"].endswith(":execution:pipeline:batch-123")
    assert seen["name"] == "batch-123"
    assert TIMESTAMP.match(seen["start"])
    assert seen["input"] == {"batch_id": "b-9"}
    assert seen["state"] == "Look"
    assert TIMESTAMP.match(seen["entered"])
    assert seen["retries"] == 0
    assert seen["machine"] == "pipeline"


def test_machine_name_defaults_to_local_and_execution_name_to_a_uuid() -> None:
    # GIVEN a machine built without a name, run without an execution name
    machine = build(
        {
            "Look": {
                "Type": "Pass",
                "Parameters": {"machine.$": "$$.StateMachine.Name", "run.$": "$$.Execution.Name"},
                "End": True,
            }
        }
    )
    # WHEN it runs
    seen = machine.run({})
    # THEN the defaults apply
    assert seen["machine"] == "local"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", seen["run"])


def test_retry_count_in_the_context_counts_the_retries_of_the_state() -> None:
    # GIVEN a task failing twice and passing $$.State.RetryCount to its resource
    work = ScriptedTask(result="ok", failures=(TransientError("1"), TransientError("2")))
    delays: list[float] = []
    machine = single_task_machine(
        work,
        delays,
        Parameters={"attempt.$": "$$.State.RetryCount"},
        Retry=[{"ErrorEquals": ["TransientError"]}],
    )
    # WHEN it runs
    machine.run({})
    # THEN each attempt saw the number of retries before it
    assert [payload["attempt"] for payload in work.inputs] == [0, 1, 2]


# --- Retry ---------------------------------------------------------------------------------------


def test_retry_backs_off_exponentially_then_succeeds() -> None:
    # GIVEN a task that fails three times, with interval 2s and backoff rate 3
    work = ScriptedTask(result={"ok": True}, failures=(TransientError("a"),) * 3)
    delays: list[float] = []
    retry = [{"ErrorEquals": ["TransientError"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 3}]
    machine = single_task_machine(work, delays, Retry=retry)
    # WHEN it runs
    output = machine.run({})
    # THEN it slept 2, 6 and 18 seconds, and the fourth attempt's result is the output
    assert delays == [2, 6, 18]
    assert len(work.inputs) == 4
    assert output == {"ok": True}


def test_retry_defaults_are_one_second_three_attempts_rate_two() -> None:
    # GIVEN a retrier with only ErrorEquals and a task that always fails
    work = ScriptedTask(failures=(TransientError("store throttled"),) * 10)
    delays: list[float] = []
    machine = single_task_machine(work, delays, Retry=[{"ErrorEquals": ["TransientError"]}])
    # WHEN it runs
    failure = run_failing(machine)
    # THEN it retried three times (1s, 2s, 4s) and then failed with the exception's name and message
    assert delays == [1, 2, 4]
    assert len(work.inputs) == 4
    assert (failure.error, failure.cause) == ("TransientError", "store throttled")


def test_max_delay_seconds_caps_the_backoff() -> None:
    # GIVEN a steep backoff capped at 5 seconds
    work = ScriptedTask(result="ok", failures=(TransientError(),) * 4)
    delays: list[float] = []
    retry = [{"ErrorEquals": ["States.ALL"], "BackoffRate": 10, "MaxAttempts": 4, "MaxDelaySeconds": 5}]
    # WHEN it runs
    single_task_machine(work, delays, Retry=retry).run({})
    # THEN no wait exceeds the cap
    assert delays == [1, 5, 5, 5]


def test_max_attempts_zero_never_retries() -> None:
    # GIVEN a retrier with MaxAttempts 0
    work = ScriptedTask(failures=(TransientError("once"),))
    machine = single_task_machine(work, [], Retry=[{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}])
    # WHEN it runs
    failure = run_failing(machine)
    # THEN the task ran once and its error ended the execution
    assert len(work.inputs) == 1
    assert failure.error == "TransientError"


def test_full_jitter_waits_at_most_the_backoff_delay() -> None:
    # GIVEN full jitter over a 10s interval doubling four times
    work = ScriptedTask(result="ok", failures=(TransientError(),) * 4)
    delays: list[float] = []
    retry = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "MaxAttempts": 4, "JitterStrategy": "FULL"}]
    # WHEN it runs
    single_task_machine(work, delays, Retry=retry).run({})
    # THEN each wait lies in [0, 10 * 2^n], and they are not the plain backoff values
    assert len(delays) == 4
    assert all(0 <= delay <= 10 * 2**n for n, delay in enumerate(delays))
    assert delays != [10, 20, 40, 80]


def test_first_matching_retrier_applies_and_each_counts_its_own_attempts() -> None:
    # GIVEN a specific retrier before a catch-all retrier, two attempts each
    failures = (TransientError("t1"), TransientError("t2"), PermanentError("p"), TransientError("t3"))
    work = ScriptedTask(result="never", failures=failures)
    delays: list[float] = []
    retry = [
        {"ErrorEquals": ["TransientError"], "MaxAttempts": 2},
        {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 7, "MaxAttempts": 2},
    ]
    machine = single_task_machine(work, delays, Retry=retry)
    # WHEN it runs
    failure = run_failing(machine)
    # THEN the third TransientError finds its retrier exhausted and does not fall through to States.ALL
    assert delays == [1, 2, 7]
    assert (failure.error, failure.cause) == ("TransientError", "t3")


def test_states_task_failed_matches_any_task_error() -> None:
    # GIVEN a retrier on States.TaskFailed
    work = ScriptedTask(result="ok", failures=(PermanentError(),))
    delays: list[float] = []
    machine = single_task_machine(work, delays, Retry=[{"ErrorEquals": ["States.TaskFailed"]}])
    # WHEN / THEN the task error is retried
    assert machine.run({}) == "ok"
    assert delays == [1]


def test_error_matching_no_retrier_is_not_retried() -> None:
    # GIVEN a retrier for another error
    work = ScriptedTask(failures=(PermanentError("bad input"),))
    machine = single_task_machine(work, [], Retry=[{"ErrorEquals": ["TransientError"]}])
    # WHEN / THEN the execution fails at once
    assert run_failing(machine).error == "PermanentError"
    assert len(work.inputs) == 1


# --- Catch ---------------------------------------------------------------------------------------


def _catching_machine(work: ScriptedTask, delays: list[float] | None = None, **fields: Any) -> StateMachine:
    return build(
        {
            "Work": task(Next="Done", **fields),
            "Done": {"Type": "Succeed"},
            "Recover": {"Type": "Pass", "ResultPath": "$.recovered", "Result": True, "End": True},
        },
        {"Work": work},
        delays,
    )


def test_catch_with_default_result_path_outputs_the_error() -> None:
    # GIVEN a catcher without ResultPath
    work = ScriptedTask(failures=(PermanentError("boom"),))
    machine = _catching_machine(work, Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Recover"}])
    # WHEN it runs
    output = machine.run({"batch": 1})
    # THEN the error object replaced the input, then the fallback ran
    assert output == {"Error": "PermanentError", "Cause": "boom", "recovered": True}


def test_catch_result_path_adds_the_error_to_the_raw_input() -> None:
    # GIVEN a task narrowing its input, with a catcher writing the error to $.error
    work = ScriptedTask(failures=(PermanentError("boom"),))
    catch = [{"ErrorEquals": ["PermanentError"], "ResultPath": "$.error", "Next": "Recover"}]
    machine = _catching_machine(work, InputPath="$.payload", OutputPath="$.payload", Catch=catch)
    # WHEN it runs
    output = machine.run({"payload": {"n": 1}, "batch": 1})
    # THEN the error sits in the state's raw input (not the InputPath selection; no OutputPath)
    assert output == {
        "payload": {"n": 1},
        "batch": 1,
        "error": {"Error": "PermanentError", "Cause": "boom"},
        "recovered": True,
    }


def test_catch_runs_after_retries_are_exhausted() -> None:
    # GIVEN a retried error that keeps failing, and a catcher for it
    work = ScriptedTask(failures=(TransientError("still down"),) * 3)
    delays: list[float] = []
    machine = _catching_machine(
        work,
        delays,
        Retry=[{"ErrorEquals": ["TransientError"], "MaxAttempts": 2}],
        Catch=[{"ErrorEquals": ["TransientError"], "ResultPath": "$.error", "Next": "Recover"}],
    )
    # WHEN it runs
    output = machine.run({})
    # THEN both retries happened before the catcher took over
    assert delays == [1, 2]
    assert output == {"error": {"Error": "TransientError", "Cause": "still down"}, "recovered": True}


def test_first_matching_catcher_is_used() -> None:
    # GIVEN a catcher for another error before a catch-all
    work = ScriptedTask(failures=(PermanentError("p"),))
    catch = [
        {"ErrorEquals": ["TransientError"], "Next": "Done"},
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Recover"},
    ]
    # WHEN it runs
    output = _catching_machine(work, Catch=catch).run({})
    # THEN the catch-all handled it
    assert output == {"error": {"Error": "PermanentError", "Cause": "p"}, "recovered": True}


def test_states_runtime_is_neither_retried_nor_caught_by_states_all() -> None:
    # GIVEN a task whose InputPath selects nothing, with catch-all Retry and Catch
    work = ScriptedTask(result="never")
    delays: list[float] = []
    machine = _catching_machine(
        work,
        delays,
        InputPath="$.missing",
        Retry=[{"ErrorEquals": ["States.ALL"]}],
        Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Recover"}],
    )
    # WHEN it runs
    failure = run_failing(machine, {"present": 1})
    # THEN the execution fails with States.Runtime: no retry, no fallback, no task call
    assert failure.error == "States.Runtime"
    assert delays == []
    assert work.inputs == []


def test_result_path_match_failure_can_be_caught() -> None:
    # GIVEN a ResultPath that cannot be applied, and a catch-all
    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Recover"}]
    machine = _catching_machine(ScriptedTask(result=1), ResultPath="$.count.total", Catch=catch)
    # WHEN it runs
    output = machine.run({"count": 3})
    # THEN the catcher handled it as Step Functions does
    assert output["error"]["Error"] == "States.ResultPathMatchFailure"


# --- Choice --------------------------------------------------------------------------------------


def choose(rule: dict[str, Any], document: Any) -> str:
    """Run a Choice with one rule; return "yes" if it matched and "no" if Default was taken."""
    machine = build(
        {
            "Decide": {"Type": "Choice", "Choices": [{**rule, "Next": "Yes"}], "Default": "No"},
            "Yes": {"Type": "Pass", "Result": "yes", "End": True},
            "No": {"Type": "Pass", "Result": "no", "End": True},
        }
    )
    return str(machine.run(document))


@pytest.mark.parametrize(
    ("rule", "document", "expected"),
    [
        ({"Variable": "$.s", "StringEquals": "a"}, {"s": "a"}, "yes"),
        ({"Variable": "$.s", "StringEquals": "a"}, {"s": "b"}, "no"),
        ({"Variable": "$.s", "StringEqualsPath": "$.t"}, {"s": "a", "t": "a"}, "yes"),
        ({"Variable": "$.s", "StringEqualsPath": "$.t"}, {"s": "a", "t": "b"}, "no"),
        ({"Variable": "$.s", "StringLessThan": "b"}, {"s": "a"}, "yes"),
        ({"Variable": "$.s", "StringGreaterThanEqualsPath": "$.t"}, {"s": "a", "t": "b"}, "no"),
        ({"Variable": "$.s", "StringEquals": "1"}, {"s": 1}, "no"),
        ({"Variable": "$.n", "NumericEquals": 3}, {"n": 3.0}, "yes"),
        ({"Variable": "$.n", "NumericEquals": 3}, {"n": 4}, "no"),
        ({"Variable": "$.n", "NumericEquals": 1}, {"n": True}, "no"),
        ({"Variable": "$.n", "NumericEquals": 3}, {"n": "3"}, "no"),
        ({"Variable": "$.n", "NumericEqualsPath": "$.m"}, {"n": 2, "m": 2}, "yes"),
        ({"Variable": "$.n", "NumericLessThan": 3}, {"n": 2}, "yes"),
        ({"Variable": "$.n", "NumericLessThan": 3}, {"n": 3}, "no"),
        ({"Variable": "$.n", "NumericLessThanPath": "$.m"}, {"n": 2, "m": 1}, "no"),
        ({"Variable": "$.n", "NumericGreaterThan": 3}, {"n": 4}, "yes"),
        ({"Variable": "$.n", "NumericGreaterThan": 3}, {"n": 3}, "no"),
        ({"Variable": "$.n", "NumericGreaterThanPath": "$.m"}, {"n": 5, "m": 1}, "yes"),
        ({"Variable": "$.n", "NumericLessThanEquals": 3}, {"n": 3}, "yes"),
        ({"Variable": "$.n", "NumericLessThanEquals": 3}, {"n": 3.5}, "no"),
        ({"Variable": "$.n", "NumericLessThanEqualsPath": "$.m"}, {"n": 1, "m": 1}, "yes"),
        ({"Variable": "$.n", "NumericGreaterThanEquals": 3}, {"n": 3}, "yes"),
        ({"Variable": "$.n", "NumericGreaterThanEquals": 3}, {"n": 2}, "no"),
        ({"Variable": "$.n", "NumericGreaterThanEqualsPath": "$.m"}, {"n": 0, "m": 1}, "no"),
        ({"Variable": "$.b", "BooleanEquals": True}, {"b": True}, "yes"),
        ({"Variable": "$.b", "BooleanEquals": True}, {"b": 1}, "no"),
        ({"Variable": "$.b", "BooleanEqualsPath": "$.c"}, {"b": False, "c": False}, "yes"),
        ({"Variable": "$.x", "IsPresent": True}, {"x": None}, "yes"),
        ({"Variable": "$.x", "IsPresent": True}, {}, "no"),
        ({"Variable": "$.x", "IsPresent": False}, {}, "yes"),
        ({"Variable": "$.x", "IsNull": True}, {"x": None}, "yes"),
        ({"Variable": "$.x", "IsNull": True}, {"x": 0}, "no"),
        ({"Variable": "$.x", "IsString": True}, {"x": "s"}, "yes"),
        ({"Variable": "$.x", "IsString": False}, {"x": "s"}, "no"),
        ({"Variable": "$.x", "IsNumeric": True}, {"x": 1.5}, "yes"),
        ({"Variable": "$.x", "IsNumeric": True}, {"x": False}, "no"),
        ({"Variable": "$.x", "IsBoolean": True}, {"x": False}, "yes"),
        ({"Variable": "$.x", "IsBoolean": True}, {"x": 0}, "no"),
        ({"Variable": "$$.Execution.Input.x", "NumericEquals": 1}, {"x": 1}, "yes"),
    ],
)
def test_choice_comparison_operators(rule: dict[str, Any], document: Any, expected: str) -> None:
    # GIVEN a Choice whose only rule is `rule`
    # WHEN it runs on `document`
    outcome = choose(rule, document)
    # THEN it takes the rule's branch exactly when the comparison holds
    assert outcome == expected


@pytest.mark.parametrize(
    ("rule", "document", "expected"),
    [
        (
            {
                "And": [
                    {"Variable": "$.n", "NumericGreaterThan": 1},
                    {"Variable": "$.n", "NumericLessThan": 5},
                ]
            },
            {"n": 3},
            "yes",
        ),
        (
            {
                "And": [
                    {"Variable": "$.n", "NumericGreaterThan": 1},
                    {"Variable": "$.n", "NumericLessThan": 5},
                ]
            },
            {"n": 7},
            "no",
        ),
        (
            {"Or": [{"Variable": "$.s", "StringEquals": "a"}, {"Variable": "$.s", "StringEquals": "b"}]},
            {"s": "b"},
            "yes",
        ),
        (
            {"Or": [{"Variable": "$.s", "StringEquals": "a"}, {"Variable": "$.s", "StringEquals": "b"}]},
            {"s": "c"},
            "no",
        ),
        ({"Not": {"Variable": "$.s", "StringEquals": "a"}}, {"s": "a"}, "no"),
        ({"Not": {"Variable": "$.s", "StringEquals": "a"}}, {"s": "z"}, "yes"),
    ],
)
def test_choice_boolean_combinations(rule: dict[str, Any], document: Any, expected: str) -> None:
    # GIVEN a Choice whose rule combines comparisons with And, Or or Not
    # WHEN it runs
    outcome = choose(rule, document)
    # THEN the combination is evaluated as boolean logic
    assert outcome == expected


def test_choice_takes_the_first_matching_rule_and_applies_its_paths() -> None:
    # GIVEN two matching rules, InputPath and OutputPath
    machine = build(
        {
            "Decide": {
                "Type": "Choice",
                "InputPath": "$.batch",
                "OutputPath": "$.meta",
                "Choices": [
                    {"Variable": "$.size", "NumericGreaterThan": 10, "Next": "Big"},
                    {"Variable": "$.size", "NumericGreaterThan": 0, "Next": "Small"},
                ],
            },
            "Big": {"Type": "Pass", "ResultPath": "$.branch", "Result": "big", "End": True},
            "Small": {"Type": "Pass", "ResultPath": "$.branch", "Result": "small", "End": True},
        }
    )
    # WHEN it runs
    output = machine.run({"batch": {"size": 50, "meta": {"id": 1}}})
    # THEN the first rule won, and the next state got the narrowed input
    assert output == {"id": 1, "branch": "big"}


def test_choice_without_match_or_default_fails_with_no_choice_matched() -> None:
    # GIVEN a Choice with no Default
    machine = build(
        {
            "Decide": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "One"}]},
            "One": {"Type": "Succeed"},
        }
    )
    # WHEN / THEN nothing matching fails the execution
    assert run_failing(machine, {"n": 2}).error == "States.NoChoiceMatched"


def test_choice_variable_that_selects_nothing_fails_with_states_runtime() -> None:
    # GIVEN / WHEN a comparison on a missing field
    with pytest.raises(ExecutionFailedError) as raised:
        choose({"Variable": "$.missing", "StringEquals": "a"}, {})
    # THEN States.Runtime, as on Step Functions (IsPresent is the way to test for absence)
    assert raised.value.error == "States.Runtime"


# --- Pass, Succeed, Fail, loops --------------------------------------------------------------------


def test_pass_result_is_placed_at_result_path() -> None:
    # GIVEN a Pass with a Result
    machine = build({"P": {"Type": "Pass", "Result": {"x": [1]}, "ResultPath": "$.fixed", "End": True}})
    # WHEN / THEN
    assert machine.run({"a": 1}) == {"a": 1, "fixed": {"x": [1]}}


def test_pass_result_null_is_a_result_not_an_absence() -> None:
    # GIVEN a Pass with `"Result": null`
    machine = build({"P": {"Type": "Pass", "Result": None, "ResultPath": "$.r", "End": True}})
    # WHEN / THEN null is placed at ResultPath
    assert machine.run({"a": 1}) == {"a": 1, "r": None}


def test_pass_parameters_reshape_the_input() -> None:
    # GIVEN a Pass with Parameters and InputPath
    machine = build(
        {"P": {"Type": "Pass", "InputPath": "$.in", "Parameters": {"v.$": "$.value", "k": "c"}, "End": True}}
    )
    # WHEN / THEN the output is the built object
    assert machine.run({"in": {"value": 5}}) == {"v": 5, "k": "c"}


def test_pass_without_result_passes_its_input_through() -> None:
    # GIVEN a Pass with only OutputPath
    machine = build({"P": {"Type": "Pass", "OutputPath": "$.keep", "End": True}})
    # WHEN / THEN
    assert machine.run({"keep": [1], "drop": 2}) == [1]


def test_succeed_applies_input_and_output_paths() -> None:
    # GIVEN a Succeed with InputPath and OutputPath
    machine = build({"S": {"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"}})
    # WHEN / THEN
    assert machine.run({"a": {"b": "kept"}}) == "kept"


def test_fail_state_fails_the_execution_with_its_error_and_cause() -> None:
    # GIVEN a Fail state
    machine = build({"F": {"Type": "Fail", "Error": "BatchFailed", "Cause": "see the logs"}})
    # WHEN it runs
    failure = run_failing(machine)
    # THEN its Error and Cause are those of the failure
    assert (failure.error, failure.cause) == ("BatchFailed", "see the logs")


def test_endless_loop_fails_with_states_runtime_after_ten_thousand_states() -> None:
    # GIVEN a task and a Choice that always sends the execution back to it
    work = ScriptedTask(result=1)
    machine = build(
        {
            "Work": task(ResultPath=None, Next="Again"),
            "Again": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.go", "BooleanEquals": True, "Next": "Work"}],
            },
        },
        {"Work": work},
    )
    # WHEN it runs
    failure = run_failing(machine, {"go": True})
    # THEN it stops after 10,000 states (5,000 task calls) with States.Runtime
    assert failure.error == "States.Runtime"
    assert len(work.inputs) == 5000


# --- loading -------------------------------------------------------------------------------------


def test_from_file_loads_and_binds_resources(tmp_path: Path) -> None:
    # GIVEN a definition file using a ${...} placeholder
    definition_file = tmp_path / "machine.asl.json"
    definition_file.write_text(json.dumps({"StartAt": "T", "States": {"T": task("Double")}}), encoding="utf-8")
    # WHEN it is loaded with a binding for the placeholder, and run
    machine = StateMachine.from_file(definition_file, resources={"Double": lambda n: n * 2}, sleep=lambda _: None)
    # THEN the bound callable served the task
    assert machine.run(21) == 42


@pytest.mark.parametrize("content", ["{not json", None])
def test_from_file_refuses_unreadable_definitions(tmp_path: Path, content: str | None) -> None:
    # GIVEN a file that is not JSON, or no file at all
    definition_file = tmp_path / "machine.asl.json"
    if content is not None:
        definition_file.write_text(content, encoding="utf-8")
    # WHEN / THEN loading names the file
    with pytest.raises(WorkflowDefinitionError, match=r"machine\.asl\.json"):
        StateMachine.from_file(definition_file, resources={})


def test_timeouts_and_comments_are_accepted() -> None:
    # GIVEN the optional fields the interpreter accepts without enforcing
    machine = build(
        {"T": task(TimeoutSeconds=30, HeartbeatSeconds=10, Comment="c")},
        {"Work": lambda _: "ok"},
        Comment="top",
        Version="1.0",
        TimeoutSeconds=300,
        QueryLanguage="JSONPath",
    )
    # WHEN / THEN it loads and runs
    assert machine.run({}) == "ok"


def test_pipeline_definition_loads_with_every_placeholder_bound() -> None:
    # GIVEN the project's definition and a callable for each ${...} it names
    if not PIPELINE_DEFINITION.exists():
        pytest.skip("pipeline.asl.json is not written yet")
    names = set(re.findall(r"\$\{(\w+)\}", PIPELINE_DEFINITION.read_text(encoding="utf-8")))
    # WHEN it is loaded
    machine = StateMachine.from_file(PIPELINE_DEFINITION, resources=dict.fromkeys(names, lambda _: {}))
    # THEN the interpreter accepts everything it uses
    assert isinstance(machine, StateMachine)


def _states(**states: Any) -> dict[str, Any]:
    return {"StartAt": next(iter(states)), "States": states}


_END = {"Type": "Succeed"}


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            _states(Persist={"Type": "Map", "End": True}),
            "state 'Persist': unsupported state type 'Map' (supported: Task, Choice, Pass, Succeed, Fail)",
        ),
        (_states(P={"Type": "Parallel", "End": True}), "unsupported state type 'Parallel'"),
        (_states(W={"Type": "Wait", "Seconds": 1, "End": True}), "unsupported state type 'Wait'"),
        (_states(X={"End": True}), "state 'X': unsupported state type None"),
        (_states(P={"Type": "Pass", "End": True, "Assign": {}}), "state 'P': unknown field(s) 'Assign'"),
        ({**_states(S=_END), "Extra": 1}, "definition: unknown field(s) 'Extra'"),
        ({"States": {"S": _END}}, "StartAt must name the first state"),
        ({"StartAt": "S"}, "States must be a non-empty object"),
        ({"StartAt": "S", "States": {}}, "States must be a non-empty object"),
        ({"StartAt": "Nope", "States": {"S": _END}}, "StartAt 'Nope' is not a state"),
        (_states(P={"Type": "Pass", "Next": "Nope"}), "state 'P': Next 'Nope' is not a state"),
        (
            _states(
                C={
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.a", "IsNull": True, "Next": "S"}],
                    "Default": "X",
                },
                S=_END,
            ),
            "state 'C': Default 'X' is not a state",
        ),
        (
            _states(C={"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": True, "Next": "X"}]}),
            "state 'C': Choices[0].Next 'X' is not a state",
        ),
        (
            _states(T=task(Catch=[{"ErrorEquals": ["States.ALL"], "Next": "X"}])),
            "state 'T': Catch[0].Next 'X' is not a state",
        ),
        (_states(P={"Type": "Pass"}), "state 'P': needs Next naming the following state, or End: true"),
        (_states(P={"Type": "Pass", "End": True, "Next": "S"}, S=_END), "has both Next and End"),
        (_states(A=_END, Orphan=_END), "state 'Orphan': not reachable from StartAt 'A'"),
        ({**_states(S=_END), "QueryLanguage": "JSONata"}, "QueryLanguage 'JSONata' is not supported"),
        (_states(S={**_END, "QueryLanguage": "JSONata"}), "state 'S': QueryLanguage 'JSONata'"),
        (
            _states(P={"Type": "Pass", "Parameters": {"m.$": "States.Format('{}', $.a)"}, "End": True}),
            "intrinsic function",
        ),
        (_states(T=task(Resource="arn:aws:lambda:eu-west-1:1:function:f")), "is not a ${Name} definition"),
        (_states(T=task("Unbound")), "Resource '${Unbound}' has no callable in resources (bound: Work)"),
        (
            _states(T=task(Retry=[{"ErrorEquals": ["States.ALL", "TransientError"]}])),
            "Retry[0]: States.ALL must be alone",
        ),
        (
            _states(
                T=task(
                    Catch=[
                        {"ErrorEquals": ["States.ALL"], "Next": "S"},
                        {"ErrorEquals": ["TransientError"], "Next": "S"},
                    ]
                ),
                S=_END,
            ),
            "Catch[0]: States.ALL must be alone in ErrorEquals and in the last entry",
        ),
        (_states(T=task(Retry=[{"ErrorEquals": []}])), "Retry[0].ErrorEquals must be a non-empty list"),
        (_states(T=task(Retry=[{"ErrorEquals": ["E"], "MaxAttempts": -1}])), "Retry[0].MaxAttempts must be"),
        (
            _states(T=task(Retry=[{"ErrorEquals": ["E"], "MaxAttempts": True}])),
            "Retry[0].MaxAttempts must be",
        ),
        (_states(T=task(Retry=[{"ErrorEquals": ["E"], "BackoffRate": 0.5}])), "Retry[0].BackoffRate must be"),
        (_states(T=task(Retry=[{"ErrorEquals": ["E"], "IntervalSeconds": 0}])), "IntervalSeconds must be"),
        (_states(T=task(Retry=[{"ErrorEquals": ["E"], "JitterStrategy": "HALF"}])), "JitterStrategy must be"),
        (_states(T=task(Retry=[{"ErrorEquals": ["E"], "Tries": 3}])), "unknown field(s) 'Tries' in Retry[0]"),
        (_states(T=task(TimeoutSeconds=0)), "TimeoutSeconds must be an integer >= 1"),
        (_states(T=task(InputPath="$.items[*]")), "InputPath: path '$.items[*]' is not a supported"),
        (_states(T=task(ResultPath="$$.State")), "cannot read the context object"),
        (
            _states(
                C={"Type": "Choice", "Choices": [{"Variable": "$.s", "StringContains": "a", "Next": "S"}]},
                S=_END,
            ),
            "Choices[0].StringContains: unknown comparison operator 'StringContains'",
        ),
        (
            _states(
                C={"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": "3", "Next": "S"}]},
                S=_END,
            ),
            "'3' is not a valid operand for NumericEquals",
        ),
        (
            _states(C={"Type": "Choice", "Choices": [{"Variable": "$.n", "IsNull": "yes", "Next": "S"}]}, S=_END),
            "Choices[0].IsNull must be true or false",
        ),
        (
            _states(C={"Type": "Choice", "Choices": [{"Variable": "$.n", "IsNull": True}]}),
            "Choices[0] needs a Next",
        ),
        (
            _states(
                C={
                    "Type": "Choice",
                    "Choices": [{"Not": {"Variable": "$.n", "IsNull": True, "Next": "S"}, "Next": "S"}],
                },
                S=_END,
            ),
            "Choices[0].Not: a rule nested in And/Or/Not cannot have Next",
        ),
        (
            _states(C={"Type": "Choice", "Choices": [{"StringEquals": "a", "Next": "S"}]}, S=_END),
            "Choices[0] needs a Variable",
        ),
        (_states(C={"Type": "Choice", "Choices": []}), "Choices must be a non-empty list"),
        (
            _states(C={"Type": "Choice", "Choices": [{"And": [], "Next": "S"}]}, S=_END),
            "And must be a non-empty",
        ),
        (_states(F={"Type": "Fail", "Error": 5}), "Error and Cause must be strings"),
        (_states(F={"Type": "Fail", "InputPath": "$"}), "unknown field(s) 'InputPath' in a Fail state"),
        (_states(S={"Type": "Succeed", "Next": "S"}), "unknown field(s) 'Next' in a Succeed state"),
    ],
)
def test_definitions_the_interpreter_cannot_run_are_refused_at_load(definition: dict[str, Any], message: str) -> None:
    # GIVEN a definition with one thing wrong or unsupported
    work = ScriptedTask()
    # WHEN it is loaded
    with pytest.raises(WorkflowDefinitionError) as raised:
        StateMachine.from_definition(definition, resources={"Work": work})
    # THEN loading fails with a message naming the state and the problem, and nothing ran
    assert message in str(raised.value)
    assert work.inputs == []
