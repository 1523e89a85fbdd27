"""The QuickSight dashboard: one definition (infrastructure/quicksight.yaml) for SAM and Terraform,
over the Athena tables of the insights export, showing what the issue asks and summing only what adds up.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra.conftest import ROOT, load_script

QUICKSIGHT = ROOT / "infrastructure" / "quicksight.yaml"
# The export's tables, as the nested template's parameters name them, and their SAM Glue resources.
TABLE_PARAMETERS = {"MinuteTable": "minute_counts", "HourTable": "hour_uniques", "DayTable": "day_uniques"}
NON_ADDITIVE = {"hour-uniques", "day-uniques"}  # sketch estimates per row: never summed over rows


@pytest.fixture(scope="module")
def dashboard_template() -> dict[str, Any]:
    loaded: dict[str, Any] = load_script("sam_translate").load_template(QUICKSIGHT)
    return loaded


@pytest.fixture(scope="module")
def definition(dashboard_template: dict[str, Any]) -> dict[str, Any]:
    (dashboard,) = [r for r in dashboard_template["Resources"].values() if r["Type"] == "AWS::QuickSight::Dashboard"]
    found: dict[str, Any] = dashboard["Properties"]["Definition"]
    return found


@pytest.fixture(scope="module")
def data_sets(dashboard_template: dict[str, Any], definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each data set's CustomSql, by the identifier the dashboard declares for it."""
    by_logical_id = {
        logical_id: next(iter(r["Properties"]["PhysicalTableMap"].values()))["CustomSql"]
        for logical_id, r in dashboard_template["Resources"].items()
        if r["Type"] == "AWS::QuickSight::DataSet"
    }
    return {
        d["Identifier"]: by_logical_id[d["DataSetArn"]["Fn::GetAtt"][0]]
        for d in definition["DataSetIdentifierDeclarations"]
    }


def visuals(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each visual's body, by its title."""
    found = {}
    for sheet in definition["Sheets"]:
        for visual in sheet["Visuals"]:
            (body,) = visual.values()
            found[body["Title"]["FormatText"]["PlainText"]] = body
    return found


def fields(body: dict[str, Any]) -> list[dict[str, Any]]:
    (wells,) = body["ChartConfiguration"]["FieldWells"].values()
    return [field for well in wells.values() for item in well for field in item.values()]


def test_sam_nests_the_one_definition_only_when_enabled(template: dict[str, Any], resources: dict[str, Any]) -> None:
    # GIVEN the SAM template: no QuickSight resource of its own, one nested stack of quicksight.yaml
    assert [k for k, r in resources.items() if r["Type"].startswith("AWS::QuickSight::")] == []
    (stack,) = [r for r in resources.values() if r["Type"] == "AWS::CloudFormation::Stack"]
    assert stack["Condition"] == "QuickSightEnabled"
    assert (ROOT / "infrastructure" / stack["Properties"]["TemplateURL"]).resolve() == QUICKSIGHT
    assert template["Parameters"]["EnableQuickSight"]["Default"] == "false"
    # THEN it passes every parameter the nested template declares without a default, and no other
    nested = load_script("sam_translate").load_template(QUICKSIGHT)["Parameters"]
    given = stack["Properties"]["Parameters"]
    assert set(given) <= set(nested)
    assert {name for name, spec in nested.items() if "Default" not in spec} <= set(given)
    # AND the tables are the export's Glue tables, by reference
    for parameter, table in TABLE_PARAMETERS.items():
        (logical_id,) = [
            k
            for k, r in resources.items()
            if r["Type"] == "AWS::Glue::Table" and r["Properties"]["TableInput"]["Name"] == table
        ]
        assert given[parameter] == {"Ref": logical_id}, parameter
    assert given["AthenaWorkGroup"] == {"Ref": "AthenaWorkGroup"}
    assert given["GlueDatabaseName"] == {"Ref": "InsightsDatabase"}


def test_the_dashboard_shows_what_the_issue_asks(definition: dict[str, Any], data_sets: dict[str, Any]) -> None:
    shown = visuals(definition)
    wanted = {
        "Curated events by type per hour": ("events-by-type", "HOUR"),
        "Unique users per day (HyperLogLog, within 2%; never summed)": ("day-uniques", "DAY"),
        "Revenue per hour (base currency)": ("hourly-totals", "HOUR"),
        "Funnel per hour: sessions at page_view, add_to_cart, purchase (never summed over hours)": (
            "hour-uniques",
            "HOUR",
        ),
        "Rejected events by reason": ("rejections", None),
    }
    for title, (data_set, granularity) in wanted.items():
        assert title in shown, title
        used = fields(shown[title])
        assert {field["Column"]["DataSetIdentifier"] for field in used} == {data_set}, title
        dates = [field for field in used if "DateGranularity" in field]
        assert [field["DateGranularity"] for field in dates] == ([granularity] if granularity else []), title
    # the events per type come from the per-type map of minute_counts, unnested
    assert "UNNEST(events)" in data_sets["events-by-type"]["SqlQuery"]["Fn::Sub"]
    assert "UNNEST(rejected)" in data_sets["rejections"]["SqlQuery"]["Fn::Sub"]


def test_only_additive_columns_are_summed(definition: dict[str, Any]) -> None:
    for title, body in visuals(definition).items():
        for field in fields(body):
            aggregation = field.get("AggregationFunction", {}).get("SimpleNumericalAggregation")
            if field["Column"]["DataSetIdentifier"] in NON_ADDITIVE and aggregation is not None:
                assert aggregation == "MAX", title  # one row per hour or day: MAX shows it, SUM would add sketches


def test_every_field_names_a_column_of_its_data_set(definition: dict[str, Any], data_sets: dict[str, Any]) -> None:
    for title, body in visuals(definition).items():
        for field in fields(body):
            column = field["Column"]
            declared = {c["Name"] for c in data_sets[column["DataSetIdentifier"]]["Columns"]}
            assert column["ColumnName"] in declared, (title, column)


def test_each_data_set_reads_columns_the_export_writes(resources: dict[str, Any], data_sets: dict[str, Any]) -> None:
    glue = {
        r["Properties"]["TableInput"]["Name"]: {
            c["Name"] for c in r["Properties"]["TableInput"]["StorageDescriptor"]["Columns"]
        }
        for r in resources.values()
        if r["Type"] == "AWS::Glue::Table"
    }
    for identifier, sql in data_sets.items():
        text = sql["SqlQuery"]["Fn::Sub"]
        (parameter,) = re.findall(r'"\$\{GlueDatabaseName\}"\."\$\{(\w+)\}"', text)
        columns = glue[TABLE_PARAMETERS[parameter]] | {"dt"}
        # every lower-case identifier of the query that is not SQL, a function or an alias is a column
        plain = re.sub(r"'[^']*'", "", re.sub(r"interval '\d+' day|AS timestamp", "", text))  # SQL, not columns
        words = set(re.findall(r"\b([a-z_][a-z0-9_]*)\b", plain))
        aliases = {c["Name"] for c in sql["Columns"]} | {"t", "n", "event_type", "reason"}
        functions = {"date_trunc", "from_iso8601_timestamp", "date_format", "current_date", "interval", "date_parse"}
        unknown = words - columns - aliases - functions
        assert unknown == set(), (identifier, unknown)
