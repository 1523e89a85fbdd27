"""Translate infrastructure/template.yaml into plain CloudFormation, offline, for cfn-lint.

cfn-lint checks a SAM template as written (resource schemas, references) but does not expand it: the
roles, permissions, rules and stages that SAM generates, and dependency cycles between them, show up
only in the translated template. This does what `sam package` and the transform do, without AWS:

- `CodeUri: ../src` becomes a placeholder S3 location (the code is not read);
- `DefinitionUri: <local ASL file>` becomes the inline `Definition` (the file is read and parsed);
- the transform runs with aws-sam-translator and no IAM lookups (managed policies must be ARNs).

Usage: python scripts/sam_translate.py [TEMPLATE] [OUTPUT]   (default output: build/infra/template.json)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infrastructure" / "template.yaml"
OUTPUT = ROOT / "build" / "infra" / "template.json"
PLACEHOLDER_CODE = "s3://placeholder-artifacts/code.zip"


def load_template(path: Path) -> dict[str, Any]:
    """The template as plain data, short-form intrinsics (`!Ref`, `!Sub`, ...) in their long form."""
    from cfnlint.decode import decode

    template, matches = decode(str(path))
    if matches or template is None:
        raise SystemExit(f"{path}: cannot parse: {'; '.join(str(m) for m in matches)}")
    plain: dict[str, Any] = json.loads(json.dumps(template))  # cfn-lint's node classes to plain data
    return plain


def package_locally(template: dict[str, Any], base: Path) -> dict[str, Any]:
    """Replace local code and definition paths as `sam package` would, without uploading anything."""
    function_globals = template.get("Globals", {}).get("Function", {})
    if isinstance(function_globals.get("CodeUri"), str):
        function_globals["CodeUri"] = PLACEHOLDER_CODE
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(properties.get("CodeUri"), str):
            properties["CodeUri"] = PLACEHOLDER_CODE
        if resource.get("Type") == "AWS::Serverless::StateMachine" and isinstance(properties.get("DefinitionUri"), str):
            definition_path = (base / properties.pop("DefinitionUri")).resolve()
            properties["Definition"] = json.loads(definition_path.read_text(encoding="utf-8"))
    return template


def translate(template_path: Path = TEMPLATE) -> dict[str, Any]:
    """The CloudFormation template that the SAM transform makes of `template_path`."""
    from boto3.session import Session
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = package_locally(load_template(template_path), template_path.parent)
    session = Session(region_name="us-east-1")  # only for the pseudo parameters; no call is made
    try:
        translator = Translator(managed_policy_map={}, sam_parser=Parser(), boto_session=session)
        translated: dict[str, Any] = translator.translate(template, parameter_values={}, get_managed_policy_map=dict)
    except InvalidDocumentException as exc:
        causes = "; ".join(cause.message for cause in exc.causes)
        raise SystemExit(f"{template_path}: the SAM transform failed: {causes}") from None
    return translated


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else TEMPLATE
    target = Path(argv[1]) if len(argv) > 1 else OUTPUT
    translated = translate(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(translated, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
    print(f"{shown}: {len(translated['Resources'])} resources")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
