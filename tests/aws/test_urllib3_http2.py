"""urllib3's HTTP/2 package deferred on Lambda: `importlib.metadata` not imported, the package the same once used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from eventpipe.adapters.aws.urllib3_http2 import defer_urllib3_http2
from tests.aws.test_cold_start import lambda_init

SRC = Path(__file__).resolve().parents[2] / "src"
# what urllib3's HTTP/2 package imports for its h2 version check, and nothing else of the init does
METADATA = ("importlib.metadata", "zipfile", "csv")
NAMES = "sorted(n for n in vars(urllib3.http2) if not (n.startswith('__') and n.endswith('__')))"


def fresh(code: str, *, deferred: bool) -> Any:
    """`code` in a fresh interpreter, urllib3's HTTP/2 package deferred or not; the JSON it prints last."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(SRC)}
    prelude = "import json, sys; from eventpipe.adapters.aws.urllib3_http2 import defer_urllib3_http2; "
    prelude += "installed = defer_urllib3_http2(); " if deferred else "installed = None; "
    done = subprocess.run([sys.executable, "-c", prelude + code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_urllib3_imports_without_importlib_metadata() -> None:
    # GIVEN the deferral set up before urllib3's import
    # WHEN urllib3 and its connection module (which imports the HTTP/2 probe) are imported
    loaded = fresh(
        "import urllib3, urllib3.connection;"
        f" print(json.dumps([installed, [m for m in {METADATA!r} if m in sys.modules],"
        " urllib3.connection.http2_probe.__name__, type(urllib3.http2.__loader__).__name__]))",
        deferred=True,
    )
    # THEN the probe is there, the package's body has not run, and its loader is the usual one
    assert loaded == [True, [], "urllib3.http2.probe", "SourceFileLoader"]


def test_the_package_reads_the_same_once_used() -> None:
    # GIVEN the package imported with and without the deferral
    # WHEN its names are read (`inject_into_urllib3` runs the body) and imported with `*`
    code = (
        "import urllib3.http2; inject = urllib3.http2.inject_into_urllib3; names = " + NAMES + ";"
        " star = {}; exec('from urllib3.http2 import *', star);"
        " print(json.dumps([names, sorted(k for k in star if k != '__builtins__'), inject.__module__,"
        " 'importlib.metadata' in sys.modules]))"
    )
    ours, theirs = fresh(code, deferred=True), fresh(code, deferred=False)
    # THEN they are urllib3's own, and the body imported importlib.metadata as it does
    assert ours == theirs
    assert ours[1] == ["extract_from_urllib3", "inject_into_urllib3"]
    assert ours[2:] == ["urllib3.http2", True]


def test_from_import_star_runs_the_body() -> None:
    # GIVEN the deferral, urllib3 imported (its body not run)
    # WHEN the package is imported with `*` first THEN its `__all__` is urllib3's
    star = fresh(
        "import urllib3; ns = {}; exec('from urllib3.http2 import *', ns);"
        " print(json.dumps(sorted(k for k in ns if k != '__builtins__')))",
        deferred=True,
    )
    assert star == ["extract_from_urllib3", "inject_into_urllib3"]


def test_nothing_is_set_up_once_urllib3_is_imported() -> None:
    # GIVEN this process, where urllib3 is imported (botocore's tests) THEN nothing changes
    import urllib3  # noqa: F401

    assert defer_urllib3_http2() is False
    assert "_FindOnce" not in [getattr(finder, "__name__", None) for finder in sys.meta_path]


def test_the_lambda_entry_point_leaves_importlib_metadata_out() -> None:
    # GIVEN a Lambda container's init and a workflow step's clients
    loaded = lambda_init(
        "runtime.bucket._client.meta; runtime.curated._client.meta;"
        f" print(json.dumps(['urllib3.http2.probe' in sys.modules, [m for m in {METADATA!r} if m in sys.modules]]))"
    )
    # THEN urllib3's probe is in use, and nothing of importlib.metadata was imported
    assert loaded == [True, []]


def test_threads_asking_at_once_all_get_the_package() -> None:
    # GIVEN the deferral, urllib3 imported (the package's body not run), and 8 threads released at once
    # WHEN each asks for a name the body defines
    got = fresh(
        "import threading, urllib3, urllib3.http2; barrier = threading.Barrier(8); names = [];"
        " ask = lambda: (barrier.wait(), names.append(urllib3.http2.extract_from_urllib3.__name__));"
        " threads = [threading.Thread(target=ask) for _ in range(8)]; [t.start() for t in threads];"
        " [t.join() for t in threads]; print(json.dumps(names))",
        deferred=True,
    )
    # THEN every one gets it (the body ran once, the others waited for it)
    assert got == ["extract_from_urllib3"] * 8
