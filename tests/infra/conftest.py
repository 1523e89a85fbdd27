"""Fixtures for the infrastructure tests: the SAM template as data, alerts.yml, and the scripts/ modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infrastructure" / "template.yaml"
ALERTS = ROOT / "monitoring" / "alerts.yml"


def load_script(name: str) -> ModuleType:
    """A module of scripts/ (not a package), imported by path."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def sam_translate() -> ModuleType:
    return load_script("sam_translate")


@pytest.fixture(scope="session")
def alarms() -> ModuleType:
    return load_script("alarms")


@pytest.fixture(scope="session")
def template(sam_translate: ModuleType) -> dict[str, Any]:
    """infrastructure/template.yaml, parsed by cfn-lint's decoder (intrinsics in their long form)."""
    loaded: dict[str, Any] = sam_translate.load_template(TEMPLATE)
    return loaded


@pytest.fixture(scope="session")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"]
    return found


@pytest.fixture(scope="session")
def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each AWS::Serverless::Function's properties with the Globals merged in, as SAM merges them."""
    defaults = template.get("Globals", {}).get("Function", {})
    merged = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = {**defaults, **resource["Properties"]}
        variables = {
            **defaults.get("Environment", {}).get("Variables", {}),
            **resource["Properties"].get("Environment", {}).get("Variables", {}),
        }
        properties["Environment"] = {"Variables": variables}
        merged[logical_id] = properties
    return merged


@pytest.fixture(scope="session")
def alerts_config(alarms: ModuleType) -> dict[str, Any]:
    config: dict[str, Any] = alarms.load(ALERTS)
    return config
