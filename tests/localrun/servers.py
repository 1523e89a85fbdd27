"""Servers for the tests of `eventpipe up`: started with the harness, always ended and cleaned up."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

from tests.localrun.server_harness import close_output, start_server

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    from tests.localrun.server_harness import Server


@contextmanager
def up(data_dir: Path, *args: str, env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """`eventpipe up` on a free port; SIGKILLed at the end if the test left it running."""
    server = start_server(data_dir, *args, env=env)
    try:
        yield server
    finally:
        end(server)


def end(server: Server) -> None:
    """SIGKILL the server if it still runs, then release its output pipe."""
    if server.process.poll() is None:
        server.kill()
    close_output(server)
