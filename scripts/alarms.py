"""Keep the CloudWatch alarms and dashboard of infrastructure/template.yaml equal to monitoring/alerts.yml.

monitoring/alerts.yml is the one source of the alarms; this writes them, and a dashboard with one graph
per alarm, between the GENERATED markers of the template's Resources.

    python scripts/alarms.py           rewrite the generated section
    python scripts/alarms.py --check   exit 1 and print a diff when the template is out of date

Needs only the standard library and PyYAML.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "monitoring" / "alerts.yml"
TEMPLATE = ROOT / "infrastructure" / "template.yaml"
BEGIN = "  # --- BEGIN GENERATED: alarms and dashboard from monitoring/alerts.yml (python scripts/alarms.py) ---"
END = "  # --- END GENERATED ---"

# The headings of RUNBOOK.md that an alert may point to.
RUNBOOK_ANCHORS = frozenset(
    {
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
)
TOPICS = {"critical": "CriticalAlarmTopic", "warning": "WarningAlarmTopic"}
# `level: detailed` alarms, and the dashboard, exist only under this condition of the template (its
# DetailedMonitoring parameter); `level: core` alarms always. CloudWatch bills an alarm per metric it
# reads and a dashboard per month whether or not traffic flows: the idle stack pays for the core set.
LEVELS = frozenset({"core", "detailed"})
DETAILED_CONDITION = "DetailedMonitoringEnabled"
COMPARISONS = frozenset(
    {
        "GreaterThanOrEqualToThreshold",
        "GreaterThanThreshold",
        "LessThanThreshold",
        "LessThanOrEqualToThreshold",
    }
)
STATISTICS = frozenset({"Sum", "Average", "Maximum", "Minimum", "SampleCount"})
PERCENTILE = re.compile(r"^p\d{1,2}(\.\d+)?$")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


class AlertsError(Exception):
    """alerts.yml does not describe valid alarms; the message lists every problem."""


def load(path: Path = ALERTS) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(config, dict) or not isinstance(config.get("alerts"), list):
        raise AlertsError(f"{path}: expected a mapping with an `alerts` list")
    return config


def expand(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The alerts with `for_each` unrolled: one alert per function, placeholders replaced."""
    alerts = []
    for alert in config["alerts"]:
        if "for_each" not in alert:
            alerts.append(alert)
            continue
        entries = config.get(alert["for_each"]) or {}
        template = {key: value for key, value in alert.items() if key != "for_each"}
        for name, values in entries.items():
            alerts.append(_substitute(template, {"function": name, **(values or {})}))
    return alerts


def _substitute(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {key: _substitute(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, variables) for item in value]
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in variables:
            return variables[whole.group(1)]  # a number stays a number
        return PLACEHOLDER.sub(lambda m: str(variables.get(m.group(1), m.group(0))), value)
    return value


def problems(config: dict[str, Any], alerts: list[dict[str, Any]]) -> list[str]:
    """Everything wrong with the expanded alerts (an empty list when they are fine)."""
    found = []
    resources = config.get("resources") or {}
    names = [str(alert.get("name")) for alert in alerts]
    found += [f"{name}: name used twice" for name in sorted({n for n in names if names.count(n) > 1})]
    for alert in alerts:
        name = alert.get("name", "?")
        for key in ("name", "level", "runbook", "severity", "description", "threshold", "comparison", "period"):
            if key not in alert:
                found.append(f"{name}: `{key}` missing")
        if "evaluation_periods" not in alert:
            found.append(f"{name}: `evaluation_periods` missing")
        if PLACEHOLDER.search(json.dumps(alert)):
            found.append(f"{name}: a placeholder is left unreplaced")
        if alert.get("runbook") not in RUNBOOK_ANCHORS:
            found.append(f"{name}: runbook anchor {alert.get('runbook')!r} is not a RUNBOOK.md heading")
        if "level" in alert and alert["level"] not in LEVELS:
            found.append(f"{name}: level must be one of {sorted(LEVELS)}")
        if alert.get("severity") not in TOPICS:
            found.append(f"{name}: severity must be one of {sorted(TOPICS)}")
        if alert.get("comparison") not in COMPARISONS:
            found.append(f"{name}: comparison {alert.get('comparison')!r} unknown")
        if not isinstance(alert.get("threshold"), int | float):
            found.append(f"{name}: threshold must be a number")
        if alert.get("datapoints_to_alarm", 0) > alert.get("evaluation_periods", 0):
            found.append(f"{name}: datapoints_to_alarm is more than evaluation_periods")
        if ("metric" in alert) == ("metrics" in alert):
            found.append(f"{name}: give exactly one of `metric` and `metrics`")
        queries = alert.get("metrics") or []
        if queries and "expression" not in queries[-1]:
            found.append(f"{name}: the last entry of `metrics` must be the expression alarmed on")
        for metric in [alert.get("metric")] + [q.get("metric") for q in queries]:
            if metric is None:
                continue
            if not (metric.get("statistic") in STATISTICS or PERCENTILE.match(str(metric.get("statistic")))):
                found.append(f"{name}: statistic {metric.get('statistic')!r} unknown")
            for dimension, value in (metric.get("dimensions") or {}).items():
                if isinstance(value, dict) and value.get("resource") not in resources:
                    found.append(f"{name}: dimension {dimension} names an unknown resource {value.get('resource')!r}")
    return found


# PutMetricAlarm's rules for the `Metrics` array (CloudWatch API reference, MetricDataQuery and
# "Alarms based on metric math"); cfn-lint checks none of them, and CloudFormation learns of a
# breach only when the alarm's CREATE fails and rolls the whole stack back.
MAX_METRIC_STATS = 10
MAX_EXPRESSIONS = 10
QUERY_ID = re.compile(r"^[a-z][A-Za-z0-9_]{0,254}$")
PERIOD_RULE = "10, 20, 30 or a multiple of 60"
ALARM_LOOKBACK_S = 86_400  # Period x EvaluationPeriods may not pass one day
SINGLE_METRIC_KEYS = ("Namespace", "MetricName", "Dimensions", "Period", "Statistic", "ExtendedStatistic", "Unit")


def _is_select(expression: str) -> bool:
    """A Metrics Insights query (rather than metric math)."""
    return expression.lstrip().upper().startswith("SELECT")


def _valid_period(period: Any) -> bool:
    return isinstance(period, int) and (period in (10, 20, 30) or (period > 0 and period % 60 == 0))


def put_metric_alarm_problems(properties: dict[str, Any]) -> list[str]:
    """What PutMetricAlarm would refuse in one alarm's properties (CloudFormation's shape), or [].

    At most one Metrics Insights query (SELECT), no SEARCH, at most 10 metrics and 10 expressions,
    exactly one query returned, every id valid and unique and every id an expression names defined,
    one period for every metric and query, Period x EvaluationPeriods within a day.
    """
    found: list[str] = []
    evaluation_periods = properties.get("EvaluationPeriods")
    if not isinstance(evaluation_periods, int) or evaluation_periods < 1:
        found.append("EvaluationPeriods must be a positive integer")
        evaluation_periods = 1
    if properties.get("DatapointsToAlarm", evaluation_periods) > evaluation_periods:
        found.append("DatapointsToAlarm is more than EvaluationPeriods")
    queries = properties.get("Metrics")
    if queries is None:
        missing = [key for key in ("Namespace", "MetricName", "Period") if key not in properties]
        found += [f"{key} missing" for key in missing]
        if ("Statistic" in properties) == ("ExtendedStatistic" in properties):
            found.append("give exactly one of Statistic and ExtendedStatistic")
        periods = [properties.get("Period")]
    else:
        found += [f"{key} may not stand beside Metrics" for key in SINGLE_METRIC_KEYS if key in properties]
        found += _metrics_problems(queries)
        periods = [q["MetricStat"].get("Period") for q in queries if "MetricStat" in q]
        periods += [q.get("Period") for q in queries if _is_select(str(q.get("Expression", "")))]
    if len(set(map(str, periods))) > 1:
        found.append(f"metrics and queries differ in period: {periods}")
    for period in periods:
        if not _valid_period(period):
            found.append(f"period {period!r} is not {PERIOD_RULE}")
        elif period * evaluation_periods > ALARM_LOOKBACK_S:
            found.append(f"Period x EvaluationPeriods is {period * evaluation_periods} s, more than a day")
    return found


def _metrics_problems(queries: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    ids = [str(query.get("Id")) for query in queries]
    found += [f"id {i!r} must start with a lowercase letter; letters, digits, _" for i in ids if not QUERY_ID.match(i)]
    found += [f"id {i!r} used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    stats = [query for query in queries if "MetricStat" in query]
    expressions = [str(query["Expression"]) for query in queries if "Expression" in query]
    if any(("MetricStat" in query) == ("Expression" in query) for query in queries):
        found.append("each query has exactly one of MetricStat and Expression")
    if len(stats) > MAX_METRIC_STATS:
        found.append(f"{len(stats)} metrics: at most {MAX_METRIC_STATS}")
    if len(expressions) > MAX_EXPRESSIONS:
        found.append(f"{len(expressions)} expressions: at most {MAX_EXPRESSIONS}")
    if sum(1 for query in queries if query.get("ReturnData", True)) != 1:
        found.append("exactly one query must have ReturnData true (the series alarmed on)")
    selects = [e for e in expressions if _is_select(e)]
    if len(selects) > 1:
        found.append(f"{len(selects)} Metrics Insights queries (SELECT): an alarm may hold one")
    if any(re.search(r"\bGROUP\s+BY\b", e, re.IGNORECASE) for e in selects):
        found.append("a SELECT with GROUP BY returns many series; the alarm watches one")
    if any(re.search(r"\bSEARCH\s*\(", e, re.IGNORECASE) for e in expressions):
        found.append("SEARCH() is not allowed in an alarm")
    for expression in (e for e in expressions if e not in selects):
        # ids an expression names: lowercase-initial words that are not functions (FILL, IF, ...)
        named = set(re.findall(r"\b([a-z][A-Za-z0-9_]*)\b(?!\s*\()", expression))
        found += [f"expression {expression!r} names an unknown id {n!r}" for n in sorted(named - set(ids))]
    return found


def _logical_id(name: str) -> str:
    return "Alarm" + "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name))


def _dimension_value(value: Any, resources: dict[str, Any]) -> Any:
    return resources[value["resource"]]["cloudformation"] if isinstance(value, dict) else value


def _metric_stat(metric: dict[str, Any], resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "Namespace": metric["namespace"],
        "MetricName": metric["name"],
        "Dimensions": [
            {"Name": key, "Value": _dimension_value(value, resources)}
            for key, value in (metric.get("dimensions") or {}).items()
        ],
    }


def alarm_resource(alert: dict[str, Any], resources: dict[str, Any]) -> dict[str, Any]:
    """The AWS::CloudWatch::Alarm of one expanded alert."""
    topic = {"Ref": TOPICS[alert["severity"]]}
    properties: dict[str, Any] = {
        "AlarmName": {"Fn::Sub": "${AWS::StackName}-" + alert["name"]},
        "AlarmDescription": f"{alert['severity']}: {alert['description']} Runbook: RUNBOOK.md#{alert['runbook']}",
        "ActionsEnabled": True,
        "AlarmActions": [topic],
        "OKActions": [topic],
        "ComparisonOperator": alert["comparison"],
        "Threshold": alert["threshold"],
        "EvaluationPeriods": alert["evaluation_periods"],
        "DatapointsToAlarm": alert.get("datapoints_to_alarm", alert["evaluation_periods"]),
        "TreatMissingData": alert.get("treat_missing_data", "notBreaching"),
    }
    if "metric" in alert:
        metric = alert["metric"]
        properties.update(_metric_stat(metric, resources))
        statistic_key = "Statistic" if metric["statistic"] in STATISTICS else "ExtendedStatistic"
        properties[statistic_key] = metric["statistic"]
        properties["Period"] = alert["period"]
    else:
        queries = []
        for number, query in enumerate(alert["metrics"]):
            last = number == len(alert["metrics"]) - 1
            entry: dict[str, Any] = {"Id": query["id"]}
            if "metric" in query:
                entry["MetricStat"] = {
                    "Metric": _metric_stat(query["metric"], resources),
                    "Period": alert["period"],
                    "Stat": query["metric"]["statistic"],
                }
            else:
                entry["Expression"] = query["expression"]
                if "label" in query:
                    entry["Label"] = query["label"]
                if "period" in query:  # a Metrics Insights query
                    entry["Period"] = query["period"]
            entry["ReturnData"] = last
            queries.append(entry)
        properties["Metrics"] = queries
    resource: dict[str, Any] = {"Type": "AWS::CloudWatch::Alarm", "Properties": properties}
    if alert["level"] == "detailed":
        resource = {"Type": resource["Type"], "Condition": DETAILED_CONDITION, "Properties": properties}
    return resource


def _sub_reference(intrinsic: Any) -> str:
    """`{"Ref": "X"}` -> `${X}`, `{"Fn::GetAtt": ["X", "A"]}` -> `${X.A}`, for the dashboard's Fn::Sub."""
    if isinstance(intrinsic, dict) and "Ref" in intrinsic:
        return "${" + str(intrinsic["Ref"]) + "}"
    if isinstance(intrinsic, dict) and "Fn::GetAtt" in intrinsic:
        return "${" + ".".join(intrinsic["Fn::GetAtt"]) + "}"
    return str(intrinsic).replace("${", "${!")


def _widget_metric(metric: dict[str, Any], resources: dict[str, Any]) -> list[Any]:
    row: list[Any] = [metric["namespace"], metric["name"]]
    for key, value in (metric.get("dimensions") or {}).items():
        row += [key, _sub_reference(_dimension_value(value, resources))]
    return [*row, {"stat": metric["statistic"]}]


def dashboard_resource(config: dict[str, Any], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """The CloudWatch dashboard: alarm states, the graphs of alerts.yml's `dashboard`, one graph per alarm."""
    resources = config.get("resources") or {}
    region = "${AWS::Region}"
    arns = ["${" + _logical_id(alert["name"]) + ".Arn}" for alert in alerts]
    widgets: list[dict[str, Any]] = [
        {
            "type": "text",
            "width": 24,
            "height": 2,
            "properties": {
                "markdown": "# eventpipe ${AWS::StackName}\nAlarms are generated from `monitoring/alerts.yml`; "
                "each alarm's description names its RUNBOOK.md section."
            },
        },
        {
            "type": "alarm",
            "width": 24,
            "height": 6,
            "properties": {"title": "Alarms", "alarms": arns, "sortBy": "stateUpdatedTimestamp"},
        },
    ]
    for graph in (config.get("dashboard") or {}).get("widgets", []):
        if "search" in graph:
            metrics: list[Any] = [[{"expression": graph["search"], "id": "e1", "period": 300}]]
        else:
            metrics = [_widget_metric(metric, resources) for metric in graph["metrics"]]
        properties = {"title": graph["title"], "view": "timeSeries", "stacked": False, "region": region}
        widgets.append({"type": "metric", "width": 12, "height": 6, "properties": {**properties, "metrics": metrics}})
    for alert, arn in zip(alerts, arns, strict=True):
        title = f"{alert['name']} ({alert['severity']}, runbook: {alert['runbook']})"
        properties = {"title": title, "annotations": {"alarms": [arn]}, "view": "timeSeries", "region": region}
        widgets.append({"type": "metric", "width": 8, "height": 6, "properties": properties})
    _place(widgets)
    rows = ",\n  ".join(json.dumps(widget) for widget in widgets)  # one widget a line
    body = f'{{"start": "-PT6H", "periodOverride": "inherit", "widgets": [\n  {rows}\n]}}'
    return {
        "Type": "AWS::CloudWatch::Dashboard",
        "Condition": DETAILED_CONDITION,  # $3 a month past an account's first three dashboards
        "Properties": {"DashboardName": {"Ref": "AWS::StackName"}, "DashboardBody": {"Fn::Sub": _Literal(body)}},
    }


def _place(widgets: list[dict[str, Any]]) -> None:
    """Give each widget its x and y, left to right, in rows of 24 units."""
    x = y = row_height = 0
    for widget in widgets:
        if x + widget["width"] > 24:
            x, y, row_height = 0, y + row_height, 0
        widget["x"], widget["y"] = x, y
        x += widget["width"]
        row_height = max(row_height, widget["height"])


class _Literal(str):
    """A string written as a YAML literal block, so that the dashboard's JSON stays readable."""


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]  # without types-PyYAML, SafeDumper is Any
    def ignore_aliases(self, data: Any) -> bool:
        return True  # CloudFormation does not accept YAML anchors and aliases


_Dumper.add_representer(_Literal, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, "|"))


def generated_section(config: dict[str, Any]) -> str:
    """The lines between the markers: every alarm, then the dashboard."""
    alerts = expand(config)
    errors = problems(config, alerts)
    if errors:
        raise AlertsError("monitoring/alerts.yml:\n  " + "\n  ".join(errors))
    resources = config.get("resources") or {}
    section = {_logical_id(alert["name"]): alarm_resource(alert, resources) for alert in alerts}
    refused = [
        f"{logical_id}: {problem}"
        for logical_id, alarm in section.items()
        for problem in put_metric_alarm_problems(alarm["Properties"])
    ]
    if refused:
        raise AlertsError("PutMetricAlarm would refuse:\n  " + "\n  ".join(refused))
    section["MonitoringDashboard"] = dashboard_resource(config, alerts)
    text = yaml.dump(section, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=1000)
    return "".join(f"  {line}\n" if line else "\n" for line in text.splitlines())


def updated_template(template_text: str, section: str) -> str:
    """The template with the text between the markers replaced by `section`."""
    lines = template_text.splitlines(keepends=True)
    try:
        begin = next(i for i, line in enumerate(lines) if line.rstrip("\n") == BEGIN)
        end = next(i for i, line in enumerate(lines) if line.rstrip("\n") == END and i > begin)
    except StopIteration:
        raise AlertsError(f"the template lacks the markers:\n{BEGIN}\n{END}") from None
    return "".join(lines[: begin + 1]) + section + "".join(lines[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail with a diff when the template is out of date")
    parser.add_argument("--alerts", type=Path, default=ALERTS)
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    args = parser.parse_args(argv)
    try:
        current = args.template.read_text(encoding="utf-8")
        expected = updated_template(current, generated_section(load(args.alerts)))
    except AlertsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if current == expected:
        print(f"{args.template.name}: alarms and dashboard match {args.alerts.name}")
        return 0
    if args.check:
        diff = difflib.unified_diff(
            current.splitlines(keepends=True), expected.splitlines(keepends=True), "template.yaml", "expected"
        )
        sys.stdout.writelines(diff)
        print(f"\n{args.template.name} is out of date: run `python scripts/alarms.py`", file=sys.stderr)
        return 1
    args.template.write_text(expected, encoding="utf-8")
    print(f"{args.template.name}: alarms and dashboard rewritten from {args.alerts.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
