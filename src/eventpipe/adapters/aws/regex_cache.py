"""The regular expressions a cold start compiles, compiled once at package time.

A function's init compiles about 120 regular expressions (urllib3's URL grammar, botocore's, the
standard library's): 22 to 27 ms of CPU, a tenth of a cold start, in `re`'s parser and compiler,
which are Python. What a pattern compiles to, the arguments `_sre.compile` takes (its opcodes and
groups), depends only on the pattern, its flags and the Python version. `python -m
eventpipe.adapters.aws.model_cache` (run by `scripts/deploy_sam.sh`) also writes
`compiled-regexes.marshal`: a fresh interpreter of the functions' Python imports `lambda_pipeline`
and builds a client of each service while every compile is recorded. At cold start
`lambda_pipeline` loads the file before anything else: a recorded pattern is built from its opcodes
by `_sre.compile` (which validates them), any other is compiled as usual. A file of another Python
(version, `_sre.MAGIC`), a damaged or an oversized one is ignored.
"""

from __future__ import annotations

import _sre  # type: ignore[import-not-found]  # the regular expression engine, which has no stubs
import marshal
import os
import sys
from re import _compiler  # type: ignore[attr-defined]  # `re`'s compiler: the one function wrapped here
from typing import Any

__all__ = ["REGEX_CACHE_NAME", "build_regex_cache", "read_marshalled", "use_compiled_regexes"]

REGEX_CACHE_NAME = "compiled-regexes.marshal"
MAX_CACHE_BYTES = 4 * 1024 * 1024  # about 120 patterns take some 100 KB
# What the opcodes depend on: a file recorded by another Python is not used.
PYTHON = (sys.hexversion, _sre.MAGIC, _sre.CODESIZE, marshal.version)

Key = tuple[str | bytes, int]  # the pattern and the flags `re` compiles it with


def use_compiled_regexes(path: str | os.PathLike[str]) -> int:
    """Compile the patterns recorded in the file at `path` from their opcodes from now on; how many it holds
    (0 when the file is missing, too large or not recorded by this Python: `re` is then left as it is)."""
    table = _load(path)
    if not table:
        return 0
    compile_pattern = _compiler.compile

    def compile_recorded(pattern: Any, flags: int = 0) -> Any:
        arguments = table.get((pattern, flags)) if isinstance(pattern, str | bytes) else None
        if arguments is None or type(arguments[0]) is not type(pattern):  # a str subclass keeps its own type
            return compile_pattern(pattern, flags)
        return _sre.compile(*arguments)

    _compiler.compile = compile_recorded
    return len(table)


def _load(path: str | os.PathLike[str]) -> dict[Key, tuple[Any, ...]] | None:
    try:
        document = read_marshalled(path, MAX_CACHE_BYTES)
    except OSError:
        return None
    except ValueError as error:
        _ignored(path, str(error))
        return None
    if not (isinstance(document, tuple) and len(document) == 2 and document[0] == PYTHON):
        _ignored(path, "not recorded by this Python")
        return None
    table = document[1]
    return table if isinstance(table, dict) and all(_valid(key, value) for key, value in table.items()) else None


def read_marshalled(path: str | os.PathLike[str], max_bytes: int) -> Any:
    """What the file at `path` holds, marshalled: `OSError` if it cannot be read, `ValueError` if it is
    larger than `max_bytes` or not marshal data. For the files the package carries (model_cache.py too)."""
    with open(path, "rb") as stream:
        content = stream.read(max_bytes + 1)
    if len(content) > max_bytes:
        raise ValueError(f"larger than {max_bytes} bytes")
    try:
        return marshal.loads(content)
    except (EOFError, ValueError, TypeError) as error:
        raise ValueError("not marshal data") from error


def _ignored(path: str | os.PathLike[str], why: str) -> None:
    import logging  # not at import: the file is loaded before `logging`, whose patterns it holds

    logging.getLogger(__name__).warning("regex cache %s ignored: %s", path, why)


def _valid(key: Any, arguments: Any) -> bool:
    # _sre.compile(pattern, flags, code, groups, groupindex, indexgroup); it checks the opcodes itself
    return (
        isinstance(key, tuple)
        and len(key) == 2
        and isinstance(key[1], int)
        and isinstance(arguments, tuple)
        and len(arguments) == 6
        and arguments[0] == key[0]
        and isinstance(arguments[1], int)
        and isinstance(arguments[2], list)
        and isinstance(arguments[3], int)
        and isinstance(arguments[4], dict)
        and isinstance(arguments[5], tuple)
    )


# Run by a fresh interpreter with a Lambda-like environment. `re` compiles its own two patterns at
# import, before the recording starts and, at cold start, before the file is loaded.
RECORDER = """
import marshal, sys
import _sre
from re import _compiler

table, compiling = {}, []
compile_pattern, build = _compiler.compile, _sre.compile

def record(pattern, flags=0):
    compiling.append((pattern, flags) if isinstance(pattern, (str, bytes)) else None)
    try:
        return compile_pattern(pattern, flags)
    finally:
        compiling.pop()

def recorded_build(pattern, flags, code, groups, groupindex, indexgroup):
    if compiling and compiling[-1] is not None:  # the opcodes are named ints: plain ones for marshal
        table[compiling[-1]] = (pattern, flags, [int(op) for op in code], groups, dict(groupindex), indexgroup)
    return build(pattern, flags, code, groups, groupindex, indexgroup)

_compiler.compile, _sre.compile = record, recorded_build
import lambda_pipeline
from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.model_cache import SERVICES
for service in SERVICES:
    make_client(service)
_compiler.compile, _sre.compile = compile_pattern, build
from eventpipe.adapters.aws.regex_cache import PYTHON
sys.stdout.buffer.write(marshal.dumps((PYTHON, table)))
"""
# What the init needs to run: a region, placeholder names and credentials (nothing is called).
RECORDING_ENVIRONMENT = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "recording",
    "AWS_SECRET_ACCESS_KEY": "recording",
    "EVENTPIPE_BUCKET": "recording",
    "EVENTPIPE_CURATED_TABLE": "recording",
    "EVENTPIPE_STATE_TABLE": "recording",
    "EVENTPIPE_INSIGHTS_TABLE": "recording",
}


def build_regex_cache(function_folder: str | os.PathLike[str]) -> bytes:
    """The file's content: what this Python compiles while it imports `lambda_pipeline` (from this source
    tree) and builds its clients. Dependencies this Python lacks come from `function_folder`, a built
    function; the opcodes depend on the Python version only, not on the platform the wheels are for."""
    import subprocess  # not at import: a cold start reads the file, it does not build it

    source_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([source_root, os.fspath(function_folder)]),
        **RECORDING_ENVIRONMENT,
    }
    done = subprocess.run([sys.executable, "-c", RECORDER], env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"recording the regular expressions failed:\n{done.stderr.decode(errors='replace')}")
    return done.stdout
