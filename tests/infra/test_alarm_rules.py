"""Every generated alarm, SAM's and Terraform's, is one PutMetricAlarm accepts.

cfn-lint checks an alarm's shape, not CloudWatch's rules for its `Metrics`: two Metrics Insights
queries in one alarm pass every linter and fail only at CREATE, rolling the whole stack back.
`scripts/alarms.py` refuses to write such an alarm; these tests hold both renderings to the rules.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from tests.infra.conftest import ALERTS, ROOT, TEMPLATE

if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType

MONITORING = ROOT / "infrastructure" / "terraform" / "modules" / "monitoring"
STATISTICS = {"Sum", "Average", "Maximum", "Minimum", "SampleCount"}
TERRAFORM_VARIABLES = (("resources", "map(string)"), ("detailed_monitoring", "bool"))


def _stat(metric_id: str, name: str = "EventsReceived", period: int = 300) -> dict[str, Any]:
    metric = {"Namespace": "eventpipe", "MetricName": name, "Dimensions": [{"Name": "service", "Value": "eventpipe"}]}
    return {"Id": metric_id, "MetricStat": {"Metric": metric, "Period": period, "Stat": "Sum"}, "ReturnData": False}


def _alarm(*queries: dict[str, Any]) -> dict[str, Any]:
    return {"EvaluationPeriods": 3, "DatapointsToAlarm": 3, "Metrics": list(queries)}


def _expression(query_id: str, expression: str, *, returned: bool = False, **extra: Any) -> dict[str, Any]:
    return {"Id": query_id, "Expression": expression, "ReturnData": returned, **extra}


# --- the rules themselves -----------------------------------------------------------------------------


def test_a_plain_ratio_alarm_passes(alarms: ModuleType) -> None:
    ratio = _expression("ratio", "100 * FILL(b, 0) / a", returned=True)
    alarm = _alarm(_stat("a"), _stat("b", "EventsRejected"), ratio)
    assert alarms.put_metric_alarm_problems(alarm) == []


def test_one_select_alone_passes(alarms: ModuleType) -> None:
    query = 'SELECT SUM(EventsRejected) FROM SCHEMA("eventpipe", reason, service)'
    assert alarms.put_metric_alarm_problems(_alarm(_expression("q", query, returned=True, Period=300))) == []


@pytest.mark.parametrize(
    ("alarm", "problem"),
    [
        pytest.param(
            _alarm(
                _expression("a", 'SELECT SUM(EventsRejected) FROM SCHEMA("eventpipe", reason, service)', Period=300),
                _expression("b", 'SELECT SUM(EventsReceived) FROM SCHEMA("eventpipe", service)', Period=300),
                _expression("ratio", "100 * a / b", returned=True),
            ),
            "Metrics Insights queries",
            id="two-selects",
        ),
        pytest.param(
            _alarm(*[_stat(f"m{i}") for i in range(11)], _expression("total", "m0 + m1", returned=True)),
            "11 metrics",
            id="eleven-metrics",
        ),
        pytest.param(
            _alarm(_stat("a"), _expression("x", "a * 2", returned=True), _expression("y", "a * 3", returned=True)),
            "exactly one query must have ReturnData true",
            id="two-returned",
        ),
        pytest.param(
            _alarm(_stat("a"), _stat("b")),
            "exactly one query must have ReturnData true",
            id="none-returned",
        ),
        pytest.param(
            _alarm(_stat("a", period=300), _stat("b", period=60), _expression("s", "a + b", returned=True)),
            "differ in period",
            id="unequal-periods",
        ),
        pytest.param(
            _alarm(_stat("a", period=90), _expression("s", "a", returned=True)),
            "is not 10, 20, 30 or a multiple of 60",
            id="bad-period",
        ),
        pytest.param(
            _alarm(_stat("Errors"), _expression("s", "Errors * 1", returned=True)),
            "must start with a lowercase letter",
            id="uppercase-id",
        ),
        pytest.param(
            _alarm(_stat("a"), _stat("a"), _expression("s", "a", returned=True)),
            "used twice",
            id="duplicate-id",
        ),
        pytest.param(
            _alarm(_stat("a"), _expression("s", "a / b", returned=True)),
            "unknown id 'b'",
            id="unknown-id",
        ),
        pytest.param(
            _alarm(_expression("s", "SUM(SEARCH('{eventpipe,reason} MetricName=\"X\"', 'Sum', 300))", returned=True)),
            "SEARCH() is not allowed",
            id="search",
        ),
        pytest.param(
            _alarm(_expression("q", "SELECT SUM(X) FROM eventpipe GROUP BY reason", returned=True, Period=300)),
            "GROUP BY",
            id="select-group-by",
        ),
        pytest.param(
            {**_alarm(_stat("a"), _expression("s", "a", returned=True)), "MetricName": "X"},
            "MetricName may not stand beside Metrics",
            id="single-metric-keys-beside-metrics",
        ),
        pytest.param(
            {"EvaluationPeriods": 2, "Namespace": "n", "MetricName": "m", "Period": 300},
            "exactly one of Statistic and ExtendedStatistic",
            id="no-statistic",
        ),
        pytest.param(
            {"EvaluationPeriods": 300, "Namespace": "n", "MetricName": "m", "Period": 300, "Statistic": "Sum"},
            "more than a day",
            id="over-a-day",
        ),
        pytest.param(
            {**_alarm(_stat("a"), _expression("s", "a", returned=True)), "DatapointsToAlarm": 4},
            "DatapointsToAlarm is more than EvaluationPeriods",
            id="datapoints",
        ),
    ],
)
def test_each_rule_is_enforced(alarms: ModuleType, alarm: dict[str, Any], problem: str) -> None:
    found = alarms.put_metric_alarm_problems(alarm)
    assert any(problem in text for text in found), found


def test_the_renderer_refuses_an_alarm_cloudwatch_would_refuse(alarms: ModuleType, tmp_path: Path) -> None:
    # GIVEN an alerts.yml whose rejection-ratio alarm holds two Metrics Insights queries again
    text = ALERTS.read_text(encoding="utf-8")
    begin, end = text.index("- name: rejection-ratio"), text.index("- name: insights-freshness")
    alert = text[begin:end]
    for name, dimensions in (("EventsRejected", "reason, service"), ("EventsReceived", "service")):
        plain = f"metric: {{namespace: eventpipe, name: {name}, dimensions: {{service: eventpipe}}, statistic: Sum}}"
        query = f'expression: SELECT SUM({name}) FROM SCHEMA("eventpipe", {dimensions})\n        period: 300'
        alert = alert.replace(plain, query)
    broken = text[:begin] + alert + text[end:]
    assert broken.count("expression: SELECT") == 2
    alerts = tmp_path / "alerts.yml"
    alerts.write_text(broken, encoding="utf-8")
    template = tmp_path / "template.yaml"
    shutil.copy(TEMPLATE, template)
    # WHEN the template is rewritten THEN the script refuses, and the template is left as it was
    assert alarms.main(["--alerts", str(alerts), "--template", str(template)]) == 2
    assert template.read_text(encoding="utf-8") == TEMPLATE.read_text(encoding="utf-8")


# --- every alarm the repository deploys ---------------------------------------------------------------


def test_every_sam_alarm_is_accepted_by_put_metric_alarm(alarms: ModuleType, resources: dict[str, Any]) -> None:
    found = {
        logical_id: alarms.put_metric_alarm_problems(resource["Properties"])
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert found
    assert {logical_id: problems for logical_id, problems in found.items() if problems} == {}


def _terraform_alarms(
    alerts_config: dict[str, Any], tmp_path: Path, *, detailed: bool = True
) -> dict[str, dict[str, Any]]:
    """`local.alarms` of modules/monitoring, evaluated by Terraform itself (`terraform console`).

    The module's first `locals` block (the alarms; the second builds the dashboard from resources) is
    copied into a root module laid out like the repository, so that its path to alerts.yml resolves.
    """
    text = (MONITORING / "main.tf").read_text(encoding="utf-8")
    start = text.index("\nlocals {") + 1
    end = text.index("\n}\n", start) + 3
    module = tmp_path / "infrastructure" / "terraform" / "modules" / "monitoring"
    module.mkdir(parents=True)
    (tmp_path / "monitoring").mkdir()
    shutil.copy(ALERTS, tmp_path / "monitoring" / "alerts.yml")
    variables = "".join(f'variable "{name}" {{\n  type = {kind}\n}}\n\n' for name, kind in TERRAFORM_VARIABLES)
    (module / "main.tf").write_text(variables + text[start:end], encoding="utf-8")
    resources = {key: f"test-{key}" for key in alerts_config["resources"]}
    flags = ["-var", f"resources={json.dumps(resources)}", "-var", f"detailed_monitoring={str(detailed).lower()}"]
    completed = subprocess.run(
        ["terraform", "console", *flags],
        input="jsonencode(local.alarms)\n",
        cwd=module,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "TF_IN_AUTOMATION": "1", "HOME": str(tmp_path)},
    )
    assert completed.returncode == 0, completed.stderr
    evaluated: dict[str, dict[str, Any]] = json.loads(json.loads(completed.stdout.strip()))
    return evaluated


def _as_put_metric_alarm(alarm: dict[str, Any]) -> dict[str, Any]:
    """aws_cloudwatch_metric_alarm.this of modules/monitoring, for one entry of local.alarms, in the API's shape."""
    properties: dict[str, Any] = {
        "EvaluationPeriods": alarm["evaluation_periods"],
        "DatapointsToAlarm": alarm["datapoints_to_alarm"],
    }

    def metric_of(metric: dict[str, Any]) -> dict[str, Any]:
        dimensions = [{"Name": key, "Value": value} for key, value in metric["dimensions"].items()]
        return {"Namespace": metric["namespace"], "MetricName": metric["name"], "Dimensions": dimensions}

    if alarm["metric"] is not None:
        metric = alarm["metric"]
        properties.update(metric_of(metric), Period=alarm["period"])
        properties["Statistic" if metric["statistic"] in STATISTICS else "ExtendedStatistic"] = metric["statistic"]
        return properties
    queries = []
    for query in alarm["queries"]:
        entry: dict[str, Any] = {"Id": query["id"], "ReturnData": query["return_data"]}
        if query["metric"] is not None:
            metric = query["metric"]
            entry["MetricStat"] = {"Metric": metric_of(metric), "Period": alarm["period"], "Stat": metric["statistic"]}
        if query["expression"] is not None:
            entry["Expression"] = query["expression"]
        if query["period"] is not None:
            entry["Period"] = query["period"]
        queries.append(entry)
    properties["Metrics"] = queries
    return properties


@pytest.mark.skipif(shutil.which("terraform") is None, reason="needs the terraform binary (no provider download)")
def test_every_terraform_alarm_is_accepted_by_put_metric_alarm(
    alarms: ModuleType, alerts_config: dict[str, Any], tmp_path: Path
) -> None:
    evaluated = _terraform_alarms(alerts_config, tmp_path)
    # the module makes one alarm per alert of alerts.yml, as the SAM template does
    assert sorted(evaluated) == sorted(alert["name"] for alert in alarms.expand(alerts_config))
    found = {name: alarms.put_metric_alarm_problems(_as_put_metric_alarm(alarm)) for name, alarm in evaluated.items()}
    assert {name: problems for name, problems in found.items() if problems} == {}
    # and the rejection ratio reads two plain metrics there too
    ratio = evaluated["rejection-ratio"]["queries"]
    assert [query["metric"]["name"] for query in ratio if query["metric"]] == ["EventsRejected", "EventsReceived"]


@pytest.mark.skipif(shutil.which("terraform") is None, reason="needs the terraform binary (no provider download)")
def test_without_detailed_monitoring_terraform_makes_the_core_alarms_only(
    alarms: ModuleType, alerts_config: dict[str, Any], tmp_path: Path
) -> None:
    # GIVEN the module's default, detailed_monitoring = false
    evaluated = _terraform_alarms(alerts_config, tmp_path, detailed=False)
    # THEN its alarms are the `level: core` alerts, as SAM's unconditional alarms are
    core = sorted(alert["name"] for alert in alarms.expand(alerts_config) if alert["level"] == "core")
    assert (
        sorted(evaluated)
        == core
        == [
            "dlq-depth",
            "executions-failed",
            "executions-timed-out",
            "ingest-5xx",
            "lake-freshness",
            "request-stream-delivery",
        ]
    )
