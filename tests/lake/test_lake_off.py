"""With the lake off, a command that processes events never pays for pyarrow."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def test_ingest_without_the_lake_does_not_load_pyarrow(tmp_path: Path) -> None:
    # GIVEN the lake switched off, no retention and no interrupted erasure
    events = tmp_path / "events.ndjson"
    events.write_bytes(b'{"event_type": "page_view"}\n')
    code = (
        "import sys\nfrom eventpipe.cli import main\n"
        f"main(['ingest', {str(events)!r}, '--json'])\n"
        "print('pyarrow' in sys.modules)"
    )
    env = {**os.environ, "EVENTPIPE_LAKE": "off", "EVENTPIPE_DATA_DIR": str(tmp_path / "data")}
    env.pop("EVENTPIPE_RETENTION_DAYS", None)
    env.pop("EVENTPIPE_LAKE_RETENTION_DAYS", None)
    # WHEN a file is ingested
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    # THEN pyarrow (50 MiB, 0.2 s) was never imported
    assert done.stdout.strip().splitlines()[-1] == "False"
