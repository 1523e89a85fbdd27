"""The Terraform of infrastructure/terraform: every file parses, and the modules hang together.

No Terraform binary runs here, so these tests do part of `terraform validate` by reading the HCL
with python-hcl2: every reference names something declared, every module call passes the variables
its module declares, the provider is pinned, the environments are alike. test_terraform_parity.py
compares the Terraform with the SAM template and the code; `TerraformModule` serves both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "infrastructure" / "terraform"
MODULES = TERRAFORM / "modules"
ENVIRONMENTS = TERRAFORM / "environments"
STAGES = ("dev", "prod")
AWS_PROVIDER = {"source": "hashicorp/aws", "version": "~> 6.0"}

# Arguments of a module block that are not the module's variables.
META_ARGUMENTS = frozenset({"source", "for_each", "count", "depends_on", "providers", "version"})


def load_hcl(path: Path) -> dict[str, Any]:
    """One HCL file as plain data: strings without their quotes, no comments, blocks as lists.

    Needs python-hcl2 8 or later (7 has no serialization options).
    """
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    return dict(hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=options))


def expression_strings(value: Any) -> list[str]:
    """Every string in a parsed value (expressions are strings such as "${var.x}")."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [key, *expression_strings(item)]]
    if isinstance(value, list):
        return [s for item in value for s in expression_strings(item)]
    return []


@dataclass
class TerraformModule:
    """The blocks of all .tf files of one directory (a module or a root module)."""

    path: Path
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)
    parsed: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> TerraformModule:
        module = cls(path)
        for file in sorted(path.glob("*.tf")):
            document = load_hcl(file)
            module.parsed.append(document)
            for block in document.get("variable", []):
                module.variables.update(block)
            for block in document.get("output", []):
                module.outputs.update(block)
            for block in document.get("locals", []):
                module.locals.update(block)
            for block in document.get("module", []):
                module.modules.update(block)
            for block in document.get("provider", []):
                module.providers.update(block)
            module.terraform += document.get("terraform", [])
            for kind, target in (("resource", module.resources), ("data", module.data)):
                for block in document.get(kind, []):
                    for type_name, named in block.items():
                        for name, body in named.items():
                            target[(type_name, name)] = body
        return module

    def resolve(self, expression: str) -> Path:
        """A path expression such as "${path.module}/../x.json", as a file of this machine."""
        return (self.path / expression.replace("${path.module}", ".")).resolve()

    def resource(self, type_name: str, name: str) -> dict[str, Any]:
        return self.resources[(type_name, name)]

    def strings(self) -> list[str]:
        return [s for document in self.parsed for s in expression_strings(document)]


@cache
def module(path: Path) -> TerraformModule:
    return TerraformModule.load(path)


def module_dirs() -> list[Path]:
    """Every directory that holds .tf files: modules, nested modules and root modules."""
    return sorted({file.parent for file in TERRAFORM.rglob("*.tf") if ".terraform" not in file.parts})


def blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The nested blocks `name` of a block body (python-hcl2 gives a list, or one dict)."""
    found = body.get(name, [])
    return found if isinstance(found, list) else [found]


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- Every file parses ----------------------------------------------------------------------------

HCL_FILES = sorted(
    file
    for pattern in ("*.tf", "*.tfvars.example", "*.hcl.example")
    for file in TERRAFORM.rglob(pattern)
    if ".terraform" not in file.parts
)


def test_the_terraform_is_there() -> None:
    # GIVEN the layout of infrastructure/terraform
    # THEN its modules and environments exist, so that the parametrized tests below are not empty
    assert {d.name for d in MODULES.iterdir() if d.is_dir()} >= {"pipeline", "monitoring", "deploy-role"}
    assert {d.name for d in ENVIRONMENTS.iterdir() if d.is_dir()} >= {*STAGES, "bootstrap"}
    assert len([f for f in HCL_FILES if f.suffix == ".tf"]) >= 20


@pytest.mark.parametrize("path", HCL_FILES, ids=[relative(f) for f in HCL_FILES])
def test_every_file_parses(path: Path) -> None:
    # WHEN python-hcl2 reads the file THEN it is valid HCL (a syntax error raises)
    assert isinstance(load_hcl(path), dict)


def test_checkov_skips_give_a_reason() -> None:
    # GIVEN every inline Checkov suppression
    skips = [
        (relative(file), line.strip())
        for file in TERRAFORM.rglob("*.tf")
        for line in file.read_text(encoding="utf-8").splitlines()
        if "checkov:skip" in line
    ]
    # THEN each names one check and says why, on its line
    assert skips
    malformed = [s for s in skips if not re.fullmatch(r"#checkov:skip=CKV2?_AWS_\d+:\S.{15,}", s[1])]
    assert malformed == []


# --- Each module hangs together ---------------------------------------------------------------------

REFERENCE = {
    "var": re.compile(r"(?<![\w.])var\.([A-Za-z_][\w-]*)"),
    "local": re.compile(r"(?<![\w.])local\.([A-Za-z_][\w-]*)"),
    "module": re.compile(r"(?<![\w.])module\.([A-Za-z_][\w-]*)"),
    "data": re.compile(r"(?<![\w.])data\.([a-z][a-z0-9_]*)\.([A-Za-z_][\w-]*)"),
    "resource": re.compile(r"(?<![\w.])(aws_[a-z0-9_]+)\.([A-Za-z_][\w-]*)"),
}


@pytest.mark.parametrize("path", module_dirs(), ids=[relative(d) for d in module_dirs()])
def test_every_reference_is_declared(path: Path) -> None:
    # GIVEN the expressions of one module
    tf = module(path)
    expressions = "\n".join(s for s in tf.strings() if "${" in s or "." in s)
    # WHEN the references in them are collected
    found = {kind: set(pattern.findall(expressions)) for kind, pattern in REFERENCE.items()}
    # THEN each names a variable, local, module, data source or resource of the module
    assert found["var"] - set(tf.variables) == set()
    assert found["local"] - set(tf.locals) == set()
    assert found["module"] - set(tf.modules) == set()
    assert found["data"] - set(tf.data) == set()
    assert found["resource"] - set(tf.resources) == set()


@pytest.mark.parametrize("path", module_dirs(), ids=[relative(d) for d in module_dirs()])
def test_every_variable_and_local_is_used(path: Path) -> None:
    tf = module(path)
    expressions = "\n".join(tf.strings())
    # THEN nothing is declared that no expression reads (a setting that would silently do nothing)
    assert set(tf.variables) - set(REFERENCE["var"].findall(expressions)) == set()
    assert set(tf.locals) - set(REFERENCE["local"].findall(expressions)) == set()


@pytest.mark.parametrize("path", module_dirs(), ids=[relative(d) for d in module_dirs()])
def test_module_calls_pass_the_declared_variables(path: Path) -> None:
    # GIVEN each module block of a directory
    for name, call in module(path).modules.items():
        callee = module((path / call["source"]).resolve())
        arguments = set(call) - META_ARGUMENTS
        required = {v for v, spec in callee.variables.items() if "default" not in spec}
        # THEN it passes only variables the module declares, and all that have no default
        assert arguments - set(callee.variables) == set(), f"module {name} passes undeclared variables"
        assert required - arguments == set(), f"module {name} misses required variables"


@pytest.mark.parametrize("path", module_dirs(), ids=[relative(d) for d in module_dirs()])
def test_variables_and_outputs_are_described(path: Path) -> None:
    tf = module(path)
    # THEN every variable has a type and a description, every output a description
    assert [v for v, spec in tf.variables.items() if not spec.get("description") or "type" not in spec] == []
    assert [o for o, spec in tf.outputs.items() if not spec.get("description")] == []


@pytest.mark.parametrize("path", module_dirs(), ids=[relative(d) for d in module_dirs()])
def test_the_aws_provider_is_pinned(path: Path) -> None:
    # GIVEN the terraform block of each module (versions.tf)
    settings = module(path).terraform
    assert len(settings) == 1, "one terraform block, in versions.tf"
    # THEN it pins Terraform and the AWS provider, the same everywhere
    assert settings[0]["required_version"] == ">= 1.9.0, < 2.0.0"
    (providers,) = blocks(settings[0], "required_providers")
    assert providers["aws"] == AWS_PROVIDER


def test_module_variables_validate_their_values() -> None:
    # GIVEN the variables of the modules that an environment sets
    for name in ("pipeline", "monitoring", "deploy-role"):
        tf = module(MODULES / name)
        # THEN those that take free text or numbers check them (booleans, maps and tags need not)
        unchecked = [
            variable
            for variable, spec in tf.variables.items()
            if "validation" not in spec and spec["type"] not in ("bool", "${map(string)}") and variable != "resources"
        ]
        assert unchecked == [], f"modules/{name}"


def test_reserved_concurrency_takes_every_function_s_name() -> None:
    # GIVEN the names reserved_concurrency's validation accepts
    spec = module(MODULES / "pipeline").variables["reserved_concurrency"]
    condition = blocks(spec, "validation")[0]["condition"]
    accepted = set(re.findall(r'"(\w+)"', re.search(r"contains\(\[([^\]]*)\]", condition).group(1)))
    # THEN they are the module's functions, every one of them
    assert accepted == set(module(MODULES / "pipeline").locals["functions"])


def test_function_settings_refuses_every_name_the_module_sets() -> None:
    # GIVEN the EVENTPIPE_* names the module sets in the functions' environment
    pipeline = module(MODULES / "pipeline")
    text = "\n".join(
        path.read_text(encoding="utf-8") for path in (MODULES / "pipeline").glob("*.tf") if path.name != "variables.tf"
    )
    set_by_module = set(re.findall(r"\b(EVENTPIPE_\w+)\s*=(?!=)", text))
    assert {"EVENTPIPE_BUCKET", "EVENTPIPE_REQUEST_STREAM", "EVENTPIPE_MAX_BODY_BYTES"} <= set_by_module
    # THEN function_settings refuses each, so that a stage cannot set one beside (or under) the module
    condition = blocks(pipeline.variables["function_settings"], "validation")[0]["condition"]
    refused = set(re.findall(r'"(EVENTPIPE_\w+)"', condition))
    assert set_by_module - refused == set()


# --- Environments ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", [*STAGES, "bootstrap"])
def test_environment_assumes_a_role_in_its_account_and_keeps_state_in_s3(stage: str) -> None:
    tf = module(ENVIRONMENTS / stage)
    # THEN the provider assumes the account's role, and refuses any other account
    provider = tf.providers["aws"]
    (assume_role,) = blocks(provider, "assume_role")
    assert assume_role["role_arn"] in ("${var.deploy_role_arn}", "${var.admin_role_arn}")
    assert provider["allowed_account_ids"] == ["${var.account_id}"]
    # AND the state is in the S3 backend, configured from a backend file (partial configuration)
    (backend,) = blocks(tf.terraform[0], "backend")
    assert backend == {"s3": {}}
    examples = sorted((ENVIRONMENTS / stage).glob("*backend.hcl.example"))
    assert examples
    for example in examples:
        settings = load_hcl(example)
        assert set(settings) == {"bucket", "key", "region", "dynamodb_table", "encrypt"}
        assert settings["encrypt"] is True


@pytest.mark.parametrize("stage", [*STAGES, "bootstrap"])
def test_tfvars_examples_set_every_required_variable(stage: str) -> None:
    tf = module(ENVIRONMENTS / stage)
    required = {v for v, spec in tf.variables.items() if "default" not in spec}
    examples = sorted((ENVIRONMENTS / stage).glob("*tfvars.example"))
    assert examples
    for example in examples:
        values = load_hcl(example)
        # THEN an example sets what has no default, and nothing undeclared
        assert required - set(values) == set(), relative(example)
        assert set(values) - set(tf.variables) == set(), relative(example)


def test_dev_and_prod_differ_only_in_their_values() -> None:
    dev, prod = (module(ENVIRONMENTS / stage) for stage in STAGES)
    # THEN both declare the same variables and outputs, and call the same modules with the same arguments
    assert dev.variables == prod.variables
    assert dev.outputs == prod.outputs
    assert {n: set(c) for n, c in dev.modules.items()} == {n: set(c) for n, c in prod.modules.items()}
    assert dev.modules["pipeline"]["stage"] == "dev"
    assert prod.modules["pipeline"]["stage"] == "prod"
    # AND production protects its tables and buckets
    assert dev.modules["pipeline"]["deletion_protection"] is False
    assert prod.modules["pipeline"]["deletion_protection"] is True


# Each output of the SAM stack and the stage's output that gives the same (docs/aws.md, Stack outputs).
SAM_OUTPUTS = {
    "ApiUrl": "api_url",
    "RawBucketName": "raw_bucket_name",
    "AnalyticsBucketName": "analytics_bucket_name",
    "StateMachineArn": "state_machine_arn",
    "IngestFunctionName": "function_names",
    "ReplayFunctionName": "function_names",
    "AppsTableName": "table_names",
    "DeadLetterQueueUrl": "dead_letter_queue_url",
    "AthenaWorkGroupName": "athena_workgroup_name",
    "DashboardUrl": "dashboard_name",
}


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_outputs_what_the_sam_stack_does(stage: str) -> None:
    template = (ROOT / "infrastructure" / "template.yaml").read_text(encoding="utf-8")
    outputs = template[template.index("\nOutputs:") :]
    assert set(re.findall(r"^  (\w+):$", outputs, re.M)) == set(SAM_OUTPUTS)
    missing = sorted(set(SAM_OUTPUTS.values()) - set(module(ENVIRONMENTS / stage).outputs))
    assert not missing, f"environments/{stage} lacks the outputs {missing}"


@pytest.mark.parametrize("stage", STAGES)
def test_stage_passes_on_every_pipeline_variable_with_the_modules_default(stage: str) -> None:
    tf = module(ENVIRONMENTS / stage)
    call, pipeline = tf.modules["pipeline"], module(MODULES / "pipeline")
    # THEN a stage can set every variable of the module (a SAM parameter's twin left out could only be
    # changed by editing the stage), but project (the deployment role's prefix) and tags (default_tags)
    assert set(pipeline.variables) - set(call) == {"project", "tags"}
    # AND each it takes as a variable of its own has the module's default, so that unset means the same
    passed = {name for name, value in call.items() if value == f"${{var.{name}}}"}
    assert len(passed) >= 20
    for name in passed:
        assert tf.variables[name].get("default") == pipeline.variables[name].get("default"), name
        assert tf.variables[name]["type"] == pipeline.variables[name]["type"] or tf.variables[name]["type"] == "any"


@pytest.mark.parametrize("stage", STAGES)
def test_stage_wires_the_monitoring_to_the_pipeline(stage: str) -> None:
    monitoring = module(ENVIRONMENTS / stage).modules["monitoring"]
    # THEN the alarms are named after the stack and their dimensions come from the pipeline
    assert monitoring["stack_name"] == "${module.pipeline.name}"
    assert monitoring["resources"] == "${module.pipeline.monitored_resources}"


def test_bootstrap_creates_the_deployment_role() -> None:
    calls = module(ENVIRONMENTS / "bootstrap").modules
    assert {call["source"] for call in calls.values()} == {"../../modules/deploy-role"}


# --- The deployment role -----------------------------------------------------------------------------


def deploy_statements() -> list[dict[str, Any]]:
    return blocks(module(MODULES / "deploy-role").data[("aws_iam_policy_document", "deploy")], "statement")


def test_deploy_role_trusts_only_the_given_roles() -> None:
    trust = module(MODULES / "deploy-role").data[("aws_iam_policy_document", "trust")]
    (statement,) = blocks(trust, "statement")
    (principals,) = blocks(statement, "principals")
    assert principals == {"type": "AWS", "identifiers": "${var.trusted_principal_arns}"}
    assert statement["actions"] == ["sts:AssumeRole"]


def test_deploy_role_has_no_blanket_permissions() -> None:
    allowed = [s for s in deploy_statements() if s.get("effect", "Allow") == "Allow"]
    # THEN no statement allows every action of a service, nor any action on every resource
    # but the log delivery calls, which take no resource
    assert [s["sid"] for s in allowed if any(a == "*" or a.endswith(":*") for a in s["actions"])] == []
    assert [s["sid"] for s in allowed if s["resources"] == ["*"]] == ["LogDelivery"]
    assert all(a.startswith("logs:") for s in allowed if s["resources"] == ["*"] for a in s["actions"])


def test_deploy_role_may_read_back_the_glue_table_it_creates() -> None:
    # GIVEN the statement of the Glue catalog (database and table of the insights export)
    (catalog,) = [s for s in deploy_statements() if s["sid"] == "InsightsCatalog"]
    # THEN it allows what the AWS provider calls to create, read, update and delete them: reading an
    # aws_glue_catalog_table also reads its partition indexes
    table_calls = {"glue:CreateTable", "glue:GetTable", "glue:UpdateTable", "glue:DeleteTable"}
    assert table_calls | {"glue:GetPartitionIndexes"} <= set(catalog["actions"])
    assert catalog["resources"] == "${local.arn.glue}"


def test_deploy_role_creates_roles_only_within_the_boundary() -> None:
    statements = {s["sid"]: s for s in deploy_statements()}
    writes = statements["WriteRolesWithinTheBoundary"]
    # THEN creating a role, or changing its policies, requires the permissions boundary
    assert {"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"} <= set(writes["actions"])
    (condition,) = blocks(writes, "condition")
    assert condition == {
        "test": "StringEquals",
        "variable": "iam:PermissionsBoundary",
        "values": ["${local.boundary_arn}"],
    }
    # AND no other statement grants those actions
    others = {a for sid, s in statements.items() if sid != "WriteRolesWithinTheBoundary" for a in s["actions"]}
    assert {a for a in others if a in writes["actions"]} <= set(statements["AttachOnlyTracing"]["actions"])
    assert statements["AttachOnlyTracing"]["effect"] == "Deny"
    # AND the role may not touch itself or the boundary
    assert statements["NotItself"]["effect"] == "Deny"
    # AND the pipeline's roles carry the boundary
    pipeline = module(MODULES / "pipeline")
    function = module(MODULES / "pipeline" / "modules" / "function")
    assert pipeline.resource("aws_iam_role", "workflow")["permissions_boundary"] == "${var.permissions_boundary_arn}"
    assert function.resource("aws_iam_role", "this")["permissions_boundary"] == "${var.permissions_boundary_arn}"
    for stage in STAGES:
        call = module(ENVIRONMENTS / stage).modules["pipeline"]
        assert call["permissions_boundary_arn"] == "${var.permissions_boundary_arn}"
