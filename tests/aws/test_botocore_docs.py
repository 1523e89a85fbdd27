"""botocore's documentation generator deferred on Lambda: the same docstrings, built when read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from eventpipe.adapters.aws.botocore_docs import defer_botocore_docs
from tests.aws.test_cold_start import lambda_init

SRC = Path(__file__).resolve().parents[2] / "src"
GENERATOR = ("botocore.docs.method", "botocore.docs.service", "botocore.docs.bcdoc.restdoc", "html.parser")
# Each docstring class botocore builds: an operation, a paginator, a waiter.
DOCS = (
    "client = make_client('s3', fast_session());"
    " docs = [client.put_object.__doc__, client.get_paginator('list_objects_v2').paginate.__doc__,"
    " client.get_waiter('bucket_exists').wait.__doc__];"
    " texts = [str(d) for d in docs] + [repr(docs[0]), inspect.getdoc(client.put_object)]"
)


def fresh(code: str, *, deferred: bool) -> Any:
    """`code` in a fresh interpreter, botocore's docs deferred or not; the JSON it prints last."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(SRC),
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    prelude = "import inspect, json, sys; from eventpipe.adapters.aws.botocore_docs import defer_botocore_docs; "
    if deferred:
        prelude += "installed = defer_botocore_docs(); "
    prelude += (
        "from eventpipe.adapters.aws.botocore_loader import fast_session; "
        "from eventpipe.adapters.aws.clients import make_client; "
    )
    done = subprocess.run([sys.executable, "-c", prelude + code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_clients_are_built_without_the_documentation_generator() -> None:
    # GIVEN the stand-ins installed before botocore's client module
    # WHEN a client is built
    loaded = fresh(
        "client = make_client('s3', fast_session());"
        f" print(json.dumps([installed, [m for m in {GENERATOR!r} if m in sys.modules]]))",
        deferred=True,
    )
    # THEN nothing of the generator was imported
    assert loaded == [True, []]


def test_docstrings_read_the_same_as_botocores() -> None:
    # GIVEN an operation's, a paginator's and a waiter's docstring, with and without the stand-ins
    # WHEN each is read (str, repr, inspect.getdoc as help() does)
    ours = fresh(f"{DOCS}; print(json.dumps(texts))", deferred=True)
    theirs = fresh(f"{DOCS}; print(json.dumps(texts))", deferred=False)
    # THEN the texts are botocore's own, and not empty
    assert ours == theirs
    assert all("**Request Syntax**" in text or "Polls" in text for text in ours[:3])


def test_the_real_modules_take_over_once_used() -> None:
    # GIVEN the stand-ins, then a docstring read and a name only the real modules define
    result = fresh(
        f"{DOCS}; import botocore.docs; from botocore.docs.docstring import LazyLoadedDocstring;"
        " import boto3.docs.docstring as boto3_docs;"
        " print(json.dumps([callable(botocore.docs.generate_docs),"
        " sys.modules['botocore.docs.docstring'].__name__, LazyLoadedDocstring.__module__,"
        " issubclass(boto3_docs.ActionDocstring, LazyLoadedDocstring), 'html.parser' in sys.modules]))",
        deferred=True,
    )
    # THEN the package's own names, the real docstring module and boto3's docstring classes are there
    assert result == [True, "botocore.docs.docstring", "botocore.docs.docstring", True, True]


def test_nothing_is_installed_once_botocores_client_module_is_loaded() -> None:
    # GIVEN this process, where botocore's client module is loaded (the tests' clients)
    import botocore.client  # noqa: F401

    # WHEN the stand-ins are asked for THEN nothing changes: the module holds the real classes already
    assert defer_botocore_docs() is False


def test_the_lambda_entry_point_defers_the_generator() -> None:
    # GIVEN a Lambda container's init and a workflow step's clients
    loaded = lambda_init(f"runtime.bucket; runtime.curated; print(json.dumps([m in sys.modules for m in {GENERATOR}]))")
    # THEN none of the documentation generator was imported
    assert loaded == [False] * len(GENERATOR)
