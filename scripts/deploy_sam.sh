#!/usr/bin/env bash
# Build and deploy infrastructure/template.yaml (SAM) as the stack eventpipe-<stage>.
# Run `scripts/deploy_sam.sh --help` for the options. Works with bash 3.2 (macOS) and later.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATE="infrastructure/template.yaml"
BUILD_DIR=".aws-sam/build"
BUILT_TEMPLATE="$BUILD_DIR/template.yaml"
STAGES="dev prod"

usage() {
  cat <<'EOF'
Usage: scripts/deploy_sam.sh --stage dev|prod --jwt-issuer URL --jwt-audience AUD[,AUD...]
                             [--profile NAME] [--region REGION] [--alarm-email ADDRESS]
                             [--parameter Key=Value]... [--s3-bucket NAME] [--use-container]
                             [--dry-run]

Builds infrastructure/template.yaml with `sam build` (dependencies from requirements.txt at the
repository root, since the functions' CodeUri is ../src) and deploys it with `sam deploy` as the
CloudFormation stack eventpipe-<stage>. Commands run from the repository root.

The functions run Python 3.12 on arm64. `sam build` needs python3.12 on PATH, and fetches the arm64
wheels of the dependencies; with --use-container it builds in SAM's python3.12 arm64 build image
instead (needs Docker or a compatible container runtime, and no local python3.12).

  --stage STAGE          dev or prod; the stack is eventpipe-STAGE
  --profile NAME         AWS CLI profile (default: $AWS_PROFILE)
  --region REGION        AWS region, e.g. eu-west-1 (default: $AWS_REGION)
  --jwt-issuer URL       JwtIssuer: https URL of the token issuer the HTTP API trusts
  --jwt-audience LIST    JwtAudience: accepted audiences, comma-separated
  --alarm-email ADDRESS  AlarmEmail: subscribed to the alarm topics
  --parameter Key=Value  any other parameter of the template (repeatable), e.g. LogRetentionDays=365;
                         GlueDatabaseName defaults to eventpipe_STAGE (one Glue database per stack)
  --s3-bucket NAME       bucket for the packaged code (default: SAM's managed bucket, --resolve-s3)
  --use-container        build in a container (sam build --use-container): no local python3.12 needed
  --dry-run              print the commands, run nothing
  -h, --help             this help

Every parameter of the template without a default must be given; the script refuses to run,
with a message, when a setting is missing or invalid.
EOF
}

warn() {
  echo "deploy_sam.sh: warning: $*" >&2
}

fail() {
  echo "deploy_sam.sh: error: $*" >&2
  echo "Run scripts/deploy_sam.sh --help for the options." >&2
  exit 2
}

# The template's parameters, one "Name has_default" a line (1 when it has a Default).
template_parameters() {
  awk '
    /^Parameters:/ { inside = 1; next }
    inside && /^[^ #]/ { inside = 0 }
    inside && /^  [A-Za-z0-9]+:/ { name = $1; sub(/:$/, "", name); order[++n] = name; has[name] = 0; next }
    inside && /^    Default:/ { has[name] = 1 }
    END { for (i = 1; i <= n; i++) print order[i], has[order[i]] }
  ' "$ROOT/$TEMPLATE"
}

print_command() {
  local quoted
  quoted="$(printf '%q ' "$@")"
  echo "${quoted% }"
}

stage=""
profile="${AWS_PROFILE:-}"
region="${AWS_REGION:-}"
s3_bucket=""
use_container=false
dry_run=false
# The parameter overrides, in the order given: names and values at the same index.
parameter_names=()
parameter_values=()

# Print the value given for parameter $1; fail (status 1) when none was given.
parameter_value() {
  local i
  for ((i = 0; i < ${#parameter_names[@]}; i++)); do
    if [[ "${parameter_names[i]}" == "$1" ]]; then
      echo "${parameter_values[i]}"
      return 0
    fi
  done
  return 1
}

set_parameter() {
  local name="$1" value="$2" i
  [[ "$name" =~ ^[A-Za-z0-9]+$ ]] || fail "parameter name '$name' is not a template parameter name"
  for ((i = 0; i < ${#parameter_names[@]}; i++)); do
    if [[ "${parameter_names[i]}" == "$name" ]]; then
      parameter_values[i]="$value"
      return 0
    fi
  done
  parameter_names+=("$name")
  parameter_values+=("$value")
}

needs_value() {
  [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || fail "$1 needs a value"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --stage) needs_value "$@"; stage="$2"; shift 2 ;;
    --profile) needs_value "$@"; profile="$2"; shift 2 ;;
    --region) needs_value "$@"; region="$2"; shift 2 ;;
    --jwt-issuer) needs_value "$@"; set_parameter JwtIssuer "$2"; shift 2 ;;
    --jwt-audience) needs_value "$@"; set_parameter JwtAudience "$2"; shift 2 ;;
    --alarm-email) needs_value "$@"; set_parameter AlarmEmail "$2"; shift 2 ;;
    --parameter)
      needs_value "$@"
      [[ "$2" == *=* ]] || fail "--parameter takes Key=Value, not '$2'"
      set_parameter "${2%%=*}" "${2#*=}"
      shift 2
      ;;
    --s3-bucket) needs_value "$@"; s3_bucket="$2"; shift 2 ;;
    --use-container) use_container=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    *) fail "unknown option '$1'" ;;
  esac
done

# --- Refuse what is missing or invalid, before anything runs ------------------------------------------

[[ -n "$stage" ]] || fail "no stage: give --stage and one of: $STAGES"
[[ " $STAGES " == *" $stage "* ]] || fail "unknown stage '$stage': use one of: $STAGES"
[[ -n "$profile" ]] || fail "no AWS profile: give --profile NAME or set AWS_PROFILE"
[[ -n "$region" ]] || fail "no AWS region: give --region REGION or set AWS_REGION"
[[ "$region" =~ ^[a-z]{2}(-gov)?-[a-z]+-[0-9]$ ]] || fail "'$region' is not an AWS region (e.g. eu-west-1)"
[[ -f "$ROOT/$TEMPLATE" ]] || fail "$TEMPLATE not found"
[[ -f "$ROOT/requirements.txt" ]] || fail "requirements.txt not found at the repository root"

known=" "
while read -r name has_default; do
  known+="$name "
  if [[ "$has_default" == 0 ]] && ! parameter_value "$name" >/dev/null; then
    case "$name" in
      JwtIssuer) fail "the template needs JwtIssuer: give --jwt-issuer URL (the token issuer, https://...)" ;;
      JwtAudience) fail "the template needs JwtAudience: give --jwt-audience AUDIENCE[,AUDIENCE...]" ;;
      *) fail "the template needs $name: give --parameter $name=VALUE" ;;
    esac
  fi
done < <(template_parameters)

for ((i = 0; i < ${#parameter_names[@]}; i++)); do
  [[ "$known" == *" ${parameter_names[i]} "* ]] || fail "the template has no parameter '${parameter_names[i]}'"
  [[ -n "${parameter_values[i]}" ]] || fail "parameter ${parameter_names[i]} is empty"
done
if issuer="$(parameter_value JwtIssuer)" && [[ "$issuer" != https://?* ]]; then
  fail "JwtIssuer must be an https:// URL, not '$issuer'"
fi
# The Glue database name is per account and region: each stage's stack gets its own, unless given.
if ! parameter_value GlueDatabaseName >/dev/null; then
  set_parameter GlueDatabaseName "eventpipe_$stage"
fi
glue_database="$(parameter_value GlueDatabaseName)"
[[ "$glue_database" =~ ^[a-z][a-z0-9_]{0,63}$ ]] ||
  fail "GlueDatabaseName '$glue_database' is not a Glue database name (lowercase letters, digits, _; a letter first)"
# Without a container, sam build runs pip with the functions' Python (3.12), found on PATH.
if [[ "$use_container" == false ]] && ! command -v python3.12 >/dev/null 2>&1; then
  fail "python3.12 is not on PATH, and sam build needs it for the functions' runtime: install Python 3.12, or pass --use-container to build in SAM's build image (needs Docker)"
fi

# --- The commands ---------------------------------------------------------------------------------

overrides=()
for ((i = 0; i < ${#parameter_names[@]}; i++)); do
  overrides+=("${parameter_names[i]}=${parameter_values[i]}")
done

build=(sam build)
if [[ "$use_container" == true ]]; then
  build+=(--use-container)
fi
build+=(--template "$TEMPLATE" --manifest requirements.txt)
# pyarrow (the lake) brings a function near Lambda's 250 MiB unzipped: drop what eventpipe never imports
# (pyarrow's Flight, headers, test suites), and refuse to deploy a function still over it, .pyc counted.
trim=(python3 scripts/trim_lambda_package.py "$BUILD_DIR")
# sam build ships no bytecode and /var/task is read-only, so every cold start would compile eventpipe,
# Powertools and the other dependencies again (about 100 ms of CPU). SAM's zip dates every file 1980,
# which would invalidate timestamp-checked .pyc: unchecked-hash .pyc are used as they are (the
# deployed files never change), compiled by the functions' Python (3.12).
compile=()
if command -v python3.12 >/dev/null 2>&1; then
  compile=(python3.12 -m compileall -q -j 0 --invalidation-mode unchecked-hash "$BUILD_DIR")
else
  warn "python3.12 is not on PATH: the functions ship without precompiled .pyc (each cold start compiles them)"
fi
# botocore's models for eventpipe's clients, decoded once here instead of at every cold start
# (src/eventpipe/adapters/aws/model_cache.py): one file in each function's folder. The function uses
# an entry only where the runtime's botocore has the same file, so build with the botocore version
# of the Lambda runtime (or bundle one) for every entry to count. The same command records the
# regular expressions the functions' init compiles (regex_cache.py), which needs python3.12 to import
# lambda_pipeline (its dependencies from this Python or the built function); else it warns and goes on.
models=()
if command -v python3.12 >/dev/null 2>&1 && python3.12 -c 'import botocore' >/dev/null 2>&1; then
  models=(env PYTHONPATH=src python3.12 -m eventpipe.adapters.aws.model_cache --sam-build "$BUILD_DIR")
else
  warn "python3.12 with botocore is not on PATH: the functions ship without botocore's pre-parsed models (each cold start decodes them)"
fi
deploy=(
  sam deploy
  --template-file "$BUILT_TEMPLATE"
  --stack-name "eventpipe-$stage"
  --profile "$profile"
  --region "$region"
  --capabilities CAPABILITY_IAM
  --no-fail-on-empty-changeset
)
if [[ -n "$s3_bucket" ]]; then
  deploy+=(--s3-bucket "$s3_bucket")
else
  deploy+=(--resolve-s3)
fi
if [[ ${#overrides[@]} -gt 0 ]]; then
  deploy+=(--parameter-overrides "${overrides[@]}")
fi
deploy+=(--tags project=eventpipe "stage=$stage")

if [[ "$dry_run" == true ]]; then
  print_command "${build[@]}"
  if [[ ${#models[@]} -gt 0 ]]; then
    print_command "${models[@]}"
  fi
  if [[ ${#compile[@]} -gt 0 ]]; then
    print_command "${compile[@]}"
  fi
  print_command "${trim[@]}"
  print_command "${deploy[@]}"
  exit 0
fi

command -v sam >/dev/null 2>&1 || fail "the sam CLI is not on PATH (pip install aws-sam-cli)"
cd "$ROOT"
"${build[@]}"
if [[ ${#models[@]} -gt 0 ]]; then
  "${models[@]}"
fi
if [[ ${#compile[@]} -gt 0 ]]; then
  "${compile[@]}"
fi
"${trim[@]}"
"${deploy[@]}"
