"""Why jsonschema-rs: the candidate validators on our own event shape, in one run.

Each validates the same generated events (10% invalid) against the composed envelope + type
schema with formats checked, and collects every error of the invalid ones (fastjsonschema can
only report the first). Prints events per second and the ratio to python-jsonschema.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import fastjsonschema
import jsonschema
import orjson
from summary import record

from eventpipe.core.registry import SchemaRegistry
from eventpipe.core.timeutil import SystemClock
from eventpipe.core.validation import validate_event
from eventpipe.generate import EventGenerator

if TYPE_CHECKING:
    from collections.abc import Callable

EVENTS = 20_000


def events() -> list[Any]:
    lines = EventGenerator(seed=3, now_ms=SystemClock().now_ms()).lines(EVENTS, invalid_ratio=0.1)
    parsed = []
    for line in lines:
        try:
            parsed.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return parsed


def rate(check: Callable[[Any], object], sample: list[Any]) -> float:
    started = time.perf_counter()
    for event in sample:
        check(event)
    return len(sample) / (time.perf_counter() - started)


def main() -> None:
    registry = SchemaRegistry.load()
    sample = events()
    schemas = {}
    for entry in registry.entries():
        schemas[entry.event_type] = orjson.loads(entry.path.read_bytes())
    from eventpipe.core.envelope import envelope_with

    composed = {t: envelope_with(s, f"urn:{t}") for t, s in schemas.items()}
    reference = {
        t: jsonschema.Draft202012Validator(s, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        for t, s in composed.items()
    }
    # fastjsonschema cannot resolve `$ref`s inside an embedded resource: give it the refs inlined.
    inlined = {t: envelope_with(_inline_refs(s, s.get("$defs", {})), f"urn:{t}") for t, s in schemas.items()}
    fast = {t: fastjsonschema.compile(s) for t, s in inlined.items()}

    def python_jsonschema(event: Any) -> object:
        validator = reference.get(event.get("event_type")) if isinstance(event, dict) else None
        return list(validator.iter_errors(event)) if validator else None

    def fast_first_error(event: Any) -> object:
        validate = fast.get(event.get("event_type")) if isinstance(event, dict) else None
        if validate is None:
            return None
        try:
            return validate(event)
        except fastjsonschema.JsonSchemaValueException as exc:
            return exc

    results = [
        ("python-jsonschema (all errors)", rate(python_jsonschema, sample[:3000])),
        ("fastjsonschema (first error)", rate(fast_first_error, sample)),
        ("jsonschema-rs, as eventpipe uses it", rate(lambda e: validate_event(e, registry), sample)),
    ]
    baseline = results[0][1]
    print(f"{'validator':<40}{'events/s':>12}{'x python-jsonschema':>22}")
    for name, per_second in results:
        print(f"{name:<40}{per_second:>12,.0f}{per_second / baseline:>22,.1f}")
    record("validation, jsonschema-rs (events/s; baseline python-jsonschema)", results[-1][1], baseline=baseline)


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


if __name__ == "__main__":
    main()
