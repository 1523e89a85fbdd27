"""The Terraform deploys what the SAM template deploys, and what the code expects.

Compared: the functions (handlers, memory, timeouts, environment variable names, IAM statements,
asynchronous invocation), the workflow (the one ASL file and its substitutions), the tables (with
src/eventpipe/adapters/aws/tables.py), the raw bucket, the triggers, the HTTP API, the parameters'
defaults, and the alarms (modules/monitoring reads monitoring/alerts.yml itself).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import hcl2
import pytest
from hcl2 import SerializationOptions

from eventpipe.adapters.aws import tables
from eventpipe.handlers.functions import FUNCTIONS
from tests.infra.test_terraform import ENVIRONMENTS, MODULES, ROOT, STAGES, blocks, module

if TYPE_CHECKING:
    from types import ModuleType

PIPELINE = MODULES / "pipeline"
FUNCTION = PIPELINE / "modules" / "function"
MONITORING = MODULES / "monitoring"
ASL = ROOT / "src" / "eventpipe" / "workflow" / "pipeline.asl.json"

# The table each resource-name variable names, and its key schema in tables.py.
TABLE_SPECS = {
    "EVENTPIPE_CURATED_TABLE": tables.CURATED_TABLE,
    "EVENTPIPE_STATE_TABLE": tables.STATE_TABLE,
    "EVENTPIPE_INSIGHTS_TABLE": tables.INSIGHTS_TABLE,
    "EVENTPIPE_APPS_TABLE": tables.APPS_TABLE,
}
# SAM logical ids, and the names modules/pipeline gives the same resources in its IAM statements.
RESOURCE_KINDS = {
    "RawBucket": "bucket",
    "AnalyticsBucket": "analytics_bucket",
    "CuratedTable": "curated_table",
    "StateTable": "state_table",
    "InsightsTable": "insights_table",
    "AppsTable": "apps_table",
    "PipelineStateMachine": "state_machine",
    "RequestStream": "request_stream",
    "DeadLetterQueue": "dead_letter_queue",
}
# SAM policy templates: the statements SAM writes for them.
POLICY_TEMPLATES = {"StepFunctionsExecutionPolicy": [("states:StartExecution", "state_machine")]}
# SAM parameters and the pipeline variables that stand for them (same defaults).
PARAMETERS = {
    "ThrottlingBurstLimit": lambda v: v["api_throttling"]["default"]["burst_limit"],
    "ThrottlingRateLimit": lambda v: v["api_throttling"]["default"]["rate_limit"],
    "RawRetentionDays": lambda v: v["raw_retention_days"]["default"],
    "CuratedTtlDays": lambda v: v["curated_ttl_days"]["default"],
    "StagedRetentionDays": lambda v: v["staged_retention_days"]["default"],
    "LakeRetentionDays": lambda v: v["lake_retention_days"]["default"],
    "LogRetentionDays": lambda v: v["log_retention_days"]["default"],
    "GlueDatabaseName": lambda v: v["glue_database_name"]["default"],
    "InsightsProjectionStart": lambda v: v["insights_projection_start"]["default"],
}


@pytest.fixture(scope="module")
def pipeline() -> Any:
    return module(PIPELINE)


@pytest.fixture(scope="module")
def sam_by_handler(functions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The SAM functions' properties (Globals merged), by entry point: {"ingest": {...}, ...}."""
    return {props["Handler"].removeprefix("lambda_pipeline."): props for props in functions.values()}


def code_handlers() -> set[str]:
    """The Lambda entry points of src/lambda_pipeline.py: one per function of the registry."""
    return set(FUNCTIONS)


def tf_environment_names(pipeline: Any) -> dict[str, set[str]]:
    """The environment variable names modules/pipeline gives each function.

    Every function gets local.common_environment (and the optional var.function_settings, empty by
    default); module "entry" adds EVENTPIPE_STATE_MACHINE_ARN to the functions that start executions,
    and EVENTPIPE_ANALYTICS_BUCKET to the ones that write the analytics bucket (the export, the lake's
    writer, compaction and erasure); module "step" adds nothing (the workflow's steps write no lake).
    """
    common = set(pipeline.locals["common_environment"]) | set(pipeline.locals["settings_environment"])
    steps, entries = pipeline.modules["step"], pipeline.modules["entry"]
    merged = "merge(var.function_settings, local.settings_environment, local.common_environment"
    assert steps["environment"] == "${" + merged + ")}"
    assert entries["environment"].startswith("${" + merged + ", {")
    assert "EVENTPIPE_STATE_MACHINE_ARN = aws_sfn_state_machine.pipeline.arn" in entries["environment"]
    assert 'if contains(local.policies[each.key][*].sid, "StartExecutions")' in entries["environment"]
    assert 'EVENTPIPE_START_FUNCTION = local.function_names["start_batches"]' in entries["environment"]
    assert 'EVENTPIPE_RANGE_FUNCTION = local.function_names["ingest"]' in entries["environment"]
    assert 'if contains(local.policies[each.key][*].sid, "HandOnStartsAndRanges")' in entries["environment"]
    assert "EVENTPIPE_ANALYTICS_BUCKET = aws_s3_bucket.analytics.id" in entries["environment"]
    assert 'if contains(local.policies[each.key][*].sid, "WriteExport")' in entries["environment"]
    assert 'contains(local.policies[each.key][*].sid, "MergeLakeObjects")' in entries["environment"]
    assert 'contains(local.policies[each.key][*].sid, "WriteLake")' in entries["environment"]
    assert 'contains(local.policies[each.key][*].sid, "RewriteLake")' in entries["environment"]
    assert "EVENTPIPE_REQUEST_STREAM = aws_kinesis_firehose_delivery_stream.requests.name" in entries["environment"]
    assert 'if contains(local.policies[each.key][*].sid, "QueueRequests")' in entries["environment"]
    names = {}
    for name in pipeline.locals["functions"]:
        sids = {s["sid"] for s in pipeline.locals["policies"][name]}
        is_entry = name not in pipeline.locals["workflow_steps"]
        names[name] = common | ({"EVENTPIPE_STATE_MACHINE_ARN"} if is_entry and "StartExecutions" in sids else set())
        hands_on = {"EVENTPIPE_START_FUNCTION", "EVENTPIPE_RANGE_FUNCTION"}
        names[name] |= hands_on if is_entry and "HandOnStartsAndRanges" in sids else set()
        writes_analytics = {"WriteExport", "WriteLake", "MergeLakeObjects", "RewriteLake"} & sids if is_entry else set()
        names[name] |= {"EVENTPIPE_ANALYTICS_BUCKET"} if writes_analytics else set()
        names[name] |= {"EVENTPIPE_REQUEST_STREAM"} if is_entry and "QueueRequests" in sids else set()
    return names


# --- Functions ----------------------------------------------------------------------------------------


def test_the_same_entry_points_everywhere(pipeline: Any, sam_by_handler: dict[str, Any]) -> None:
    # GIVEN the entry points of the code, the SAM template and the Terraform
    tf = set(pipeline.locals["functions"])
    # THEN they are the same eleven
    assert code_handlers() == set(sam_by_handler) == tf
    assert len(tf) == 11
    # AND both function module calls name the handler lambda_pipeline.<entry point>
    for call in ("step", "entry"):
        assert pipeline.modules[call]["handler"] == "lambda_pipeline.${each.key}"
    assert set(pipeline.locals["workflow_steps"]) < tf


def test_functions_are_named_stack_dash_entry_point_as_in_sam(pipeline: Any, sam_by_handler: dict[str, Any]) -> None:
    # GIVEN SAM's FunctionName and the Terraform's local.function_names
    for handler, properties in sam_by_handler.items():
        assert properties["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-" + handler}
    assert pipeline.locals["function_names"] == '${{for key in keys(local.functions) : key => "${local.name}-${key}"}}'
    assert pipeline.locals["name"] == "${var.project}-${var.stage}"
    # THEN the longest Terraform name (16-character project, 10-character stage) fits Lambda's 64
    project = re.search(r"\{1,(\d+)\}", pipeline.variables["project"]["validation"][0]["condition"])
    stage = re.search(r"\{1,(\d+)\}", pipeline.variables["stage"]["validation"][0]["condition"])
    assert project
    assert stage
    longest = 1 + int(project.group(1)) + 1 + 1 + int(stage.group(1)) + 1 + max(map(len, sam_by_handler))
    assert longest <= 64


def test_runtime_memory_and_timeouts_match_sam(pipeline: Any, sam_by_handler: dict[str, Any]) -> None:
    lambda_function = module(FUNCTION).resource("aws_lambda_function", "this")
    for name, spec in pipeline.locals["functions"].items():
        sam = sam_by_handler[name]
        assert (spec["memory_mb"], spec["timeout_s"]) == (sam["MemorySize"], sam["Timeout"]), name
        assert lambda_function["runtime"] == sam["Runtime"] == "python3.12"
        assert lambda_function["architectures"] == sam["Architectures"] == ["arm64"]
        (tracing,) = blocks(lambda_function, "tracing_config")
        assert tracing["mode"] == "${var.tracing_mode}"
        # not traced: ingest (sampled per request upstream), the schedules (every idle run would be) and the fold
        passthrough = ("ingest", "export_insights", "replay", "compact_lake", "fold_insights", "write_lake")
        assert sam["Tracing"] == ("PassThrough" if name in passthrough else "Active")
    assert pipeline.modules["entry"]["tracing_mode"] == (
        '${contains(["ingest", "export_insights", "replay", "compact_lake", "fold_insights", "write_lake"], each.key)'
        ' ? "PassThrough" : "Active"}'
    )
    assert "tracing_mode" not in pipeline.modules["step"]  # the workflow's steps: Active, the default


def test_timeouts_match_the_duration_alarms(pipeline: Any, alerts_config: dict[str, Any]) -> None:
    # monitoring/alerts.yml keeps each function's timeout for its duration alarm (80% of it)
    timeouts = {name: entry["timeout_s"] for name, entry in alerts_config["functions"].items()}
    assert timeouts == {name: spec["timeout_s"] for name, spec in pipeline.locals["functions"].items()}


def test_environment_variable_names_match_sam_and_the_settings(pipeline: Any, sam_by_handler: dict[str, Any]) -> None:
    tf = tf_environment_names(pipeline)
    # THEN each function gets the same variable names as in the SAM template
    assert tf == {name: set(sam["Environment"]["Variables"]) for name, sam in sam_by_handler.items()}
    # AND every EVENTPIPE_* name is one src/eventpipe/settings.py (or the lake's settings.py) reads
    settings = [ROOT / "src" / "eventpipe" / "settings.py", ROOT / "src" / "eventpipe" / "lake" / "settings.py"]
    read = {name for path in settings for name in re.findall(r'"(EVENTPIPE_[A-Z_]+)"', path.read_text())}
    assert {n for names in tf.values() for n in names if n.startswith("EVENTPIPE_")} <= read
    # AND every function has the four resource names AwsResources requires, ingest and replay the workflow
    assert all(set(TABLE_SPECS) | {"EVENTPIPE_BUCKET"} <= names for names in tf.values())
    starters = {name for name, names in tf.items() if "EVENTPIPE_STATE_MACHINE_ARN" in names}
    assert starters == {"ingest", "replay", "start_batches"}
    assert {name for name, names in tf.items() if "EVENTPIPE_REQUEST_STREAM" in names} == {"ingest"}
    assert {name for name, names in tf.items() if "EVENTPIPE_START_FUNCTION" in names} == {"ingest"}


def sam_statement_pairs(policies: list[Any]) -> set[tuple[str, str]]:
    """(action, resource) pairs of SAM function Policies, resources named as in modules/pipeline."""
    pairs: set[tuple[str, str]] = set()
    for policy in policies:
        if isinstance(policy, dict) and "Statement" in policy:
            for statement in policy["Statement"]:
                assert statement["Effect"] == "Allow"
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resources = (
                    statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                )
                pairs |= {(a, sam_resource_kind(r)) for a in actions for r in resources}
        else:
            (template,) = policy
            pairs |= set(POLICY_TEMPLATES[template])
    return pairs


def sam_resource_kind(resource: Any) -> str:
    """`!GetAtt StateTable.Arn` -> "state_table", `!Sub "${RawBucket.Arn}/raw/*"` -> "bucket/raw/*", ..."""
    if "Fn::GetAtt" in resource:
        logical_id, attribute = resource["Fn::GetAtt"]
        if attribute == "StreamArn":  # a table's stream: "insights_table" -> "insights_stream"
            return RESOURCE_KINDS[logical_id].removesuffix("_table") + "_stream"
        return RESOURCE_KINDS[logical_id]
    text = resource["Fn::Sub"]
    if ":execution:${PipelineStateMachine.Name}:*" in text:
        return "executions"
    if text.endswith(":parameter/eventpipe/${AWS::StackName}/*"):
        return "pseudonym_key_parameters"
    if ":function:${AWS::StackName}-" in text:  # a function by name (ingest hands work on to them)
        return text.rsplit("-", 1)[1] + "_function"
    return re.sub(r"\$\{(\w+)\.Arn\}", lambda m: RESOURCE_KINDS[m.group(1)], text)


def test_iam_statements_match_sam(pipeline: Any, sam_by_handler: dict[str, Any]) -> None:
    # GIVEN each function's statements in both
    for name, statements in pipeline.locals["policies"].items():
        tf = {(a, r) for s in statements for a in s["actions"] for r in s["resources"]}
        # THEN they allow the same actions on the same resources
        assert tf == sam_statement_pairs(sam_by_handler[name]["Policies"]), name
        # AND every resource name is one local.policy_resources resolves
        assert {r for _, r in tf} <= set(pipeline.locals["policy_resources"])


def test_asynchronous_invocations_match_sam(pipeline: Any, sam_by_handler: dict[str, Any]) -> None:
    sam = {
        name: {
            "maximum_retry_attempts": props["EventInvokeConfig"]["MaximumRetryAttempts"],
            "maximum_event_age_in_seconds": props["EventInvokeConfig"]["MaximumEventAgeInSeconds"],
        }
        for name, props in sam_by_handler.items()
        if "EventInvokeConfig" in props
    }
    assert pipeline.locals["async_invocations"] == sam
    for props in sam_by_handler.values():
        if "EventInvokeConfig" in props:
            destination = props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"]
            assert destination == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert "on_failure_queue_arn = aws_sqs_queue.dead_letter.arn" in pipeline.modules["entry"]["async_invocation"]


def test_no_queue_is_polled_as_in_sam(pipeline: Any) -> None:
    # failed starts and file ranges are asynchronous invocations (docs/cost.md, "Idle"), micro-batching's
    # requests a Firehose stream: Lambda polls no queue, in both
    mappings = [
        block for (kind, _name), block in pipeline.resources.items() if kind == "aws_lambda_event_source_mapping"
    ]
    # (Lambda polls the insights table's stream at no charge: fold_insights' mapping is no queue's)
    assert [m["event_source_arn"] for m in mappings if "aws_sqs_queue" in m["event_source_arn"]] == []
    names = pipeline.locals["policy_resources"]
    for target in ("start_batches", "ingest"):
        prefix = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:"
        assert names[f"{target}_function"] == prefix + f'${{local.function_names["{target}"]}}'


def test_insights_deltas_reach_the_fold_from_the_tables_stream_as_in_sam(
    pipeline: Any, resources: dict[str, Any]
) -> None:
    table = pipeline.resource("aws_dynamodb_table", "insights")
    sam_table = resources["InsightsTable"]["Properties"]
    assert table["stream_enabled"] is True
    assert table["stream_view_type"] == sam_table["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
    mapping = pipeline.resource("aws_lambda_event_source_mapping", "insights_deltas")
    source = resources["FoldInsightsFunction"]["Properties"]["Events"]["Deltas"]["Properties"]
    assert mapping["event_source_arn"] == "${aws_dynamodb_table.insights.stream_arn}"
    assert mapping["function_name"] == '${module.entry["fold_insights"].function_name}'
    for tf, sam in (
        ("starting_position", "StartingPosition"),
        ("batch_size", "BatchSize"),
        ("maximum_batching_window_in_seconds", "MaximumBatchingWindowInSeconds"),
        ("parallelization_factor", "ParallelizationFactor"),
    ):
        assert mapping[tf] == source[sam], tf
    (criteria,) = blocks(mapping, "filter_criteria")
    (only,) = blocks(criteria, "filter")
    (sam_filter,) = source["FilterCriteria"]["Filters"]
    for word in ("delta#", "INSERT"):  # delta inserts only, in both
        assert word in only["pattern"]
        assert f'"{word}"' in sam_filter["Pattern"]


def test_small_requests_go_through_a_firehose_stream_as_in_sam(pipeline: Any, resources: dict[str, Any]) -> None:
    stream = pipeline.resource("aws_kinesis_firehose_delivery_stream", "requests")
    sam = resources["RequestStream"]["Properties"]
    (destination,) = blocks(stream, "extended_s3_configuration")
    sam_destination = sam["ExtendedS3DestinationConfiguration"]
    assert destination["bucket_arn"] == "${aws_s3_bucket.raw.arn}"
    assert destination["prefix"] == sam_destination["Prefix"] == "requests/"
    assert destination["buffering_interval"] == sam_destination["BufferingHints"]["IntervalInSeconds"]
    assert destination["buffering_size"] == sam_destination["BufferingHints"]["SizeInMBs"]
    assert destination["compression_format"] == sam_destination["CompressionFormat"]
    (encryption,) = blocks(stream, "server_side_encryption")
    assert encryption["key_type"] == sam["DeliveryStreamEncryptionConfigurationInput"]["KeyType"]
    # AND its role writes to requests/ only, as SAM's
    policy = pipeline.data[("aws_iam_policy_document", "request_stream")]
    (statement,) = blocks(policy, "statement")
    sam_statement = resources["RequestStreamRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]
    assert statement["actions"] == sam_statement["Action"]
    assert statement["resources"] == ["${aws_s3_bucket.raw.arn}", "${aws_s3_bucket.raw.arn}/requests/*"]


# --- Workflow -----------------------------------------------------------------------------------------


def test_the_state_machine_runs_the_one_asl_file(pipeline: Any, resources: dict[str, Any]) -> None:
    # GIVEN the Terraform state machine and the SAM one
    machine = pipeline.resource("aws_sfn_state_machine", "pipeline")
    sam = resources["PipelineStateMachine"]["Properties"]
    # THEN both read src/eventpipe/workflow/pipeline.asl.json
    assert pipeline.resolve(pipeline.locals["workflow_definition_file"]) == ASL
    assert (ROOT / "infrastructure" / sam["DefinitionUri"]).resolve() == ASL
    assert machine["definition"].startswith("${templatefile(local.workflow_definition_file, {")
    # AND substitute the same variables, the ones the file uses, with the same functions' ARNs
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL.read_text(encoding="utf-8")))
    steps = pipeline.locals["workflow_steps"]
    assert set(steps.values()) == set(sam["DefinitionSubstitutions"]) == placeholders
    sam_handlers = {
        variable: resources[arn["Fn::GetAtt"][0]]["Properties"]["Handler"]
        for variable, arn in sam["DefinitionSubstitutions"].items()
    }
    assert {variable: f"lambda_pipeline.{name}" for name, variable in steps.items()} == sam_handlers
    assert "variable => module.step[key].arn" in machine["definition"]
    # AND both are Express workflows, traced (1% of executions), logging errors
    assert machine["type"] == sam["Type"] == "EXPRESS"
    rule = pipeline.resource("aws_xray_sampling_rule", "workflow")
    sam_rule = resources["WorkflowSamplingRule"]["Properties"]["SamplingRule"]
    assert (rule["fixed_rate"], rule["reservoir_size"]) == (sam_rule["FixedRate"], sam_rule["ReservoirSize"])
    assert rule["service_type"] == sam_rule["ServiceType"]
    (logging,) = blocks(machine, "logging_configuration")
    assert logging["level"] == sam["Logging"]["Level"]
    assert logging["include_execution_data"] is sam["Logging"]["IncludeExecutionData"]
    assert blocks(machine, "tracing_configuration") == [{"enabled": sam["Tracing"]["Enabled"]}]


def test_the_workflow_role_delivers_its_logs_as_in_sam(pipeline: Any, resources: dict[str, Any]) -> None:
    # GIVEN the statements of the workflow role in the Terraform and the SAM state machine's own ones
    tf = {s["sid"]: s for s in blocks(pipeline.data[("aws_iam_policy_document", "workflow")], "statement")}
    sam = [
        statement
        for policy in resources["PipelineStateMachine"]["Properties"]["Policies"]
        if "Statement" in policy
        for statement in policy["Statement"]
    ]
    # THEN both allow the same log delivery calls, on "*" (they take no resource ARN)
    (sam_delivery,) = [s for s in sam if s["Sid"] == "DeliverExecutionLogs"]
    delivery = tf["DeliverExecutionLogs"]
    assert set(delivery["actions"]) == set(sam_delivery["Action"])
    assert {a.split(":")[0] for a in delivery["actions"]} == {"logs"}
    assert delivery["resources"] == ["*"]
    assert sam_delivery["Resource"] == "*"


# --- Tables -------------------------------------------------------------------------------------------


def tf_table_key_schema(table: dict[str, Any]) -> dict[str, Any]:
    """A Terraform table in the shape of tables.py's specifications."""
    keys = [(table["hash_key"], "HASH")] + ([(table["range_key"], "RANGE")] if "range_key" in table else [])
    spec: dict[str, Any] = {
        "KeySchema": [{"AttributeName": n, "KeyType": r} for n, r in keys],
        "AttributeDefinitions": [{"AttributeName": a["name"], "AttributeType": a["type"]} for a in table["attribute"]],
        "BillingMode": table["billing_mode"],
    }
    indexes = [
        {
            "IndexName": index["name"],
            "KeySchema": [{"AttributeName": index["hash_key"], "KeyType": "HASH"}]
            + ([{"AttributeName": index["range_key"], "KeyType": "RANGE"}] if "range_key" in index else []),
            "Projection": {"ProjectionType": index["projection_type"]},
        }
        for index in blocks(table, "global_secondary_index")
    ]
    if indexes:
        spec["GlobalSecondaryIndexes"] = indexes
    return spec


def sam_table_key_schema(properties: dict[str, Any]) -> dict[str, Any]:
    keys = ("KeySchema", "AttributeDefinitions", "BillingMode", "GlobalSecondaryIndexes")
    return {key: properties[key] for key in keys if key in properties}


@pytest.mark.parametrize("variable", sorted(TABLE_SPECS))
def test_tables_match_the_code_and_sam(
    variable: str, pipeline: Any, resources: dict[str, Any], sam_by_handler: dict[str, Any]
) -> None:
    # GIVEN the table the variable names, in the Terraform and in the SAM template
    reference = re.fullmatch(r"\$\{aws_dynamodb_table\.(\w+)\.name\}", pipeline.locals["common_environment"][variable])
    assert reference, variable
    table = pipeline.resource("aws_dynamodb_table", reference.group(1))
    sam = resources[sam_by_handler["ingest"]["Environment"]["Variables"][variable]["Ref"]]["Properties"]
    # THEN the keys, attributes, index and billing are those of tables.py, in both
    assert tf_table_key_schema(table) == TABLE_SPECS[variable] == sam_table_key_schema(sam)
    # AND the TTL attribute, point-in-time recovery and encryption are the same
    ttl = blocks(table, "ttl")
    sam_ttl = sam.get("TimeToLiveSpecification")
    assert [t["attribute_name"] for t in ttl] == ([sam_ttl["AttributeName"]] if sam_ttl else [])
    assert all(t["attribute_name"] == tables.TTL_ATTRIBUTE and t["enabled"] is True for t in ttl)
    assert blocks(table, "point_in_time_recovery") == [{"enabled": True}]
    assert sam["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert blocks(table, "server_side_encryption") == [{"enabled": True}]
    assert sam["SSESpecification"] == {"SSEEnabled": True}


def test_the_ttl_attribute_is_on_the_insights_curated_and_state_tables(pipeline: Any) -> None:
    # dynamodb_insights.py writes expires_at on helper rows, dynamodb_curated.py on curated events,
    # erasure_tombstones.py on erasure tombstones (state table); without TTL they would pile up
    with_ttl = {
        name for (kind, name), body in pipeline.resources.items() if kind == "aws_dynamodb_table" and "ttl" in body
    }
    assert with_ttl == {"insights", "curated", "state"}


def test_the_curated_table_streams_its_new_images_to_write_lake_as_in_sam(
    pipeline: Any, resources: dict[str, Any], sam_by_handler: dict[str, Any]
) -> None:
    curated = pipeline.resource("aws_dynamodb_table", "curated")
    assert (curated["stream_enabled"], curated["stream_view_type"]) == (True, tables.CURATED_STREAM["StreamViewType"])
    assert resources["CuratedTable"]["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    mapping = pipeline.resource("aws_lambda_event_source_mapping", "curated_inserts")
    (sam,) = [e["Properties"] for e in sam_by_handler["write_lake"]["Events"].values()]
    assert mapping["event_source_arn"] == "${aws_dynamodb_table.curated.stream_arn}"
    assert sam["Stream"] == {"Fn::GetAtt": ["CuratedTable", "StreamArn"]}
    pairs = {
        "starting_position": "StartingPosition",
        "batch_size": "BatchSize",
        "maximum_batching_window_in_seconds": "MaximumBatchingWindowInSeconds",
        "parallelization_factor": "ParallelizationFactor",
        "bisect_batch_on_function_error": "BisectBatchOnFunctionError",
        "maximum_retry_attempts": "MaximumRetryAttempts",
        "maximum_record_age_in_seconds": "MaximumRecordAgeInSeconds",
    }
    assert {tf: mapping[tf] for tf in pairs} == {tf: sam[s] for tf, s in pairs.items()}
    # retried until the records leave the stream, whole (the objects' keys stay the same), never skipped
    assert (sam["MaximumRetryAttempts"], sam["MaximumRecordAgeInSeconds"], sam["BisectBatchOnFunctionError"]) == (
        -1,
        -1,
        False,
    )
    assert "FunctionResponseTypes" not in sam
    assert sam["MaximumBatchingWindowInSeconds"] <= 30  # the lake's freshness: 60 s promised
    (on_failure,) = blocks(blocks(mapping, "destination_config")[0], "on_failure")
    assert on_failure["destination_arn"] == "${aws_sqs_queue.dead_letter.arn}"
    assert sam["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    (tf_filter,) = blocks(blocks(mapping, "filter_criteria")[0], "filter")
    assert tf_filter["pattern"].replace(" ", "") == '${jsonencode({eventName=["INSERT"]})}'
    assert sam["FilterCriteria"] == {"Filters": [{"Pattern": '{"eventName": ["INSERT"]}'}]}


def test_the_erasure_waits_out_write_lake_s_timeout(sam_by_handler: dict[str, Any]) -> None:
    from eventpipe.adapters.aws.erasure_tombstones import WRITER_TIMEOUT_S

    assert sam_by_handler["write_lake"]["Timeout"] <= WRITER_TIMEOUT_S


def test_the_lake_s_lease_outlives_its_holders(sam_by_handler: dict[str, Any]) -> None:
    from eventpipe.adapters.aws.lake_lease import LEASE_S

    # a lease expires only once its holder, killed midway, can no longer be running (lake_lease.py)
    assert sam_by_handler["erase"]["Timeout"] < LEASE_S
    assert sam_by_handler["compact_lake"]["Timeout"] < LEASE_S


# --- Raw bucket and triggers ------------------------------------------------------------------------


def test_raw_bucket_has_the_protections_of_sam(pipeline: Any, resources: dict[str, Any]) -> None:
    sam = resources["RawBucket"]["Properties"]
    versioning = pipeline.resource("aws_s3_bucket_versioning", "raw")
    assert blocks(versioning, "versioning_configuration") == [{"status": sam["VersioningConfiguration"]["Status"]}]
    access = pipeline.resource("aws_s3_bucket_public_access_block", "this")
    settings = {"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"}
    assert {key: access[key] for key in settings} == dict.fromkeys(settings, True)
    assert set(sam["PublicAccessBlockConfiguration"].values()) == {True}
    ownership = blocks(pipeline.resource("aws_s3_bucket_ownership_controls", "this"), "rule")
    assert [r["object_ownership"] for r in ownership] == [sam["OwnershipControls"]["Rules"][0]["ObjectOwnership"]]
    (encryption,) = blocks(pipeline.resource("aws_s3_bucket_server_side_encryption_configuration", "this"), "rule")
    (default,) = blocks(encryption, "apply_server_side_encryption_by_default")
    sam_default = sam["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert default["sse_algorithm"] == sam_default["SSEAlgorithm"]
    assert pipeline.resource("aws_s3_bucket_notification", "raw")["eventbridge"] is True
    assert sam["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    # AND plain HTTP is refused on both buckets, as in the SAM bucket policies
    (statement,) = blocks(pipeline.data[("aws_iam_policy_document", "https_only")], "statement")
    assert (statement["effect"], statement["actions"]) == ("Deny", ["s3:*"])
    assert blocks(statement, "condition")[0]["variable"] == "aws:SecureTransport"
    assert pipeline.locals["buckets"] == {
        "raw": "${aws_s3_bucket.raw}",
        "analytics": "${aws_s3_bucket.analytics}",
        "athena_results": "${aws_s3_bucket.athena_results}",
    }


def test_raw_bucket_lifecycle_matches_sam(pipeline: Any, resources: dict[str, Any]) -> None:
    lifecycle = pipeline.resource("aws_s3_bucket_lifecycle_configuration", "raw")
    (expiring,) = blocks(lifecycle, "dynamic")
    tf_rules = {rule["prefix"]: rule["days"] for rule in expiring["rule"]["for_each"].values()}
    days = {
        "${var.raw_retention_days}": "RawRetentionDays",
        "${var.staged_retention_days}": "StagedRetentionDays",
    }
    sam_lifecycle = resources["RawBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    sam_rules = {rule["Prefix"]: rule["ExpirationInDays"]["Ref"] for rule in sam_lifecycle if "Prefix" in rule}
    # THEN the same prefixes expire, after the days of the same-named settings
    assert {prefix: days[value] for prefix, value in tf_rules.items()} == sam_rules
    # AND old versions and unfinished uploads go after the same time
    (rule,) = blocks(lifecycle, "rule")
    (sam_rule,) = [r for r in sam_lifecycle if "Prefix" not in r]
    noncurrent = module(PIPELINE).variables["noncurrent_version_retention_days"]["default"]
    assert noncurrent == sam_rule["NoncurrentVersionExpiration"]["NoncurrentDays"]
    (abort,) = blocks(rule, "abort_incomplete_multipart_upload")
    assert abort["days_after_initiation"] == sam_rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
    # AND delete markers with no version left behind them go, as SAM's ExpiredObjectDeleteMarker
    assert sam_rule["ExpiredObjectDeleteMarker"] is True
    assert blocks(rule, "expiration") == [{"expired_object_delete_marker": True}]


def test_analytics_bucket_lake_expiry_matches_sam(pipeline: Any, resources: dict[str, Any]) -> None:
    lifecycle = pipeline.resource("aws_s3_bucket_lifecycle_configuration", "analytics")
    (expiring,) = blocks(lifecycle, "dynamic")
    for_each = expiring["rule"]["for_each"]
    # THEN the rules exist only when lake_retention_days is over 0, as SAM's LakeExpires condition
    assert for_each.startswith("${var.lake_retention_days > 0 ? {")
    assert for_each.endswith(": {}}")
    tf_prefixes = set(re.findall(r'prefix = "([^"]+)", days = var.lake_retention_days', for_each))
    rules = resources["AnalyticsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    sam_prefixes = {rule["Fn::If"][1]["Prefix"] for rule in rules if "Fn::If" in rule}
    assert tf_prefixes == sam_prefixes == {"events/", "lake-unreadable/"}
    stage = module(ENVIRONMENTS / STAGES[0]).variables
    assert stage["lake_retention_days"]["default"] == 0


def test_quarantine_items_expire_with_the_raw_batches_as_in_sam(pipeline: Any, template: dict[str, Any]) -> None:
    sam = template["Globals"]["Function"]["Environment"]["Variables"]["EVENTPIPE_QUARANTINE_TTL_DAYS"]
    assert sam == {"Ref": "RawRetentionDays"}
    assert (
        pipeline.locals["common_environment"]["EVENTPIPE_QUARANTINE_TTL_DAYS"] == "${tostring(var.raw_retention_days)}"
    )


def test_files_dropped_in_incoming_invoke_ingest_as_in_sam(pipeline: Any, sam_by_handler: dict[str, Any]) -> None:
    from eventpipe.handlers.drops import INCOMING_PREFIX
    from eventpipe.handlers.request_objects import REQUESTS_PREFIX

    sam = sam_by_handler["ingest"]["Events"]["ObjectCreated"]["Properties"]
    rule = pipeline.resource("aws_cloudwatch_event_rule", "object_created")
    target = pipeline.resource("aws_cloudwatch_event_target", "object_created")
    # THEN the rule has the SAM rule's name and matches Object Created under the prefix drops.py reads
    assert rule["name"] == "${local.name}-object-created"
    assert sam["RuleName"] == {"Fn::Sub": "${AWS::StackName}-object-created"}
    assert sam["Pattern"]["detail"]["object"]["key"] == [{"prefix": INCOMING_PREFIX}, {"prefix": REQUESTS_PREFIX}]
    pattern = rule["event_pattern"]
    prefixes = f'[{{prefix = "{INCOMING_PREFIX}"}}, {{prefix = "{REQUESTS_PREFIX}"}}]'
    for part in ('source = ["aws.s3"]', '"detail-type" = ["Object Created"]', prefixes):
        assert part in pattern
    assert "bucket = {name = [aws_s3_bucket.raw.id]}" in pattern
    # AND it retries and dead-letters the same way, and invokes ingest
    assert blocks(target, "retry_policy") == [
        {
            "maximum_event_age_in_seconds": sam["RetryPolicy"]["MaximumEventAgeInSeconds"],
            "maximum_retry_attempts": sam["RetryPolicy"]["MaximumRetryAttempts"],
        }
    ]
    assert blocks(target, "dead_letter_config") == [{"arn": "${aws_sqs_queue.dead_letter.arn}"}]
    assert target["arn"] == '${module.entry["ingest"].arn}'


def tf_jsonencoded(expression: str) -> Any:
    """The value of a `${jsonencode({...})}` argument, as the JSON it encodes."""
    found = re.fullmatch(r"\$\{jsonencode\((.*)\)\}", expression, flags=re.DOTALL)
    assert found, expression
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    return hcl2.loads(f"value = {found.group(1)}\n", serialization_options=options)["value"]


def sam_schedule(sam_by_handler: dict[str, Any], name: str) -> dict[str, Any]:
    (schedule,) = [e["Properties"] for e in sam_by_handler[name]["Events"].values() if e["Type"] == "Schedule"]
    return schedule


def test_the_export_schedule_matches_sam(pipeline: Any, sam_by_handler: dict[str, Any]) -> None:
    sam = sam_schedule(sam_by_handler, "export_insights")
    rule = pipeline.resource("aws_cloudwatch_event_rule", "export")
    target = pipeline.resource("aws_cloudwatch_event_target", "export")
    assert rule["name"] == "${local.name}-export-insights"
    assert sam["Name"] == {"Fn::Sub": "${AWS::StackName}-export-insights"}
    assert module(PIPELINE).variables["export_schedule"]["default"] == sam["Schedule"]
    assert blocks(target, "retry_policy") == [
        {
            "maximum_event_age_in_seconds": sam["RetryPolicy"]["MaximumEventAgeInSeconds"],
            "maximum_retry_attempts": sam["RetryPolicy"]["MaximumRetryAttempts"],
        }
    ]
    assert target["arn"] == '${module.entry["export_insights"].arn}'
    assert tf_jsonencoded(target["input"]) == json.loads(sam.get("Input", "{}"))


def test_pending_batches_are_restarted_on_the_schedule_of_sam(pipeline: Any, sam_by_handler: dict[str, Any]) -> None:
    sam = sam_schedule(sam_by_handler, "replay")
    rule = pipeline.resource("aws_cloudwatch_event_rule", "replay_pending")
    target = pipeline.resource("aws_cloudwatch_event_target", "replay_pending")
    # THEN the rule has the SAM rule's name and schedule
    assert rule["name"] == "${local.name}-replay-pending"
    assert sam["Name"] == {"Fn::Sub": "${AWS::StackName}-replay-pending"}
    assert rule["schedule_expression"] == "${var.replay_schedule}"
    assert pipeline.variables["replay_schedule"]["default"] == sam["Schedule"] == "rate(10 minutes)"
    # AND it invokes replay with the same input: pending batches older than the same age
    assert target["arn"] == '${module.entry["replay"].arn}'
    assert target["rule"] == "${aws_cloudwatch_event_rule.replay_pending.name}"
    assert tf_jsonencoded(target["input"]) == json.loads(sam["Input"])
    assert set(json.loads(sam["Input"])) == {"pending_older_than_s"}
    # AND it retries and dead-letters the same way
    assert blocks(target, "retry_policy") == [
        {
            "maximum_event_age_in_seconds": sam["RetryPolicy"]["MaximumEventAgeInSeconds"],
            "maximum_retry_attempts": sam["RetryPolicy"]["MaximumRetryAttempts"],
        }
    ]
    assert blocks(target, "dead_letter_config") == [{"arn": "${aws_sqs_queue.dead_letter.arn}"}]


def test_every_rule_may_invoke_its_function_and_send_dead_letters(
    pipeline: Any, resources: dict[str, Any], sam_by_handler: dict[str, Any]
) -> None:
    # GIVEN the EventBridge rules of both (SAM: the functions' EventBridgeRule and Schedule events)
    rules = {name for kind, name in pipeline.resources if kind == "aws_cloudwatch_event_rule"}
    sam_names = {
        (e["Properties"].get("RuleName") or e["Properties"]["Name"])["Fn::Sub"].removeprefix("${AWS::StackName}-")
        for props in sam_by_handler.values()
        for e in props.get("Events", {}).values()
        if e["Type"] in ("EventBridgeRule", "Schedule")
    }
    tf_names = {pipeline.resource("aws_cloudwatch_event_rule", r)["name"].removeprefix("${local.name}-") for r in rules}
    # THEN they are the same rules
    assert tf_names == sam_names
    for name in rules:
        target = pipeline.resource("aws_cloudwatch_event_target", name)
        permission = pipeline.resource("aws_lambda_permission", name)
        # AND each has one target, with a dead-letter queue, and a permission to invoke its function
        assert target["rule"] == f"${{aws_cloudwatch_event_rule.{name}.name}}"
        assert blocks(target, "dead_letter_config") == [{"arn": "${aws_sqs_queue.dead_letter.arn}"}]
        assert permission["source_arn"] == f"${{aws_cloudwatch_event_rule.{name}.arn}}"
        assert permission["principal"] == "events.amazonaws.com"
        assert permission["function_name"] == target["arn"].replace(".arn}", ".function_name}")
    # AND the dead-letter queue takes messages from those rules, as the SAM queue policy names them
    (allow, _) = blocks(pipeline.data[("aws_iam_policy_document", "dead_letter")], "statement")
    (condition,) = blocks(allow, "condition")
    assert (condition["test"], condition["variable"]) == ("ArnEquals", "aws:SourceArn")
    assert sorted(condition["values"]) == sorted(f"${{aws_cloudwatch_event_rule.{r}.arn}}" for r in rules)
    (sam_allow, _) = resources["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    sam_allowed = {
        arn["Fn::Sub"].rsplit("/${AWS::StackName}-", 1)[1]
        for arn in sam_allow["Condition"]["ArnEquals"]["aws:SourceArn"]
    }
    assert sam_allowed == sam_names


# --- HTTP API -----------------------------------------------------------------------------------------


def test_http_api_routes_and_authorization_match_sam(
    pipeline: Any, resources: dict[str, Any], sam_by_handler: dict[str, Any]
) -> None:
    # GIVEN the routes of the SAM ingest function and the Terraform routes
    sam_routes = {
        f"{e['Properties']['Method']} {e['Properties']['Path']}": e["Properties"].get("Auth", {}).get("Authorizer")
        for e in sam_by_handler["ingest"]["Events"].values()
        if e["Type"] == "HttpApi"
    }
    protected = set(pipeline.locals["protected_routes"])
    open_routes = [
        pipeline.resource("aws_apigatewayv2_route", name) for name in ("health", "events_preflight", "tracker")
    ]
    events = pipeline.resource("aws_apigatewayv2_route", "events")
    # THEN the same routes exist, and only GET /health, GET /tracker.js, the preflight and (write keys)
    # POST /events are open
    assert protected | {r["route_key"] for r in [*open_routes, events]} == set(sam_routes)
    assert {route for route, authorizer in sam_routes.items() if authorizer == "NONE"} == {
        r["route_key"] for r in [*open_routes, events]
    }
    assert all(r["authorization_type"] == "NONE" for r in open_routes)
    assert pipeline.resource("aws_apigatewayv2_route", "protected")["authorization_type"] == "JWT"
    # AND POST /events takes the JWT authorizer only when events_authorization asks for it (default: write keys)
    assert pipeline.variables["events_authorization"]["default"] == "write_key"
    assert events["authorization_type"] == '${local.events_by_jwt ? "JWT" : "NONE"}'
    # AND the tokens are checked the same way
    sam_auth = resources["HttpApi"]["Properties"]["Auth"]["Authorizers"]["JwtAuthorizer"]
    authorizer = pipeline.resource("aws_apigatewayv2_authorizer", "jwt")
    assert authorizer["identity_sources"] == [sam_auth["IdentitySource"]]
    assert blocks(authorizer, "jwt_configuration") == [
        {"issuer": "${var.jwt_issuer}", "audience": "${var.jwt_audiences}"}
    ]
    assert resources["HttpApi"]["Properties"]["Auth"]["DefaultAuthorizer"] == "JwtAuthorizer"


def test_http_api_access_log_has_the_fields_of_sam(pipeline: Any, resources: dict[str, Any]) -> None:
    sam = json.loads(resources["HttpApi"]["Properties"]["AccessLogSettings"]["Format"])
    (settings,) = blocks(pipeline.resource("aws_apigatewayv2_stage", "default"), "access_log_settings")
    tf = dict(re.findall(r'(\w+) = "(\$context[\w.]+)"', settings["format"]))
    assert tf == sam


def test_parameter_defaults_match_sam(template: dict[str, Any]) -> None:
    variables = module(PIPELINE).variables
    for parameter, default in PARAMETERS.items():
        sam = template["Parameters"][parameter]["Default"]
        assert str(default(variables)) == str(sam), parameter
    # AND the stages' variables default as the module's
    stage = module(ENVIRONMENTS / STAGES[0]).variables
    for name in ("log_retention_days", "raw_retention_days", "api_throttling"):
        assert stage[name]["default"] == variables[name]["default"], name


# --- Alarms -------------------------------------------------------------------------------------------


# SAM parameter -> the attribute of modules/pipeline's var.settings that stands for it.
SETTINGS = {
    "MaxEventBytes": "max_event_bytes",
    "MaxBodyBytes": "max_body_bytes",
    "MaxBatchEvents": "max_batch_events",
    "MaxFileBytes": "max_file_bytes",
    "Enrichers": "enrichers",
    "PseudonymiseFields": "pseudonymise_fields",
    "PseudonymKeyName": "pseudonym_key_name",
    "CurrencyRatesKey": "currency_rates_key",
    "SchemaPrefix": "schema_prefix",
    "SchemaRefreshSeconds": "schema_refresh_seconds",
    "FileRangeBytes": "file_range_bytes",
    "MicrobatchBelowEvents": "microbatch_below_events",
    "GeoIpDbKey": "geoip_db_key",
    "Lake": "lake",
}


def test_settings_match_the_sam_parameters(pipeline: Any, template: dict[str, Any]) -> None:
    # GIVEN var.settings' attributes with their defaults: name = optional(type, default)
    declared = pipeline.variables["settings"]["type"]
    defaults = {
        name: json.loads(value) if value.startswith('"') else int(value)
        for name, value in re.findall(r"(\w+)\s*=\s*optional\(\w+,\s*(\"[^\"]*\"|\d+)\)", declared)
    }
    # THEN each stands for one SAM parameter, with the same default
    assert set(defaults) == set(SETTINGS.values())
    for parameter, attribute in SETTINGS.items():
        sam = template["Parameters"][parameter]["Default"]
        assert defaults[attribute] == sam, parameter
    # AND the validation takes the values the parameters take, no fewer and no more
    condition = " ".join(pipeline.variables["settings"]["validation"][0]["condition"].split())
    bounded = 0
    for parameter, attribute in SETTINGS.items():
        spec = template["Parameters"][parameter]
        for key, operator in (("MinValue", ">="), ("MaxValue", "<=")):
            if key in spec:
                assert f"var.settings.{attribute} {operator} {spec[key]}" in condition, (parameter, key)
                bounded += 1
    assert bounded >= 9
    # AND both set the same variables, the SSM name and the S3 locations built the same way
    tf = pipeline.locals["settings_environment"]
    sam_variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert set(tf) <= set(sam_variables)
    assert "/eventpipe/${local.name}/${var.settings.pseudonym_key_name}" in tf["EVENTPIPE_PSEUDONYM_KEY_PARAM"]
    assert "s3://${aws_s3_bucket.raw.id}/${var.settings.schema_prefix}" in tf["EVENTPIPE_SCHEMA_DIR"]
    assert "s3://${aws_s3_bucket.raw.id}/${var.settings.currency_rates_key}" in tf["EVENTPIPE_CURRENCY_RATES"]
    assert "s3://${aws_s3_bucket.raw.id}/${var.settings.geoip_db_key}" in tf["EVENTPIPE_GEOIP_DB"]
    # AND the key itself can never be a function setting (it would sit in the Terraform state)
    assert '"EVENTPIPE_PSEUDONYM_KEY",' in pipeline.variables["function_settings"]["validation"][0]["condition"]


def test_quicksight_is_the_definition_sam_nests(pipeline: Any, resources: dict[str, Any]) -> None:
    # GIVEN Terraform's CloudFormation stack of infrastructure/quicksight.yaml and SAM's nested stack
    stack = pipeline.resource("aws_cloudformation_stack", "quicksight")
    assert stack["count"] == "${var.enable_quicksight ? 1 : 0}"
    assert (
        pipeline.resolve(re.sub(r"^\$\{file\(\"(.+)\"\)\}$", r"\1", stack["template_body"]))
        == ROOT / "infrastructure" / "quicksight.yaml"
    )
    (sam_stack,) = [r for r in resources.values() if r["Type"] == "AWS::CloudFormation::Stack"]
    assert set(stack["parameters"]) == set(sam_stack["Properties"]["Parameters"])
    tables = {"MinuteTable": "minute_counts", "HourTable": "hour_uniques", "DayTable": "day_uniques"}
    for parameter, table in tables.items():
        assert stack["parameters"][parameter] == f'${{aws_glue_catalog_table.insights["{table}"].name}}'
    assert stack["parameters"]["AthenaWorkGroup"] == "${aws_athena_workgroup.insights.name}"
    assert pipeline.variables["enable_quicksight"]["default"] is False


def test_monitoring_reads_alerts_yml_itself() -> None:
    monitoring = module(MONITORING)
    source = re.fullmatch(r'\$\{yamldecode\(file\("(.+)"\)\)\}', monitoring.locals["source"])
    assert source, "modules/monitoring reads the alerts with yamldecode(file(...))"
    assert monitoring.resolve(source.group(1)) == ROOT / "monitoring" / "alerts.yml"
    # THEN the alarms are the expanded alerts of that file, and nothing else makes alarms
    alarm = monitoring.resource("aws_cloudwatch_metric_alarm", "this")
    assert alarm["for_each"] == "${local.alarms}"
    assert "for alert in local.source.alerts" in monitoring.locals["expanded"]
    assert "for alert in local.expanded" in monitoring.locals["alarms"]
    makers = [
        (path, name)
        for path in (PIPELINE, FUNCTION, MODULES / "deploy-role", MONITORING)
        for (kind, name) in module(path).resources
        if kind == "aws_cloudwatch_metric_alarm"
    ]
    assert makers == [(MONITORING, "this")]


def test_alarms_are_named_and_described_as_in_sam(alarms: ModuleType, alerts_config: dict[str, Any]) -> None:
    monitoring = module(MONITORING)
    alarm = monitoring.resource("aws_cloudwatch_metric_alarm", "this")
    # GIVEN the alarm scripts/alarms.py writes for the first alert
    first = alarms.expand(alerts_config)[0]
    sam = alarms.alarm_resource(first, alerts_config["resources"])["Properties"]
    # THEN the Terraform names it <stack>-<name> and describes it with the same sentence
    assert sam["AlarmName"] == {"Fn::Sub": "${AWS::StackName}-" + first["name"]}
    assert alarm["alarm_name"] == "${var.stack_name}-${each.key}"
    description = monitoring.locals["alarms"]
    assert 'description = "${alert.severity}: ${alert.description} Runbook: RUNBOOK.md#${alert.runbook}"' in description
    assert (
        sam["AlarmDescription"] == f"{first['severity']}: {first['description']} Runbook: RUNBOOK.md#{first['runbook']}"
    )
    # AND alarms and recoveries go to the topic of their severity, one topic per severity as in SAM
    assert alarm["alarm_actions"] == alarm["ok_actions"] == ["${aws_sns_topic.alarms[each.value.severity].arn}"]
    assert set(alarms.TOPICS) == {a["severity"] for a in alarms.expand(alerts_config)}
    # AND missing data is not a fault, unless an alert says otherwise (alarms.py's default)
    assert 'treat_missing_data = try(alert.treat_missing_data, "notBreaching")' in re.sub(r"\s+", " ", description)


def test_every_resource_the_alerts_name_is_given(pipeline: Any, alerts_config: dict[str, Any]) -> None:
    # modules/pipeline's monitored_resources feeds the dimensions {resource: <key>} of alerts.yml
    output = pipeline.outputs["monitored_resources"]["value"]
    named = set(re.findall(r"(\w+) = ", output))
    assert "for key, step in module.step" in output
    assert "for key, entry in module.entry" in output
    functions = set(pipeline.locals["functions"])
    assert set(alerts_config["resources"]) == (named - {"key", "step", "entry"}) | functions


# --- Analytics export ---------------------------------------------------------------------------------


def test_the_export_tables_match_sam(pipeline: Any, resources: dict[str, Any]) -> None:
    # GIVEN the Glue tables of the SAM template, by name
    sam = {
        props["Properties"]["TableInput"]["Name"]: props["Properties"]["TableInput"]
        for props in resources.values()
        if props["Type"] == "AWS::Glue::Table" and props["Properties"]["TableInput"]["Name"] != "events"
    }
    tf = pipeline.locals["insights_tables"]
    # THEN Terraform has the same tables, with the same columns and partition keys, in the analytics bucket
    assert set(tf) == set(sam) == {"minute_counts", "hour_uniques", "day_uniques"}
    for name, table in tf.items():
        columns = [(c["Name"], c["Type"]) for c in sam[name]["StorageDescriptor"]["Columns"]]
        assert [(c["name"], c["type"]) for c in table["columns"]] == columns, name
        partitions = [key["Name"] for key in sam[name]["PartitionKeys"]]
        assert partitions == (["dt", "hour"] if table["hourly"] else ["dt"]), name
        assert sam[name]["StorageDescriptor"]["Location"] == {"Fn::Sub": f"s3://${{AnalyticsBucket}}/{name}/"}
    resource = pipeline.resource("aws_glue_catalog_table", "insights")
    (storage,) = blocks(resource, "storage_descriptor")
    assert storage["location"] == "s3://${aws_s3_bucket.analytics.id}/${each.key}/"


def test_the_lake_table_matches_sam(pipeline: Any, resources: dict[str, Any]) -> None:
    # GIVEN the lake's Glue table in both
    sam = resources["EventsGlueTable"]["Properties"]["TableInput"]
    resource = pipeline.resource("aws_glue_catalog_table", "events")
    (storage,) = blocks(resource, "storage_descriptor")
    # THEN the same columns, partitions, formats and projection
    columns = [(c["Name"], c["Type"]) for c in sam["StorageDescriptor"]["Columns"]]
    assert [(c["name"], c["type"]) for c in pipeline.locals["lake_columns"]] == columns
    assert [k["Name"] for k in sam["PartitionKeys"]] == [k["name"] for k in blocks(resource, "partition_keys")]
    assert storage["input_format"] == sam["StorageDescriptor"]["InputFormat"]
    assert storage["location"] == "s3://${aws_s3_bucket.analytics.id}/events/"
    assert sam["StorageDescriptor"]["Location"] == {"Fn::Sub": "s3://${AnalyticsBucket}/events/"}
    assert "local.projection_dt, local.projection_hour" in resource["parameters"]
    assert sam["Parameters"]["projection.hour.digits"] == "2"
