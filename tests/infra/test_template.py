"""infrastructure/template.yaml holds to the code: entry points, settings, tables, workflow, trigger, export.

No network: the template is parsed and linted in-process; the SAM transform runs offline.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from eventpipe import settings
from eventpipe.adapters.aws import tables
from eventpipe.core.export import export_window
from eventpipe.core.insight_rows import InsightsRows, MinuteRow
from eventpipe.core.rawbatch import RAW_PREFIX, STAGED_PREFIX
from eventpipe.handlers.drops import INCOMING_PREFIX
from eventpipe.handlers.functions import FUNCTIONS
from eventpipe.handlers.http_api import route
from eventpipe.handlers.http_error import HttpError
from eventpipe.handlers.http_request import HttpRequest
from eventpipe.handlers.ingest import handle_ingest
from eventpipe.handlers.replay import handle_replay
from eventpipe.handlers.request_objects import REQUESTS_PREFIX
from eventpipe.lake.settings import LakeSettings
from eventpipe.localrun.runtime import LocalRuntime
from eventpipe.settings import MAX_BATCH_EVENTS, MAX_EVENT_BYTES, AwsResources, Settings
from tests.conftest import NOW_MS, FixedClock, make_event
from tests.infra.conftest import ROOT, TEMPLATE

if TYPE_CHECKING:
    from types import ModuleType

SETTINGS = ROOT / "src" / "eventpipe" / "settings.py"
LAKE_SETTINGS = ROOT / "src" / "eventpipe" / "lake" / "settings.py"
ASL = ROOT / "src" / "eventpipe" / "workflow" / "pipeline.asl.json"
# Read by Powertools (Logger, Metrics, Tracer), not by settings.py.
POWERTOOLS_VARIABLES = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}
# The functions whose code starts workflow executions (Ingestor, replay), the only ones given its ARN.
STARTS_WORKFLOWS = {"ingest", "replay", "start_batches"}


def entry_points() -> set[str]:
    """The Lambda entry points: src/lambda_pipeline.py exports one per function of the registry."""
    return set(FUNCTIONS)


def handler_of(properties: dict[str, Any]) -> str:
    module, _, name = properties["Handler"].partition(".")
    assert module == "lambda_pipeline", properties["Handler"]
    return name


def ref(logical_id: str) -> dict[str, str]:
    return {"Ref": logical_id}


def get_att(logical_id: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [logical_id, attribute]}


# --- functions -----------------------------------------------------------------------------------------


def test_every_entry_point_has_one_function_and_every_function_an_entry_point(functions: dict[str, Any]) -> None:
    # GIVEN the handlers the template names WHEN compared with lambda_pipeline's entry points
    handlers = [handler_of(properties) for properties in functions.values()]
    # THEN each entry point has exactly one function, and no function names anything else
    assert sorted(handlers) == sorted(entry_points())
    assert len(entry_points()) == 11


def test_functions_run_the_repository_code_on_python_312_arm64(functions: dict[str, Any]) -> None:
    for logical_id, properties in functions.items():
        assert properties["Runtime"] == "python3.12", logical_id
        assert properties["Architectures"] == ["arm64"], logical_id
        code = (TEMPLATE.parent / properties["CodeUri"]).resolve()
        assert (code / "lambda_pipeline.py").is_file(), f"{logical_id}: CodeUri {properties['CodeUri']}"


# Values an operator would give the parameters that name where a setting is.
EXAMPLE_VALUES = {
    "PseudonymKeyName": "pseudonym-key",
    "CurrencyRatesKey": "config/rates.json",
    "SchemaPrefix": "config/schemas/",
    "GeoIpDbKey": "config/geo/GeoLite2-City.mmdb",
}


def resolved(value: Any, parameters: dict[str, Any], *, conditions_true: bool = False) -> str:
    """An environment value as the stack would set it: a parameter's default, an !If branch, else a stand-in."""
    if isinstance(value, str):
        return value
    if "Ref" in value and value["Ref"] in parameters:
        return str(parameters[value["Ref"]]["Default"])
    if "Fn::If" in value:
        _condition, when_true, when_false = value["Fn::If"]
        return resolved(when_true if conditions_true else when_false, parameters, conditions_true=conditions_true)
    if "Fn::Sub" in value:
        text = value["Fn::Sub"].replace("${RawBucket}", "eventpipe-raw").replace("${AWS::StackName}", "eventpipe-dev")
        for name, example in EXAMPLE_VALUES.items():
            text = text.replace("${" + name + "}", example)
        return str(text)
    return "resolved"


def test_environment_names_are_the_ones_settings_reads(template: dict[str, Any], functions: dict[str, Any]) -> None:
    read_by_settings = {
        name for path in (SETTINGS, LAKE_SETTINGS) for name in re.findall(r'"(EVENTPIPE_[A-Z_]+)"', path.read_text())
    }
    parameters = template["Parameters"]
    for logical_id, properties in functions.items():
        variables = properties["Environment"]["Variables"]
        assert set(variables) <= read_by_settings | POWERTOOLS_VARIABLES, logical_id
        assert variables["POWERTOOLS_SERVICE_NAME"] == "eventpipe"
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "eventpipe"  # lambda_pipeline.NAMESPACE
        # WHEN the code parses them at cold start, with the parameters' defaults and with every option set
        environ = {name: resolved(value, parameters) for name, value in variables.items()}
        assert variables["EVENTPIPE_CURATED_TTL_DAYS"] == ref("CuratedTtlDays")
        resources = AwsResources.from_env(environ)
        Settings.from_env(environ, on_aws=True)
        all_set = {name: resolved(value, parameters, conditions_true=True) for name, value in variables.items()}
        Settings.from_env(all_set, on_aws=True)
        # THEN only the functions that start workflows know the state machine
        starts = handler_of(properties) in STARTS_WORKFLOWS
        assert (resources.state_machine_arn is not None) == starts, logical_id
        if starts:
            assert variables["EVENTPIPE_STATE_MACHINE_ARN"] == ref("PipelineStateMachine")
        # AND only ingest hands on the starts that fail (to start_batches) and a large file's ranges (to itself)
        assert (resources.start_function is not None) == (handler_of(properties) == "ingest"), logical_id
        assert (resources.range_function is not None) == (handler_of(properties) == "ingest"), logical_id
        if handler_of(properties) == "ingest":
            assert variables["EVENTPIPE_START_FUNCTION"] == {"Fn::Sub": "${AWS::StackName}-start_batches"}
            assert variables["EVENTPIPE_RANGE_FUNCTION"] == properties["FunctionName"]
        # AND only ingest puts requests on the micro-batching stream (and groups its objects)
        assert (resources.request_stream is not None) == (handler_of(properties) == "ingest"), logical_id


def test_failed_starts_and_file_ranges_are_asynchronous_invocations_not_polled_queues(
    resources: dict[str, Any], functions: dict[str, Any]
) -> None:
    # Lambda polls the queue of an SQS event source around the clock ($0.26 a month a queue, idle):
    # none has one (micro-batching's requests go through a Firehose stream, which costs nothing idle)
    polled = [
        p["Queue"]
        for f in functions.values()
        for e in f.get("Events", {}).values()
        if e["Type"] == "SQS"
        for p in [e["Properties"]]
    ]
    assert polled == []
    assert not {"StartRetryQueue", "FileRangeQueue", "RequestQueue"} & set(resources)
    # a start that fails again, or a range, is run twice more by Lambda, then goes to the dead-letter queue
    for logical_id in ("StartBatchesFunction", "IngestFunction"):
        invoke = resources[logical_id]["Properties"]["EventInvokeConfig"]
        assert invoke["MaximumRetryAttempts"] == 2
        assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == get_att("DeadLetterQueue", "Arn")
    # ingest may invoke exactly those two functions, named as the template names them
    ingest, _ = _statements(resources["IngestFunction"]["Properties"])
    (hand_on,) = [s for s in ingest if s["Action"] == "lambda:InvokeFunction"]
    targets = [r["Fn::Sub"].split(":function:", 1)[1] for r in hand_on["Resource"]]
    names = [resources[f]["Properties"]["FunctionName"]["Fn::Sub"] for f in ("StartBatchesFunction", "IngestFunction")]
    assert targets == names


def test_small_requests_go_through_a_firehose_stream_whose_objects_ingest_groups(resources: dict[str, Any]) -> None:
    # GIVEN the request stream and the object-created rule
    stream = resources["RequestStream"]["Properties"]
    destination = stream["ExtendedS3DestinationConfiguration"]
    rule = resources["IngestFunction"]["Properties"]["Events"]["ObjectCreated"]["Properties"]
    # THEN Firehose writes to the raw bucket's requests/, within a second or two (freshness), encrypted
    assert stream["DeliveryStreamType"] == "DirectPut"
    assert destination["BucketARN"] == get_att("RawBucket", "Arn")
    assert destination["Prefix"] == "requests/"
    assert destination["BufferingHints"]["IntervalInSeconds"] <= 2
    assert stream["DeliveryStreamEncryptionConfigurationInput"]["KeyType"] == "AWS_OWNED_CMK"
    # AND its role may write only there
    statements = resources["RequestStreamRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert [r for s in statements for r in s["Resource"]][1] == {"Fn::Sub": "${RawBucket.Arn}/requests/*"}
    # AND its objects invoke ingest, as files dropped in incoming/ do
    assert rule["Pattern"]["detail"]["object"]["key"] == [{"prefix": "incoming/"}, {"prefix": "requests/"}]
    # AND ingest may put records on it only
    ingest = resources["IngestFunction"]["Properties"]["Policies"][0]["Statement"]
    queue_requests = next(s for s in ingest if s["Sid"] == "QueueRequests")
    assert (queue_requests["Action"], queue_requests["Resource"]) == (
        "firehose:PutRecord",
        get_att("RequestStream", "Arn"),
    )


def test_environment_points_at_the_stack_resources(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["EVENTPIPE_BUCKET"] == ref("RawBucket")
    assert variables["EVENTPIPE_CURATED_TABLE"] == ref("CuratedTable")
    assert variables["EVENTPIPE_STATE_TABLE"] == ref("StateTable")
    assert variables["EVENTPIPE_INSIGHTS_TABLE"] == ref("InsightsTable")


# Each function's calls, read from src/eventpipe/adapters/aws/ (see the template's comments). A policy
# change that does not follow a code change, or the reverse, fails here.
EXPECTED_ACTIONS = {
    "ingest": {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "s3:ListBucket",
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:Query",
        # AsyncInvoker: a failed start to start_batches, a large file's byte ranges to ingest itself
        "lambda:InvokeFunction",
        "StepFunctionsExecutionPolicy",
        "dynamodb:Scan",  # DynamoAppStore.any_app: Scan with Limit 1, on the apps table only
        "dynamodb:BatchGetItem",  # GET /batches of a grouped request: DynamoCuratedStore.owners
        "firehose:PutRecord",  # FirehoseRequestStream: micro-batching
        "s3:DeleteObject",  # a requests/ object, once its requests are grouped
    },
    # DynamoBatchStore.get skips a batch done already; DynamoQuarantine.for_batch (Query) finds the batch's
    # quarantine records to release, add and remove write its shared item (PutItem, GetItem, DeleteItem) and
    # records of their own (BatchWriteItem); the curated puts; the insights delta (PutItem)
    "process_batch": {
        "s3:GetObject",
        "s3:ListBucket",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:BatchWriteItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "ssm:GetParameter",  # awsrun/secrets.py: the pseudonym key (s3:GetObject also reads config/)
    },
    # lake_stream.py: Parquet objects (and unreadable records) into the analytics bucket; the erasure
    # tombstones (Query); curated items of events an erasure left out (BatchWriteItem); its stream event
    # source, and the on-failure destination of that mapping (the dead-letter queue)
    "write_lake": {
        "s3:PutObject",
        "dynamodb:Query",
        "dynamodb:BatchWriteItem",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "sqs:SendMessage",
    },
    # InsightsFold: the minute items read and written, the dirty hours; its stream event source
    "fold_insights": {
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
    },
    "mark_done": {"dynamodb:UpdateItem"},
    "mark_failed": {"dynamodb:UpdateItem"},
    # start_queued_batch: DynamoBatchStore.get, StepFunctionsStarter (invoked asynchronously by ingest)
    "start_batches": {"dynamodb:GetItem", "StepFunctionsExecutionPolicy"},
    "export_insights": {
        "dynamodb:Query",
        "dynamodb:DeleteItem",
        "s3:PutObject",
        "s3:GetObject",
        "s3:DeleteObject",
        "s3:ListBucket",
    },
    # adapters/aws/erasure.py: the lake and the raw bucket rewritten with their old versions deleted,
    # curated items and quarantine records deleted; the settings files and the pseudonym key
    "erase": {
        "s3:GetObject",
        "s3:GetObjectVersion",  # noncurrent versions read, deleted where they hold the user (requests/ too)
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "ssm:GetParameter",
        "dynamodb:BatchWriteItem",
        "dynamodb:Scan",
        # DynamoQuarantine.remove: the batch's items read, its shared item rewritten under its version;
        # the erasure's tombstone (PutItem, erasure_tombstones.py)
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:UpdateItem",  # LakeLease.want: a running compaction stops after its merge
    },
    # lake_compaction.py: list, read, write and delete the lake's objects and journals; unfinished batches;
    # the lake's lease (lake_lease.py: PutItem to take, GetItem before each merge, DeleteItem to release)
    "compact_lake": {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:DeleteItem",
    },
    "replay": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Scan",
        "dynamodb:Query",
        "s3:PutObject",
        "StepFunctionsExecutionPolicy",
    },
}


def _statements(properties: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    statements, templates = [], []
    for policy in properties.get("Policies", []):
        if isinstance(policy, dict) and "Statement" in policy:
            statements += policy["Statement"]
        else:
            assert isinstance(policy, dict), f"a managed policy by name: {policy}"
            assert len(policy) == 1, policy
            templates += list(policy)
    return statements, templates


def test_each_function_may_make_exactly_the_calls_its_code_makes(functions: dict[str, Any]) -> None:
    for properties in functions.values():
        statements, templates = _statements(properties)
        actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
        assert actions | set(templates) == EXPECTED_ACTIONS[handler_of(properties)], handler_of(properties)


def test_policies_name_their_resources(functions: dict[str, Any]) -> None:
    for logical_id, properties in functions.items():
        statements, templates = _statements(properties)
        assert set(templates) <= {"StepFunctionsExecutionPolicy"}, logical_id
        for statement in statements:
            assert statement["Effect"] == "Allow"
            actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
            assert not any("*" in action for action in actions), (logical_id, actions)
            # a literal "*" is refused; an object prefix such as "<bucket>/raw/*" names one bucket and prefix
            assert statement["Resource"] != "*", (logical_id, statement)
            assert "Ref" in json.dumps(statement["Resource"]) or "Fn::" in json.dumps(statement["Resource"])


# --- tables --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("logical_id", "spec"),
    [
        ("CuratedTable", tables.CURATED_TABLE),
        ("StateTable", tables.STATE_TABLE),
        ("InsightsTable", tables.INSIGHTS_TABLE),
        ("AppsTable", tables.APPS_TABLE),
    ],
)
def test_tables_have_the_key_schemas_of_tables_py(resources: dict[str, Any], logical_id: str, spec: Any) -> None:
    properties = resources[logical_id]["Properties"]
    assert properties["KeySchema"] == spec["KeySchema"]
    by_name = lambda items: sorted(items, key=lambda item: item["AttributeName"])  # noqa: E731
    assert by_name(properties["AttributeDefinitions"]) == by_name(spec["AttributeDefinitions"])
    assert properties["BillingMode"] == spec["BillingMode"] == "PAY_PER_REQUEST"
    assert properties.get("GlobalSecondaryIndexes", []) == spec.get("GlobalSecondaryIndexes", [])
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert resources[logical_id]["DeletionPolicy"] == "Retain"


def test_the_tables_whose_items_carry_a_ttl_expire_them_and_no_other(resources: dict[str, Any]) -> None:
    # insights_delta.py writes expires_at on batches' insights deltas, dynamodb_curated.py on every
    # curated event (the deduplication window), erasure_tombstones.py on the erasures' tombstones (state
    # table), lake_lease.py on the lake's lease (state table: a leftover lease goes a day after it expired),
    # dynamodb_quarantine.py on quarantine items (state table, RawRetentionDays); nothing else writes it
    writers = [
        p.name
        for p in (ROOT / "src" / "eventpipe" / "adapters" / "aws").glob("*.py")
        if "TTL_ATTRIBUTE" in p.read_text()
    ]
    expected = [
        "dynamodb_curated.py",
        "dynamodb_quarantine.py",
        "erasure_tombstones.py",
        "insights_delta.py",
        "lake_lease.py",
        "tables.py",
    ]
    assert sorted(writers) == expected
    for table in ("InsightsTable", "CuratedTable", "StateTable"):
        ttl = resources[table]["Properties"]["TimeToLiveSpecification"]
        assert ttl == {"AttributeName": tables.TTL_ATTRIBUTE, "Enabled": True}


# --- workflow ------------------------------------------------------------------------------------------


def test_workflow_substitutions_cover_every_placeholder_of_the_asl(
    resources: dict[str, Any], functions: dict[str, Any]
) -> None:
    machine = resources["PipelineStateMachine"]["Properties"]
    assert (TEMPLATE.parent / machine["DefinitionUri"]).resolve() == ASL
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL.read_text(encoding="utf-8")))
    substitutions = machine["DefinitionSubstitutions"]
    assert set(substitutions) == placeholders
    invoked = set()
    for name, value in substitutions.items():
        # ProcessBatchFunctionArn -> the function whose handler is lambda_pipeline.process_batch
        step = re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("FunctionArn")).lower()
        logical_id = value["Fn::GetAtt"][0]
        assert value == get_att(logical_id, "Arn")
        assert handler_of(functions[logical_id]) == step
        invoked.add(logical_id)
    # its role may invoke exactly those functions
    allowed = {
        policy["LambdaInvokePolicy"]["FunctionName"]["Ref"]
        for policy in machine["Policies"]
        if "LambdaInvokePolicy" in policy
    }
    assert allowed == invoked


# What Step Functions calls as the state machine's role to deliver its logs to CloudWatch Logs (Step
# Functions guide, "IAM policies for logging to CloudWatch Logs"); none of them takes a resource ARN.
LOG_DELIVERY_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


def test_the_workflow_role_may_deliver_its_logs(resources: dict[str, Any]) -> None:
    # GIVEN the state machine, which logs to CloudWatch Logs
    machine = resources["PipelineStateMachine"]["Properties"]
    assert machine["Logging"]["Destinations"]
    # WHEN its role's own statements are read (the policy templates grant lambda:InvokeFunction only)
    statements = [s for policy in machine["Policies"] if "Statement" in policy for s in policy["Statement"]]
    assert {next(iter(policy)) for policy in machine["Policies"] if "Statement" not in policy} == {"LambdaInvokePolicy"}
    # THEN it may make the log delivery calls, on "*" as they require, and nothing else
    assert len(statements) == 1
    (statement,) = statements
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == LOG_DELIVERY_ACTIONS
    assert statement["Resource"] == "*"


def test_workflow_is_express_with_logs_and_tracing_at_a_fixed_rate(resources: dict[str, Any]) -> None:
    # Express: the batch record, not the execution, is the source of truth (adapters/aws/stepfunctions.py)
    machine = resources["PipelineStateMachine"]["Properties"]
    assert machine["Type"] == "EXPRESS"
    assert json.loads(ASL.read_text(encoding="utf-8"))["TimeoutSeconds"] <= 300  # Express's limit
    assert machine["Tracing"] == {"Enabled": True}
    rule = resources["WorkflowSamplingRule"]["Properties"]["SamplingRule"]
    assert (rule["FixedRate"], rule["ReservoirSize"]) == (0.01, 0)
    assert rule["ServiceName"] == get_att("PipelineStateMachine", "Name")
    destination = machine["Logging"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]
    assert destination == get_att("StateMachineLogGroup", "Arn")


# --- HTTP API ------------------------------------------------------------------------------------------


def test_routes_go_to_ingest_and_only_health_events_and_the_tracker_are_open(
    resources: dict[str, Any], functions: dict[str, Any]
) -> None:
    routes = {}
    for logical_id, properties in functions.items():
        for event in properties.get("Events", {}).values():
            if event["Type"] == "HttpApi":
                assert handler_of(properties) == "ingest", logical_id
                assert event["Properties"]["ApiId"] == ref("HttpApi")
                key = (event["Properties"]["Method"], event["Properties"]["Path"])
                routes[key] = event["Properties"].get("Auth", {}).get("Authorizer")
    assert routes == {
        ("POST", "/events"): "NONE",  # the function checks the write key
        ("OPTIONS", "/events"): "NONE",  # the CORS preflight
        ("GET", "/batches/{batch_id}"): None,
        ("GET", "/insights"): None,
        ("GET", "/health"): "NONE",
        ("GET", "/tracker.js"): "NONE",
    }
    auth = resources["HttpApi"]["Properties"]["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["JwtConfiguration"] == {"issuer": ref("JwtIssuer"), "audience": ref("JwtAudience")}
    throttling = resources["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert throttling == {
        "ThrottlingBurstLimit": ref("ThrottlingBurstLimit"),
        "ThrottlingRateLimit": ref("ThrottlingRateLimit"),
    }


@pytest.mark.parametrize("path", ["/events", "/batches/b-1", "/insights", "/health"])
def test_each_route_is_one_the_handler_serves(path: str) -> None:
    # a wrong method answers 405 on a route the handler knows, 404 on one it does not
    with pytest.raises(HttpError) as raised:
        route(HttpRequest("DELETE", path, {}, {}, b""), services=None)  # type: ignore[arg-type]
    assert raised.value.status == 405


# --- file drops ----------------------------------------------------------------------------------------


def test_only_objects_under_incoming_and_requests_trigger_ingest(
    resources: dict[str, Any], functions: dict[str, Any]
) -> None:
    bucket = resources["RawBucket"]["Properties"]
    assert bucket["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    rules = [
        (logical_id, event["Properties"])
        for logical_id, properties in functions.items()
        for event in properties.get("Events", {}).values()
        if event["Type"] == "EventBridgeRule"
    ]
    assert len(rules) == 1
    logical_id, rule = rules[0]
    assert handler_of(functions[logical_id]) == "ingest"
    pattern = rule["Pattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"]["name"] == [ref("RawBucket")]
    assert pattern["detail"]["object"]["key"] == [{"prefix": INCOMING_PREFIX}, {"prefix": REQUESTS_PREFIX}]
    # the pipeline's own writes are outside it
    for prefix in (RAW_PREFIX, STAGED_PREFIX):
        assert not prefix.startswith(INCOMING_PREFIX)


def test_canned_eventbridge_event_matches_the_rule(functions: dict[str, Any]) -> None:
    event = json.loads((ROOT / "tests" / "events" / "eventbridge_s3_object_created.json").read_text())
    pattern = functions["IngestFunction"]["Events"]["ObjectCreated"]["Properties"]["Pattern"]
    assert event["source"] in pattern["source"]
    assert event["detail-type"] in pattern["detail-type"]
    assert event["detail"]["object"]["key"].startswith(pattern["detail"]["object"]["key"][0]["prefix"])


def test_asynchronous_failures_end_in_the_encrypted_dead_letter_queue(
    resources: dict[str, Any], functions: dict[str, Any]
) -> None:
    dlq = get_att("DeadLetterQueue", "Arn")
    assert resources["DeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"] is True
    rule_names = []
    for logical_id, properties in functions.items():
        asynchronous = [
            e for e in properties.get("Events", {}).values() if e["Type"] in ("EventBridgeRule", "Schedule")
        ]
        if not asynchronous:
            continue
        invoke = properties["EventInvokeConfig"]
        assert invoke["DestinationConfig"]["OnFailure"] == {"Type": "SQS", "Destination": dlq}, logical_id
        for event in asynchronous:
            assert event["Properties"]["DeadLetterConfig"] == {"Arn": dlq}, logical_id
            rule_names.append(event["Properties"].get("RuleName") or event["Properties"].get("Name"))
    assert {handler_of(p) for p in functions.values() if "EventInvokeConfig" in p} == {
        "ingest",
        "export_insights",
        "replay",
        "compact_lake",
        "start_batches",
    }
    # EventBridge may send dead letters only for these rules
    statement = resources["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    allowed = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert sorted(arn["Fn::Sub"].rsplit("/", 1)[1] for arn in allowed) == sorted(n["Fn::Sub"] for n in rule_names)


def test_export_runs_every_five_minutes(functions: dict[str, Any]) -> None:
    (event,) = functions["ExportInsightsFunction"]["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == "rate(5 minutes)"


def test_pending_batches_left_behind_are_restarted_every_ten_minutes(functions: dict[str, Any]) -> None:
    # GIVEN the replay function's one event: a schedule
    replay = functions["ReplayFunction"]
    (event,) = replay["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == "rate(10 minutes)"
    assert event["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-replay-pending"}
    # THEN it asks for pending batches only (failed ones wait for an operator), in whole seconds
    answer = json.loads(event["Properties"]["Input"])
    assert set(answer) == {"pending_older_than_s"}
    older_than_s = answer["pending_older_than_s"]
    assert type(older_than_s) is int
    # AND only for batches whose first execution has closed: ingest starts it within its own timeout,
    # and the workflow's TimeoutSeconds ends it; a batch still pending after both was lost
    workflow_timeout_s = json.loads(ASL.read_text(encoding="utf-8"))["TimeoutSeconds"]
    assert older_than_s >= workflow_timeout_s + functions["IngestFunction"]["Timeout"]
    # AND its failed invocations, and undeliverable schedule events, end in the dead-letter queue
    assert replay["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"] == get_att(
        "DeadLetterQueue", "Arn"
    )
    assert event["Properties"]["DeadLetterConfig"] == {"Arn": get_att("DeadLetterQueue", "Arn")}


def test_the_handler_restarts_what_the_schedule_asks_for(
    functions: dict[str, Any], settings: Settings, clock: FixedClock
) -> None:
    (event,) = functions["ReplayFunction"]["Events"].values()
    older_than_ms = json.loads(event["Properties"]["Input"])["pending_older_than_s"] * 1000
    # GIVEN batches whose workflow did not start: one received just over that age, one just under
    runtime = LocalRuntime(settings, clock=clock, defer_to=lambda: None)
    try:
        clock.now = NOW_MS - older_than_ms - 1
        lost = handle_ingest({"events": [make_event()]}, runtime)["batch_id"]
        clock.now = NOW_MS - older_than_ms + 1
        handle_ingest({"events": [make_event()]}, runtime)
        # WHEN the handler gets the schedule's input THEN only the older one is started again
        clock.now = NOW_MS
        assert handle_replay(json.loads(event["Properties"]["Input"]), runtime)["unfinished"] == [lost]
    finally:
        runtime.close()


def test_lifecycle_expires_pipeline_prefixes_but_keeps_insights(resources: dict[str, Any]) -> None:
    from eventpipe.adapters.aws.erasure import DROPPED_PREFIXES

    rules = resources["RawBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    expiring = {rule.get("Prefix"): rule["ExpirationInDays"] for rule in rules if "ExpirationInDays" in rule}
    # THEN every prefix that holds events (the ones the erasure reads for a user's lines) expires, and no
    # other (config/ holds the schemas and rates)
    assert set(expiring) == {*DROPPED_PREFIXES, REQUESTS_PREFIX, RAW_PREFIX, STAGED_PREFIX}
    assert {INCOMING_PREFIX, "rejected/"} <= set(DROPPED_PREFIXES)
    # AND all but the staged/ objects of earlier versions after RawRetentionDays, as the quarantine's items
    assert {prefix for prefix, days in expiring.items() if days != {"Ref": "RawRetentionDays"}} == {STAGED_PREFIX}


def test_the_lake_expires_after_lake_retention_days_only_when_it_is_set(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    from eventpipe.adapters.aws.s3_lake import LAKE_PREFIX, UNREADABLE_PREFIX

    rules = resources["AnalyticsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    conditional = [rule["Fn::If"] for rule in rules if "Fn::If" in rule]
    assert {name for name, _, _ in conditional} == {"LakeExpires"}
    assert all(otherwise == {"Ref": "AWS::NoValue"} for _, _, otherwise in conditional)
    expiring = {rule["Prefix"]: rule["ExpirationInDays"] for _, rule, _ in conditional}
    assert expiring == {LAKE_PREFIX: {"Ref": "LakeRetentionDays"}, UNREADABLE_PREFIX: {"Ref": "LakeRetentionDays"}}
    # 0, the default, keeps the lake: no rule at all (S3 refuses an expiration of 0 days)
    assert template["Parameters"]["LakeRetentionDays"]["Default"] == 0
    assert template["Conditions"]["LakeExpires"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "LakeRetentionDays"}, 0]}]}
    # AND the exported insights never expire
    assert all("ExpirationInDays" not in rule for rule in rules if "Fn::If" not in rule)


def test_quarantine_items_expire_with_the_raw_batches(template: dict[str, Any]) -> None:
    # the functions' quarantine writes expires_at RawRetentionDays on; the state table's TTL deletes it
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["EVENTPIPE_QUARANTINE_TTL_DAYS"] == {"Ref": "RawRetentionDays"}
    ttl = template["Resources"]["StateTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expires_at", "Enabled": True}


# --- insights export -----------------------------------------------------------------------------------


class _Store:
    def read(self, since_minute: int, until_minute: int, *, funnel: bool = True) -> InsightsRows:
        row = MinuteRow(1_795_845_600, events={"page_view": 3}, revenue=1.5, rejected={"schema_violation": 1})
        rows = [row] if since_minute <= row.minute < until_minute else []
        return InsightsRows(minutes=rows, funnel=[2, 1, 0])


class _Bucket:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        self.objects[key] = data

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def keys(self, prefix: str) -> list[str]:
        return sorted(key for key in self.objects if key.startswith(prefix))

    def get(self, key: str) -> bytes:
        return self.objects[key]


@pytest.mark.parametrize(
    ("logical_id", "table", "partitions"),
    [
        ("InsightsGlueTable", "minute_counts", ["dt", "hour"]),
        ("HourUniquesGlueTable", "hour_uniques", ["dt", "hour"]),
        ("DayUniquesGlueTable", "day_uniques", ["dt"]),
    ],
)
def test_glue_tables_read_what_the_export_writes(
    resources: dict[str, Any], logical_id: str, table: str, partitions: list[str]
) -> None:
    # GIVEN one exported minute
    bucket = _Bucket()
    result = export_window(_Store(), bucket, since_minute=1_795_845_600, until_minute=1_795_845_660)  # type: ignore[arg-type]
    (key,) = [key for key in result.keys if key.startswith(f"{table}/")]
    line = json.loads(bucket.objects[key].splitlines()[0])
    # THEN the table's columns are the line's fields, with matching types
    properties = resources[logical_id]["Properties"]["TableInput"]
    assert properties["Name"] == table
    columns = {c["Name"]: c["Type"] for c in properties["StorageDescriptor"]["Columns"]}
    glue_type = {str: "string", int: "bigint", float: "double", dict: "map<string,bigint>"}
    assert columns == {name: glue_type[type(value)] for name, value in line.items()}
    # AND partition projection finds the object where the export put it, in the analytics bucket
    assert [key["Name"] for key in properties["PartitionKeys"]] == partitions
    template = properties["Parameters"]["storage.location.template"]["Fn::Sub"]
    assert template.startswith(f"s3://${{AnalyticsBucket}}/{table}/")
    assert key.startswith(
        template.removeprefix("s3://${AnalyticsBucket}/").replace("${!dt}", "2026-11-28").replace("${!hour}", "06")
    )


# --- cfn-lint ------------------------------------------------------------------------------------------


def _lint_errors(matches: list[Any]) -> list[str]:
    return [f"{m.rule.id} {m.message} ({m.linenumber})" for m in matches]


def test_cfn_lint_passes_on_the_template() -> None:
    from cfnlint.api import lint_file

    assert _lint_errors(lint_file(TEMPLATE)) == []


@pytest.fixture(scope="module")
def translated(sam_translate: ModuleType) -> dict[str, Any]:
    pytest.importorskip("samtranslator", reason="aws-sam-translator is needed to expand the SAM template")
    result: dict[str, Any] = sam_translate.translate(TEMPLATE)
    return result


def test_cfn_lint_passes_on_the_translated_template(translated: dict[str, Any]) -> None:
    # Only the expanded template shows SAM's roles, permissions and rules, and cycles between them.
    from cfnlint.api import lint

    assert _lint_errors(lint(json.dumps(translated))) == []


def test_cfn_lint_on_the_translated_template_finds_a_dependency_cycle(translated: dict[str, Any]) -> None:
    # GIVEN the bucket notifying the ingest function directly (the design the template avoids)
    from cfnlint.api import lint

    broken = json.loads(json.dumps(translated))
    notification = {
        "LambdaConfigurations": [{"Event": "s3:ObjectCreated:*", "Function": get_att("IngestFunction", "Arn")}]
    }
    broken["Resources"]["RawBucket"]["Properties"]["NotificationConfiguration"] = notification
    # THEN the lint reports the cycle bucket -> function -> role -> bucket
    assert any(m.rule.id == "E3004" for m in lint(json.dumps(broken)))


def test_translated_api_authorizes_every_route_but_health_events_and_the_tracker(translated: dict[str, Any]) -> None:
    body = translated["Resources"]["HttpApi"]["Properties"]["Body"]
    authorizers = body["components"]["securitySchemes"]
    assert [scheme["x-amazon-apigateway-authorizer"]["type"] for scheme in authorizers.values()] == ["jwt"]
    for path, methods in body["paths"].items():
        for method, operation in methods.items():
            secured = operation.get("security", [])
            # /events: write keys, checked by the function; /tracker.js: the public script
            open_route = path in ("/health", "/events", "/tracker.js")
            assert (secured == [{"NONE": []}] or secured == []) == open_route, (method, path, secured)


def test_functions_are_named_after_the_stack_and_fit_lambdas_64_characters(
    template: dict[str, Any], functions: dict[str, Any]
) -> None:
    # GIVEN every function's FunctionName: <stack>-<entry point>, so `aws lambda invoke --function-name
    # eventpipe-dev-ingest` works as docs/aws.md shows
    for properties in functions.values():
        assert properties["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-" + handler_of(properties)}
    # THEN with the longest stack name the header allows, every name fits Lambda's 64 characters
    header = TEMPLATE.read_text(encoding="utf-8")
    allowed = re.search(r"Stack names: at most (\d+) characters", header)
    assert allowed
    longest = max(len(handler_of(properties)) for properties in functions.values())
    assert int(allowed.group(1)) + 1 + longest == 64
    # AND the deploy script's stacks (eventpipe-<stage>) are within it
    script = (ROOT / "scripts" / "deploy_sam.sh").read_text(encoding="utf-8")
    stages = re.search(r'^STAGES="([^"]+)"', script, re.M)
    assert stages
    assert all(len(f"eventpipe-{stage}") <= int(allowed.group(1)) for stage in stages.group(1).split())


# SAM parameter -> the setting it feeds (settings.py reads the variable; docs/settings.md documents it).
SETTING_PARAMETERS = {
    "MaxEventBytes": "EVENTPIPE_MAX_EVENT_BYTES",
    "MaxBodyBytes": "EVENTPIPE_MAX_BODY_BYTES",
    "MaxBatchEvents": "EVENTPIPE_MAX_BATCH_EVENTS",
    "MaxFileBytes": "EVENTPIPE_MAX_FILE_BYTES",
    "Enrichers": "EVENTPIPE_ENRICHERS",
    "PseudonymiseFields": "EVENTPIPE_PSEUDONYMISE_FIELDS",
    "PseudonymKeyName": "EVENTPIPE_PSEUDONYM_KEY_PARAM",
    "CurrencyRatesKey": "EVENTPIPE_CURRENCY_RATES",
    "SchemaPrefix": "EVENTPIPE_SCHEMA_DIR",
    "SchemaRefreshSeconds": "EVENTPIPE_SCHEMA_REFRESH_S",
    "FileRangeBytes": "EVENTPIPE_FILE_RANGE_BYTES",
    "MicrobatchBelowEvents": "EVENTPIPE_MICROBATCH_BELOW_EVENTS",
    "GeoIpDbKey": "EVENTPIPE_GEOIP_DB",
    "Lake": "EVENTPIPE_LAKE",
}


def test_settings_are_parameters_whose_defaults_are_the_codes_defaults(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    parameters = template["Parameters"]
    for parameter, variable in SETTING_PARAMETERS.items():
        assert parameter in parameters, parameter
        used = json.dumps(variables[variable])
        assert json.dumps({"Ref": parameter}) in used or "${" + parameter + "}" in used, variable
    # the defaults change nothing: parsed, they give the settings of an empty environment
    environ = {name: resolved(value, parameters) for name, value in variables.items()}
    defaults, parsed = Settings.from_env({}, on_aws=True), Settings.from_env(environ, on_aws=True)
    assert (parsed.limits, parsed.enrichment, parsed.schema_refresh_s, parsed.file_range_bytes) == (
        defaults.limits,
        defaults.enrichment,
        defaults.schema_refresh_s,
        defaults.file_range_bytes,
    )
    assert parsed.geoip_db_uri is None
    assert LakeSettings.from_env(environ) == LakeSettings.from_env({})
    names = {"EVENTPIPE_BUCKET": "b", "EVENTPIPE_CURATED_TABLE": "c", "EVENTPIPE_STATE_TABLE": "s"}
    names["EVENTPIPE_INSIGHTS_TABLE"] = "i"
    assert AwsResources.from_env(names | environ).microbatch_below_events == AwsResources.microbatch_below_events
    # the most each setting allows: a stack cannot be deployed with a value its functions would refuse
    assert {name: parameters[name]["MaxValue"] for name in PARAMETER_MOST} == PARAMETER_MOST
    # and the least, where a setting has a floor above 1: the stack takes every value its functions take
    assert {name: parameters[name]["MinValue"] for name in PARAMETER_LEAST} == PARAMETER_LEAST


PARAMETER_LEAST = {
    "SchemaRefreshSeconds": settings.MIN_SCHEMA_REFRESH_S,
    "FileRangeBytes": settings.MIN_FILE_RANGE_BYTES,
}

PARAMETER_MOST = {
    "MaxEventBytes": MAX_EVENT_BYTES,
    "MaxBatchEvents": MAX_BATCH_EVENTS,
    "MicrobatchBelowEvents": MAX_BATCH_EVENTS,
    "MaxBodyBytes": settings.MAX_BODY_BYTES,
    "MaxFileBytes": settings.MAX_FILE_BYTES,
    "SchemaRefreshSeconds": settings.MAX_SCHEMA_REFRESH_S,
    "CuratedTtlDays": settings.MAX_DAYS,
    "RawRetentionDays": settings.MAX_DAYS,
}


def test_the_pseudonym_key_is_never_in_the_template_only_its_parameter_name(
    template: dict[str, Any], functions: dict[str, Any]
) -> None:
    assert 'EVENTPIPE_PSEUDONYM_KEY"' not in json.dumps(template)
    assert all("EVENTPIPE_PSEUDONYM_KEY" not in p["Environment"]["Variables"] for p in functions.values())
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    name = resolved(variables["EVENTPIPE_PSEUDONYM_KEY_PARAM"], template["Parameters"], conditions_true=True)
    assert name == "/eventpipe/eventpipe-dev/pseudonym-key"  # under the stack's own path
    # AND only process_batch (which pseudonymises) and erase (which matches the stored HMAC) may read it,
    # and only parameters under that path
    for properties in functions.values():
        statements, _ = _statements(properties)
        ssm = [s for s in statements if "ssm:GetParameter" in json.dumps(s["Action"])]
        if handler_of(properties) not in ("process_batch", "erase"):
            assert ssm == []
            continue
        (statement,) = ssm
        assert statement["Resource"]["Fn::Sub"].endswith(":parameter/eventpipe/${AWS::StackName}/*")
    rule = template["Rules"]["PseudonymiseNeedsKey"]
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "PseudonymKeyName"}, ""]}]}


def test_the_analytics_bucket_is_private_encrypted_and_written_by_the_export_and_the_lake_only(
    resources: dict[str, Any],
) -> None:
    bucket = resources["AnalyticsBucket"]["Properties"]
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    writers = [
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
        and "AnalyticsBucket" in json.dumps(resource["Properties"].get("Policies", []))
    ]
    assert sorted(writers) == ["CompactLakeFunction", "EraseFunction", "ExportInsightsFunction", "WriteLakeFunction"]
    # write_lake writes the lake's objects (and its unreadable records) only
    (statement,) = [
        s
        for s in resources["WriteLakeFunction"]["Properties"]["Policies"][0]["Statement"]
        if "AnalyticsBucket" in json.dumps(s)
    ]
    assert statement["Action"] == "s3:PutObject"
    assert statement["Resource"] == [
        {"Fn::Sub": "${AnalyticsBucket.Arn}/events/*"},
        {"Fn::Sub": "${AnalyticsBucket.Arn}/lake-unreadable/*"},
    ]
