"""docs/aws.md (and the runbook's deploy steps) against what they name: the SAM template's parameters and
outputs, the Terraform variables, the deploy script's options and the metrics the functions publish. No AWS
account is needed: each name is looked up in the repository."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.docs.repo_docs import DOCS, ROOT, prose, section
from tests.docs.test_settings_reference import documented_value, rows

TEMPLATE = ROOT / "infrastructure" / "template.yaml"
TERRAFORM = ROOT / "infrastructure" / "terraform"
DEPLOY = ROOT / "scripts" / "deploy_sam.sh"
AWS = DOCS / "aws.md"
DEPLOY_DOCS = (AWS, DOCS / "development.md", DOCS / "settings.md", DOCS / "lake.md", ROOT / "RUNBOOK.md")


class _CloudFormation(yaml.SafeLoader):
    """Reads the template with its short-form intrinsics (!Ref, !Sub, ...) as None: only names are needed."""


_CloudFormation.add_multi_constructor("!", lambda loader, tag, node: None)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CloudFormation)
    return loaded


def terraform_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(TERRAFORM.rglob("*.tf")))


def docs_text() -> str:
    return "\n".join(prose(path) for path in DEPLOY_DOCS) + "\n".join(
        path.read_text(encoding="utf-8") for path in DEPLOY_DOCS
    )


def settings_table() -> list[list[list[str]]]:
    """The rows of aws.md's table of SAM parameters, Terraform settings and variables, as backticked names."""
    table = section(AWS, "Settings on AWS")
    lines = [line for line in table.splitlines() if line.startswith("| `")]
    return [[re.findall(r"`([^`]+)`", cell) for cell in line.strip("|").split("|")] for line in lines]


def test_the_settings_table_is_read() -> None:
    assert len(settings_table()) >= 6


def test_every_sam_parameter_the_docs_name_exists(template: dict[str, Any]) -> None:
    text = docs_text()
    named = {name for row in settings_table() for name in row[0]}
    named |= set(re.findall(r"`([A-Z][a-z]\w*)=[^`]*`", text))  # `DetailedMonitoring=true`
    named |= set(re.findall(r"--parameter ([A-Z]\w*)=", text)) - {"Key"}  # --parameter ThrottlingRateLimit=500
    # `CuratedTtlDays` (7 days by default; Terraform `curated_ttl_days`): a parameter beside its Terraform twin
    for path in (AWS, ROOT / "RUNBOOK.md"):
        named |= set(re.findall(r"`([A-Z][a-z]\w+)`[^`\n]{0,60}Terraform", prose(path)))
    missing = sorted(named - set(template["Parameters"]))
    assert len(named) >= 10
    assert not missing, f"the docs name SAM parameters infrastructure/template.yaml does not have: {missing}"


def test_every_stack_output_the_docs_name_exists(template: dict[str, Any]) -> None:
    named = set(re.findall(r"(?:stack\s+)?outputs?\s+`([A-Z]\w*)`", docs_text()))
    assert {"AppsTableName", "AnalyticsBucketName"} <= named
    missing = sorted(named - set(template["Outputs"]))
    assert not missing, f"the docs name stack outputs the template does not have: {missing}"


def test_every_terraform_name_the_docs_name_exists() -> None:
    text, terraform = docs_text(), terraform_text()
    named = set(re.findall(r"Terraform:? `(?:settings\.)?([a-z_]+)", text))
    named |= {name for row in settings_table() for name in row[1] if name != "..."}
    assert len(named) >= 10
    missing = sorted(name for name in named if not re.search(rf'"{name}"|^\s*{name}\s*=', terraform, re.M))
    assert not missing, f"the docs name Terraform variables or settings that infrastructure/terraform lacks: {missing}"


def test_each_parameter_defaults_as_the_setting_it_sets(template: dict[str, Any]) -> None:
    """aws.md: the settings are stack parameters "with the same defaults" as settings.md."""
    text = TEMPLATE.read_text(encoding="utf-8")
    set_by = dict(re.findall(r"^\s+(EVENTPIPE_\w+): !Ref (\w+)$", text, re.M))
    documented = rows()
    compared = 0
    for variable, parameter in set_by.items():
        if variable in documented and parameter in template["Parameters"]:
            default = documented_value(documented[variable][0])
            assert str(template["Parameters"][parameter].get("Default")) == (default or ""), (variable, parameter)
            compared += 1
    assert compared >= 8


def test_every_deploy_option_the_docs_use_exists() -> None:
    usage = subprocess.run([str(DEPLOY), "--help"], capture_output=True, text=True, timeout=30, check=True).stdout
    used = set()
    for line in docs_text().replace("\\\n", " ").splitlines():
        if "deploy_sam.sh" in line:
            used |= set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", line.split("deploy_sam.sh", 1)[1]))
    assert {"--stage", "--jwt-issuer", "--dry-run"} <= used
    missing = sorted(option for option in used if option not in usage)
    assert not missing, f"the docs give scripts/deploy_sam.sh options it does not take: {missing}"


def test_every_metric_the_functions_publish_is_named_in_aws_md() -> None:
    published = set()
    for path in (ROOT / "src").rglob("*.py"):
        # report.metric("Name", ...) and report.metric("Name" if ... else "Other", ...)
        for first, other in re.findall(
            r'\.metric\(\s*"(\w+)"(?: if [^,]*? else "(\w+)")?', path.read_text(encoding="utf-8")
        ):
            published |= {first, other} - {""}
    assert {"EventsReceived", "BatchStartsSkipped"} <= published
    missing = sorted(name for name in published if f"`{name}`" not in AWS.read_text(encoding="utf-8"))
    assert not missing, f"docs/aws.md does not name the metrics: {missing}"


def test_the_runbooks_resource_lookups_name_what_the_stacks_have(template: dict[str, Any]) -> None:
    runbook = (ROOT / "RUNBOOK.md").read_text(encoding="utf-8")
    resources, outputs = set(template["Resources"]), set(template["Outputs"])
    assert not set(re.findall(r"\bres (\w+)\)", runbook)) - resources
    assert not set(re.findall(r"\bout (\w+)\)", runbook)) - outputs
    # `logs Name`: the function's log group, `<Name>LogGroup`; the helper's comment lists every function's
    listed = re.search(r"its log group \(([^)]*)\)", runbook)
    assert listed
    names = set(re.findall(r"\b[A-Z]\w+", listed.group(1).replace("#", "")))
    functions = {name.removesuffix("LogGroup") for name in resources if name.endswith("LogGroup")}
    assert names == functions - {"ApiAccess", "StateMachine"}
    assert not set(re.findall(r"\blogs (\w+)\)", runbook)) - names
    terraform_outputs = set(re.findall(r'^output "(\w+)"', terraform_text(), re.M))
    assert not set(re.findall(r"output -raw (\w+)", runbook)) - terraform_outputs


def parameters_table() -> list[list[str]]:
    """The rows of aws.md's "Stack parameters" table, as the text of each cell."""
    lines = [line for line in section(AWS, "Stack parameters").splitlines() if line.startswith("| ")][2:]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]


def named_in(text: str) -> set[str]:
    return set(re.findall(r"`([\w.]+)`", text))


def test_the_parameters_table_is_read() -> None:
    assert len(parameters_table()) >= 20
    assert all(len(row) == 4 for row in parameters_table())


def test_every_sam_parameter_is_in_the_reference(template: dict[str, Any]) -> None:
    named = named_in(section(AWS, "Stack parameters")) | {name for row in settings_table() for name in row[0]}
    missing = sorted(set(template["Parameters"]) - named)
    assert not missing, f"docs/aws.md (Stack parameters, Settings on AWS) does not name the SAM parameters: {missing}"


def test_every_terraform_variable_is_in_the_reference() -> None:
    from tests.infra.test_terraform import ENVIRONMENTS, MODULES, module

    named = named_in(section(AWS, "Stack parameters"))
    # monitoring's stack_name, resources and tags are wired by the stage's root, not chosen
    wiring = {"stack_name", "resources", "tags"}
    variables = set(module(MODULES / "pipeline").variables)
    variables |= set(module(MODULES / "monitoring").variables) - wiring
    for stage in ("dev", "prod"):
        variables |= set(module(ENVIRONMENTS / stage).variables)
    missing = sorted(variables - named)
    assert not missing, f"docs/aws.md (Stack parameters) does not name the Terraform variables: {missing}"


def test_each_parameters_documented_default_is_the_templates(template: dict[str, Any]) -> None:
    compared = 0
    for sam, _, default, _ in parameters_table():
        for name in named_in(sam):
            spec = template["Parameters"][name]
            expected = str(spec["Default"]) if "Default" in spec else "required"
            expected = expected or "none"  # an empty string: the parameter is off
            assert expected in re.findall(r"[\w.-]+", default), f"{name}: documented {default!r}, template {expected!r}"
            compared += 1
    assert compared >= 15


def test_each_terraform_only_default_is_the_modules() -> None:
    from tests.infra.test_terraform import MODULES, module

    variables = module(MODULES / "pipeline").variables
    compared = 0
    for sam, terraform, default, _ in parameters_table():
        names = named_in(terraform)
        if sam != "-" or len(names) != 1:
            continue
        value = variables[names.pop()].get("default")
        if isinstance(value, (bool, int, str)):
            assert f"`{str(value).lower() if isinstance(value, bool) else value}`" in default or str(value) == default
            compared += 1
    assert compared >= 6


def test_every_setting_is_set_by_the_stacks_or_named_local_only() -> None:
    """settings.md, "On AWS": a setting the functions read must be a stack parameter; one left out of the
    template is one no deployment can change (as EVENTPIPE_LAKE and EVENTPIPE_GEOIP_DB once were)."""
    text = TEMPLATE.read_text(encoding="utf-8")
    set_by_template = set(re.findall(r"^\s+(EVENTPIPE_\w+):", text, re.M))
    on_aws = section(DOCS / "settings.md", "On AWS")
    local_only = set(re.findall(r"`(EVENTPIPE_\w+)`", on_aws.split("The functions also read", 1)[0]))
    documented = set(rows())
    assert len(local_only) >= 10
    # THEN each documented setting is one or the other, never both
    assert documented - set_by_template - local_only == set()
    assert set_by_template & local_only == set()
    assert local_only <= documented
