"""monitoring/alerts.yml is valid, points at RUNBOOK.md's headings, and the template's alarms equal it."""

from __future__ import annotations

import ast
import re
import shutil
from typing import TYPE_CHECKING, Any

import pytest

from tests.infra.conftest import ALERTS, ROOT, TEMPLATE
from tests.infra.test_template import entry_points, handler_of

if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType

# The headings of RUNBOOK.md, agreed with its author: every alert points at one, every one is used.
RUNBOOK_ANCHORS = {
    "ingest-5xx",
    "ingest-4xx",
    "lambda-errors",
    "lambda-throttles",
    "lambda-duration",
    "executions-failed",
    "executions-timed-out",
    "dlq-depth",
    "lake-freshness",
    "dynamodb-throttles",
    "rejection-ratio",
    "insights-freshness",
    "request-stream-delivery",
}


@pytest.fixture(scope="module")
def expanded(alarms: ModuleType, alerts_config: dict[str, Any]) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = alarms.expand(alerts_config)
    return alerts


def test_template_alarms_and_dashboard_are_generated_from_alerts_yml(alarms: ModuleType) -> None:
    # the same check as `python scripts/alarms.py --check`
    assert alarms.main(["--check"]) == 0


def test_check_fails_when_alerts_yml_changes(alarms: ModuleType, tmp_path: Path) -> None:
    # GIVEN a copy of alerts.yml whose threshold differs from the template's
    alerts = tmp_path / "alerts.yml"
    alerts.write_text(ALERTS.read_text().replace("threshold: 300000", "threshold: 600000"))
    template = tmp_path / "template.yaml"
    shutil.copy(TEMPLATE, template)
    # WHEN checked THEN it fails, and a rewrite makes it pass
    assert alarms.main(["--check", "--alerts", str(alerts), "--template", str(template)]) == 1
    assert alarms.main(["--alerts", str(alerts), "--template", str(template)]) == 0
    assert alarms.main(["--check", "--alerts", str(alerts), "--template", str(template)]) == 0
    assert "Threshold: 600000" in template.read_text()


def test_alerts_are_valid(alarms: ModuleType, alerts_config: dict[str, Any], expanded: list[dict[str, Any]]) -> None:
    assert alarms.problems(alerts_config, expanded) == []


def test_problems_are_found(alarms: ModuleType, alerts_config: dict[str, Any], expanded: list[dict[str, Any]]) -> None:
    broken = [dict(expanded[0], runbook="no-such-heading"), dict(expanded[1], name=expanded[0]["name"])]
    found = alarms.problems(alerts_config, broken)
    assert any("no-such-heading" in problem for problem in found)
    assert any("name used twice" in problem for problem in found)


def test_every_alert_points_at_a_runbook_heading_and_every_heading_is_used(
    alarms: ModuleType, expanded: list[dict[str, Any]]
) -> None:
    used = {alert["runbook"] for alert in expanded}
    assert used == RUNBOOK_ANCHORS
    assert set(RUNBOOK_ANCHORS) == set(alarms.RUNBOOK_ANCHORS)


def test_each_alert_is_one_alarm_of_the_template(
    alarms: ModuleType, expanded: list[dict[str, Any]], resources: dict[str, Any]
) -> None:
    in_template = {k: v for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert sorted(in_template) == sorted(alarms._logical_id(alert["name"]) for alert in expanded)
    for alert in expanded:
        properties = in_template[alarms._logical_id(alert["name"])]["Properties"]
        assert properties["AlarmName"] == {"Fn::Sub": "${AWS::StackName}-" + alert["name"]}
        assert properties["Threshold"] == alert["threshold"]
        assert properties["ComparisonOperator"] == alert["comparison"]
        assert f"RUNBOOK.md#{alert['runbook']}" in properties["AlarmDescription"]
        topic = {"critical": "CriticalAlarmTopic", "warning": "WarningAlarmTopic"}[alert["severity"]]
        assert properties["AlarmActions"] == [{"Ref": topic}]
    dashboards = [v for v in resources.values() if v["Type"] == "AWS::CloudWatch::Dashboard"]
    assert len(dashboards) == 1
    body = dashboards[0]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert all("${" + alarms._logical_id(alert["name"]) + ".Arn}" in body for alert in expanded)


def test_alert_resources_are_the_template_resources(alerts_config: dict[str, Any], resources: dict[str, Any]) -> None:
    for key, entry in alerts_config["resources"].items():
        intrinsic = entry["cloudformation"]
        logical_id = intrinsic["Ref"] if "Ref" in intrinsic else intrinsic["Fn::GetAtt"][0]
        assert logical_id in resources, key
        if resources[logical_id]["Type"] == "AWS::Serverless::Function":
            assert handler_of(resources[logical_id]["Properties"]) == key


def test_every_function_has_its_alarms_and_a_duration_threshold_at_80_percent_of_its_timeout(
    alerts_config: dict[str, Any], functions: dict[str, Any]
) -> None:
    listed = alerts_config["functions"]
    assert set(listed) == entry_points()
    for properties in functions.values():
        entry = listed[handler_of(properties)]
        assert entry["timeout_s"] == properties["Timeout"], handler_of(properties)
        assert entry["duration_alarm_ms"] == entry["timeout_s"] * 1000 * 80 // 100
    per_function = {a["runbook"] for a in alerts_config["alerts"] if a.get("for_each") == "functions"}
    assert per_function == {"lambda-errors", "lambda-throttles", "lambda-duration"}


def _emitted_metrics() -> dict[str, list[set[str]]]:
    """Metric name -> the extra dimensions of each emission, as the functions report them (`report.metric`).

    A name may be emitted twice: by a dimension (EventsRejected by reason) and as a total without it.
    """
    tree = ast.parse((ROOT / "src" / "eventpipe" / "handlers" / "functions.py").read_text(encoding="utf-8"))
    emitted: dict[str, list[set[str]]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        if name == "metric":
            dimensions = {keyword.arg for keyword in node.keywords if keyword.arg and keyword.arg != "unit"}
            emitted.setdefault(node.args[0].value, []).append(dimensions)
    return emitted


def test_our_metrics_are_ones_the_code_emits(alerts_config: dict[str, Any], expanded: list[dict[str, Any]]) -> None:
    emitted = _emitted_metrics()
    assert {"EventsReceived", "EventsRejected", "BatchLatency", "BatchesDone", "HttpResponses"} <= set(emitted)
    # a batch emits these and no more (each custom metric is $0.30 a month): no HttpRequests, EventsValid,
    # EventsRejected by reason or ColdStart, which API Gateway, the other counts or the logs already give
    assert not {"HttpRequests", "EventsValid", "ColdStart"} & set(emitted)
    assert emitted["EventsRejected"] == [set()]
    graphs = alerts_config["dashboard"]["widgets"]
    metrics = [m for a in expanded for m in [a.get("metric")] + [q.get("metric") for q in a.get("metrics", [])] if m]
    metrics += [m for graph in graphs for m in graph.get("metrics", [])]
    ours = [m for m in metrics if m["namespace"] == "eventpipe"]
    assert ours
    for metric in ours:
        assert metric["name"] in emitted, metric["name"]
        assert metric["dimensions"] == {"service": "eventpipe"}  # the service dimension Powertools adds
        assert set() in emitted[metric["name"]], f"{metric['name']} is only emitted with extra dimensions"
    # metrics emitted with extra dimensions are read across them with SEARCH in graphs (alarms read totals)
    queries = [q["expression"] for a in expanded for q in a.get("metrics", []) if "expression" in q]
    queries += [graph["search"] for graph in graphs if "search" in graph]
    for name, emissions in emitted.items():
        for dimensions in (d for d in emissions if d):
            for query in (q for q in queries if re.search(rf"\b{name}\b", q)):
                assert all(dimension in query for dimension in dimensions), (name, query)
