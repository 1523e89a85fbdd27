"""docs/settings.md against the code that parses the environment (`eventpipe.settings`, `eventpipe.lake.settings`).

Each row's default is checked by parsing: the variable set to its documented default parses to the same
settings as the variable unset, and set to another value, to different ones (so the row names a variable the
code reads). A bound the row states ("at most N", "N to M") is accepted and the value past it refused. The
other way round, every `EVENTPIPE_*` name the source reads is in the page, the Azure blueprint's
(docs/azure) included.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.core.errors import ConfigError
from eventpipe.lake.settings import LakeSettings
from eventpipe.settings import BUNDLED_RATES, AwsResources, Settings
from tests.docs.repo_docs import DOCS, ROOT, tracked_files

if TYPE_CHECKING:
    from pathlib import Path

REFERENCE = DOCS / "settings.md"
CODE = (ROOT / "src", DOCS / "azure")  # the package, and the Azure blueprint's function app
ROW = re.compile(r"^\| `(EVENTPIPE_[A-Z0-9_]+)` \| ([^|]+) \| ([^|]+) \|$", re.M)
VARIABLE = re.compile(r"\bEVENTPIPE_[A-Z0-9_]+\b")
RESOURCES = {
    "EVENTPIPE_BUCKET": "raw",
    "EVENTPIPE_CURATED_TABLE": "curated",
    "EVENTPIPE_STATE_TABLE": "state",
    "EVENTPIPE_INSIGHTS_TABLE": "insights",
}
# A value other than the default for the rows whose default is a word, not a number.
OTHER_VALUES = {
    "EVENTPIPE_DATA_DIR": "elsewhere",
    "EVENTPIPE_SCHEMA_DIR": "schemas",
    "EVENTPIPE_ENRICHERS": "none",
    "EVENTPIPE_PSEUDONYMISE_FIELDS": "user_id",
    "EVENTPIPE_PSEUDONYM_KEY": "a key of thirty-two bytes or more",
    "EVENTPIPE_PSEUDONYM_KEY_PARAM": "/eventpipe/dev/pseudonym-key",
    "EVENTPIPE_GEOIP_DB": "GeoLite2-City.mmdb",
    "EVENTPIPE_LAKE": "off",
    "EVENTPIPE_RETENTION_DAYS": "30",
    "EVENTPIPE_LAKE_RETENTION_DAYS": "365",
    "EVENTPIPE_API_TOKEN": "a token",
    "EVENTPIPE_TRUSTED_PROXIES": "10.0.0.0/8",
}


def rows() -> dict[str, tuple[str, str]]:
    """Each documented variable: its default and its meaning, as written."""
    return {name: (default.strip(), meaning.strip()) for name, default, meaning in ROW.findall(read(REFERENCE))}


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def parsed(environ: dict[str, str]) -> tuple[Any, ...]:
    """Everything the functions and the local runtime read from `environ` (AWS-only names accepted)."""
    return (
        Settings.from_env(environ, on_aws=True),
        LakeSettings.from_env(environ),
        AwsResources.from_env(RESOURCES | environ),
    )


def documented_value(default: str) -> str | None:
    """The documented default as a value of the variable; None for `none` (the variable unset)."""
    text = default.strip("`")
    if text.startswith("none"):
        return None
    if text == "bundled":
        return str(BUNDLED_RATES)
    return text


def test_the_page_documents_the_settings() -> None:
    # a table the pattern no longer reads would make every test below pass on nothing
    assert len(rows()) >= 25


@pytest.mark.parametrize("name", sorted(rows()))
def test_each_documented_default_is_the_codes(name: str, tmp_path: Path) -> None:
    default, _ = rows()[name]
    value = documented_value(default)
    if value is not None:
        assert parsed({name: value}) == parsed({}), f"{name}={value} (documented default) is not the default"
    if default.strip("`") == "bundled":
        other = tmp_path / "rates.json"
        other.write_bytes(orjson.dumps({"base": "USD", "rates": {"EUR": 0.9}}))
        changed = str(other)
    elif value is not None and value.isdigit():
        changed = str(int(value) + 1)
    else:
        changed = OTHER_VALUES[name]
    assert parsed({name: changed}) != parsed({}), f"{name} is documented, but the settings do not read it"


@pytest.mark.parametrize("name", sorted(rows()))
def test_each_documented_lowest_value_holds(name: str) -> None:
    _, meaning = rows()[name]
    lowest = re.search(r"at least ([\d,]+)\b", meaning)
    if lowest is None:
        return
    bound = int(lowest.group(1).replace(",", ""))
    parsed({name: str(bound)})
    with pytest.raises(ConfigError, match=name):
        parsed({name: str(bound - 1)})


@pytest.mark.parametrize("name", sorted(rows()))
def test_each_documented_bound_holds(name: str) -> None:
    _, meaning = rows()[name]
    highest = re.search(r"at most ([\d,]+)\b", meaning) or re.search(r"\(\d+ to ([\d,]+)\b", meaning)
    if highest is None:
        return
    bound = int(highest.group(1).replace(",", ""))
    parsed({name: str(bound)})
    with pytest.raises(ConfigError, match=name):
        parsed({name: str(bound + 1)})


def test_every_variable_the_code_reads_is_documented() -> None:
    read_by_code = {
        name
        for folder in CODE
        for path in folder.rglob("*")
        if path.suffix in (".py", ".js")
        for name in VARIABLE.findall(read(path))
    }
    assert "EVENTPIPE_COSMOS_ENDPOINT" in read_by_code
    missing = sorted(read_by_code - set(VARIABLE.findall(read(REFERENCE))))
    assert not missing, f"docs/settings.md does not name: {missing}"


def test_every_setting_the_page_names_is_read_by_the_code() -> None:
    unknown = sorted(set(VARIABLE.findall(read(REFERENCE))) - {name for folder in CODE for name in names_read(folder)})
    assert not unknown, f"docs/settings.md names variables no code reads: {unknown}"


def names_read(folder: Path) -> set[str]:
    """The `EVENTPIPE_*` names the Python under `folder` holds as a whole string: what it passes to read
    the environment (`environ.get("...")`, `positive_int(environ, "...", ...)`, a table of names). A
    name only inside a message, a comment or a docstring is not read."""
    return {
        node.value
        for path in folder.rglob("*.py")
        for node in ast.walk(ast.parse(read(path)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and VARIABLE.fullmatch(node.value)
    }


def test_a_name_only_in_a_message_or_a_comment_is_not_a_read(tmp_path: Path) -> None:
    (tmp_path / "module.py").write_text(
        '"""EVENTPIPE_IN_A_DOCSTRING."""\n'
        "# EVENTPIPE_IN_A_COMMENT\n"
        'error = f"EVENTPIPE_IN_A_MESSAGE={1}"\n'
        'value = environ.get("EVENTPIPE_READ")\n'
        'names = {"field": "EVENTPIPE_IN_A_TABLE"}\n'
    )
    assert names_read(tmp_path) == {"EVENTPIPE_READ", "EVENTPIPE_IN_A_TABLE"}


def test_every_variable_any_doc_names_is_read_by_some_code() -> None:
    """A variable renamed in the code and not in a doc would send a reader after a setting that does nothing."""
    code_suffixes = {".py", ".js", ".sh", ".bicep", ".yaml", ".yml", ".tf", ".mk", ""}
    files = tracked_files()
    read_by_code = {
        name
        for path in files
        if path.suffix in code_suffixes and path.is_file()
        for name in VARIABLE.findall(read_text(path))
    }
    named = {name for path in files if path.suffix == ".md" for name in VARIABLE.findall(read_text(path))}
    assert not named - read_by_code, f"the docs name variables no code reads: {sorted(named - read_by_code)}"


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")
