"""Azure tests: the function app's code (docs/azure) on the real `azure-functions` types, its Blob
Storage and queue adapters against Azurite (Microsoft's Azure Storage emulator, from node_modules).

Azurite runs on 127.0.0.1 only, in memory, with its telemetry off; one process serves the session.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

REPO = Path(__file__).resolve().parents[2]
AZURE_DIR = REPO / "docs" / "azure"
sys.path.insert(0, str(AZURE_DIR))  # the function app's modules, as the Functions host imports them

AZURITE = REPO / "node_modules" / ".bin" / "azurite"
START_TIMEOUT_S = 30
# Azurite's documented development account: a fixed, public name and key, valid for the emulator only.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

if TYPE_CHECKING:
    from collections.abc import Iterator

    from azure.functions.decorators.function_app import Function
    from azure.storage.blob import ContainerClient
    from azure.storage.queue import QueueClient


@dataclass(frozen=True)
class Azurite:
    blob_url: str
    queue_url: str

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_url};QueueEndpoint={self.queue_url};"
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    if not AZURITE.exists():
        message = "Azurite is not installed: `npm ci` installs it (package.json)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    workdir = tmp_path_factory.mktemp("azurite")
    blob, queue, table = _free_port(), _free_port(), _free_port()
    log = (workdir / "azurite.log").open("wb")
    process = subprocess.Popen(
        [
            str(AZURITE),
            *("--blobHost", "127.0.0.1", "--blobPort", str(blob)),
            *("--queueHost", "127.0.0.1", "--queuePort", str(queue)),
            *("--tableHost", "127.0.0.1", "--tablePort", str(table)),
            *("--inMemoryPersistence", "--disableTelemetry"),
            *("--silent", "--skipApiVersionCheck"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=workdir,  # whatever it writes stays in the test's folder
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (_listening(blob) and _listening(queue)):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                output = (workdir / "azurite.log").read_text(errors="replace")
                pytest.fail(f"Azurite did not start within {START_TIMEOUT_S} s:\n{output}")
            time.sleep(0.1)
        yield Azurite(f"http://127.0.0.1:{blob}/{ACCOUNT}", f"http://127.0.0.1:{queue}/{ACCOUNT}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture
def container(azurite: Azurite) -> Iterator[ContainerClient]:
    """A new, empty container of Azurite's account."""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    client = service.create_container(f"raw-{uuid.uuid4().hex[:12]}")
    yield client
    client.delete_container()


@pytest.fixture
def queue(azurite: Azurite) -> Iterator[QueueClient]:
    """A new, empty queue of Azurite's account."""
    from azure.storage.queue import QueueClient

    client = QueueClient.from_connection_string(azurite.connection_string, f"batches-{uuid.uuid4().hex[:12]}")
    client.create_queue()
    yield client
    client.delete_queue()


@cache
def indexed_functions() -> tuple[Function, ...]:
    """The app's functions as the host indexes them, once: a second `get_functions()` refuses the
    names as duplicates."""
    import function_app

    return tuple(function_app.app.get_functions())
