"""The layering of docs/architecture.md, checked on the source.

Core is cloud-free and reads no environment; adapters sit below the runtime and the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import eventpipe

PACKAGE_DIR = Path(eventpipe.__file__).parent
CORE_FORBIDDEN = (
    "boto3",
    "botocore",
    "aws_lambda_powertools",
    "http",
    "urllib.request",
    "uvicorn",
    "starlette",
    "eventpipe.adapters",
    "eventpipe.localrun",
    "eventpipe.handlers",
    "eventpipe.settings",
    "eventpipe.cli",
)
ADAPTERS_FORBIDDEN = ("eventpipe.localrun", "eventpipe.cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module `source` imports (also under TYPE_CHECKING or in a function), relative imports resolved.

    `from a import b` counts as both `a` and `a.b`, since `b` may be a submodule.
    """
    found: set[str] = set()
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
            "__import__",
            "import_module",
        ):
            found.update(arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str))
    return found


def environment_reads(source: str) -> list[str]:
    """`os.environ`, `os.getenv` and `from os import environ/getenv/putenv`, as `line: text`."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("environ", "environb", "getenv", "getenvb")
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            hits.append(f"{node.lineno}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            hits.extend(
                f"{node.lineno}: from os import {a.name}" for a in node.names if a.name in ("environ", "getenv")
            )
    return sorted(hits, key=lambda hit: int(hit.split(":")[0]))


def violations(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules for f in forbidden if m == f or m.startswith(f + "."))


def sources(subpackage: str) -> list[Path]:
    paths = sorted((PACKAGE_DIR / subpackage).rglob("*.py"))
    assert paths, f"no modules found under {PACKAGE_DIR / subpackage}"
    return paths


CORE_MODULES = sources("core")
ADAPTER_MODULES = sources("adapters")


def test_the_core_modules_are_found() -> None:
    names = {module_name(p) for p in CORE_MODULES}
    assert {"eventpipe.core", "eventpipe.core.ingest", "eventpipe.core.enrich.chain"} <= names


@pytest.mark.parametrize("path", CORE_MODULES, ids=module_name)
def test_core_imports_no_cloud_http_or_outer_layer(path: Path) -> None:
    # GIVEN a core module's imports
    imports = imported_modules(path.read_text(), module_name(path), is_package=path.name == "__init__.py")
    # THEN none is an AWS SDK, an HTTP or server library, or a layer above core
    assert violations(imports, CORE_FORBIDDEN) == []


@pytest.mark.parametrize("path", CORE_MODULES, ids=module_name)
def test_core_does_not_read_the_environment(path: Path) -> None:
    assert environment_reads(path.read_text()) == []


@pytest.mark.parametrize("path", ADAPTER_MODULES, ids=module_name)
def test_adapters_do_not_import_the_local_runtime_or_the_cli(path: Path) -> None:
    imports = imported_modules(path.read_text(), module_name(path), is_package=path.name == "__init__.py")
    assert violations(imports, ADAPTERS_FORBIDDEN) == []


# The checks themselves: each must catch what it is there to catch.


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import boto3", ["boto3"]),
        ("import botocore.exceptions", ["botocore.exceptions"]),
        ("from aws_lambda_powertools import Logger", ["aws_lambda_powertools", "aws_lambda_powertools.Logger"]),
        ("import http.server", ["http.server"]),
        ("from urllib import request", ["urllib.request"]),
        ("import urllib.request", ["urllib.request"]),
        ("from starlette.requests import Request", ["starlette.requests", "starlette.requests.Request"]),
        (
            "if TYPE_CHECKING:\n    from eventpipe.settings import Settings",
            ["eventpipe.settings", "eventpipe.settings.Settings"],
        ),
        ("def f():\n    import uvicorn", ["uvicorn"]),
        ("from ...adapters import local", ["eventpipe.adapters", "eventpipe.adapters.local"]),
        ("from ... import cli", ["eventpipe.cli"]),
        ("from .. import cli", []),
        ("importlib.import_module('eventpipe.handlers.ingest')", ["eventpipe.handlers.ingest"]),
        ("from urllib.parse import urlsplit\nimport httpx_like\nimport json", []),
    ],
)
def test_the_import_check_catches_each_forbidden_form(source: str, expected: list[str]) -> None:
    # GIVEN a module at eventpipe.core.enrich.example (so ".." is eventpipe.core, "..." is eventpipe)
    imports = imported_modules(source, "eventpipe.core.enrich.example")
    assert violations(imports, CORE_FORBIDDEN) == expected


def test_the_environment_check_catches_each_form() -> None:
    source = "import os\na = os.environ['X']\nb = os.getenv('Y')\nfrom os import environ\nenviron_like = 1\n"
    assert environment_reads(source) == ["2: os.environ", "3: os.getenv", "4: from os import environ"]


# Import cycles in core (TYPE_CHECKING imports count: a cycle there still means two modules that cannot be
# read, or moved, one without the other).
KNOWN_CORE_CYCLES: list[set[str]] = []


def import_cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The groups of modules that import each other, directly or not (strongly connected, more than one)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(node: str, edges: dict[str, set[str]], out: list[str]) -> None:
        stack = [(node, iter(sorted(edges.get(node, ()))))]
        seen.add(node)
        while stack:
            current, children = stack[-1]
            child = next((c for c in children if c not in seen), None)
            if child is None:
                stack.pop()
                out.append(current)
            else:
                seen.add(child)
                stack.append((child, iter(sorted(edges.get(child, ())))))

    for node in sorted(graph):
        if node not in seen:
            visit(node, graph, order)
    reverse: dict[str, set[str]] = {n: set() for n in graph}
    for node, targets in graph.items():
        for target in targets:
            reverse.setdefault(target, set()).add(node)
    seen.clear()
    groups = []
    for node in reversed(order):
        if node not in seen:
            group: list[str] = []
            visit(node, reverse, group)
            if len(group) > 1:
                groups.append(set(group))
    return groups


def import_graph(paths: list[Path]) -> dict[str, set[str]]:
    names = {module_name(p): p for p in paths}
    return {
        name: {m for m in imported_modules(p.read_text(), name, is_package=p.name == "__init__.py") if m in names}
        - {name}
        for name, p in names.items()
    }


def test_core_has_no_import_cycle() -> None:
    cycles = [cycle for cycle in import_cycles(import_graph(CORE_MODULES)) if cycle not in KNOWN_CORE_CYCLES]
    assert cycles == []


# Outside core: services names FileSplitter (file_ranges), whose module reads drops, which names Services.
KNOWN_HANDLERS_CYCLES = [
    {"eventpipe.handlers.drops", "eventpipe.handlers.file_ranges", "eventpipe.handlers.services"},
]


def test_handlers_have_no_import_cycle() -> None:
    graph = import_graph(sources("handlers"))
    assert [cycle for cycle in import_cycles(graph) if cycle not in KNOWN_HANDLERS_CYCLES] == []


def test_the_cycle_check_finds_a_cycle_through_type_checking_imports() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [{"a", "b", "c"}]
    source = "if TYPE_CHECKING:\n    from eventpipe.core.ports import InsightsStore"
    assert "eventpipe.core.ports" in imported_modules(source, "eventpipe.core.insights")
