"""File drops into `<data dir>/bucket/incoming/`: read once complete, moved to `processed/` (or
`rejected/`), and every line counted exactly once, even across a stop or a crash. First the file
watcher in this process (each file's fate, one scan at a time), then a running `eventpipe up`."""

from __future__ import annotations

import contextlib
import functools
import gzip
import itertools
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.core.errors import StorageError
from eventpipe.handlers.drops import ingest_drop
from eventpipe.localrun import watcher as watcher_module
from eventpipe.localrun.watcher import DropWatcher
from tests.conftest import ndjson
from tests.localrun.api_client import events, health, insights, invalid_event, shapeless_event, wait_for, wait_idle
from tests.localrun.process_probe import batches_of_source, curated_count, query
from tests.localrun.server_harness import start_server
from tests.localrun.servers import end, up

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import FrameType
    from typing import IO

    from eventpipe.core.model import Limits
    from eventpipe.handlers.drops import DropOutcome, ObjectDrop
    from eventpipe.handlers.services import Services
    from eventpipe.localrun.runtime import LocalRuntime
    from tests.localrun.server_harness import Server


# --- the watcher in this process: the pipeline runs synchronously, so counts are final at once ------------

PAST_NS = 10 * 10**9  # how long ago a settled file was last modified: more than SETTLE_S


def settle(path: Path) -> None:
    past = time.time_ns() - PAST_NS
    os.utime(path, ns=(past, past))


def put_settled(runtime: LocalRuntime, name: str, data: bytes) -> Path:
    """A file in incoming/ that has not changed for a while: the second scan that sees it reads it."""
    path = runtime.bucket.root / "incoming" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    settle(path)
    return path


def bucket_path(runtime: LocalRuntime, key: str) -> Path:
    return runtime.bucket.root / key


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Interrupt what blocks longer than `seconds` (an open() of a FIFO, say) with TimeoutError."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def scans(watcher: DropWatcher, count: int = 2) -> list[DropOutcome]:
    """`count` scans, within 10 seconds in all; what they read."""
    with deadline(10):
        return [outcome for _ in range(count) for outcome in watcher.scan()]


def messages(caplog: pytest.LogCaptureFixture, level: int = logging.ERROR) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == watcher_module.__name__ and r.levelno == level]


def good_and_bad() -> tuple[bytes, dict[str, Any]]:
    """NDJSON of a valid event and one its schema rejects."""
    good = events(1)[0]
    return ndjson(good, invalid_event()), good


def wrap_ingest_drop(
    monkeypatch: pytest.MonkeyPatch, after: Callable[[ObjectDrop], None] | None = None
) -> list[ObjectDrop]:
    """Record the drops the watcher reads, and call `after(drop)` once each is read; the drops."""
    real = ingest_drop
    seen: list[ObjectDrop] = []

    def wrapped(drop: ObjectDrop, services: Services) -> DropOutcome:
        seen.append(drop)
        outcome = real(drop, services)
        if after is not None:
            after(drop)
        return outcome

    monkeypatch.setattr(watcher_module, "ingest_drop", wrapped)
    return seen


def test_a_file_changed_while_it_is_read_is_moved_out_and_never_read_again(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a file of a valid and an invalid event, appended to in place just after it is read
    data, _ = good_and_bad()
    path = put_settled(runtime, "appended.ndjson", data)
    late = ndjson(*events(1))

    def append(drop: ObjectDrop) -> None:
        with path.open("ab") as stream:
            stream.write(late)

    seen = wrap_ingest_drop(monkeypatch, append)
    watcher = DropWatcher(runtime)
    # WHEN it is read
    scans(watcher)
    # THEN an error says what was not read and how to hand files over
    (error,) = messages(caplog)
    assert "incoming/appended.ndjson changed while it was read" in error
    assert "after the read was not read" in error
    assert "rename it into incoming/" in error
    # AND the whole file left incoming/ for processed/
    assert not path.exists()
    assert bucket_path(runtime, "processed/appended.ndjson").read_bytes() == data + late
    # AND later scans read nothing again: the invalid event has one quarantine record, the valid one is curated
    for processed in runtime.bucket.root.glob("processed/*"):
        settle(processed)
    assert scans(watcher, 4) == []
    assert len(seen) == 1
    assert (runtime.curated.count(), runtime.quarantine.count()) == (1, 1)


def test_a_file_replaced_while_it_is_read_stays_and_the_new_one_is_read(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a file that a producer replaces (by rename) with another of the same name just after it is read
    first, second = ndjson(*events(2)), ndjson(*events(3))
    path = put_settled(runtime, "daily.ndjson", first)

    def replace(drop: ObjectDrop) -> None:
        if drop.key == "incoming/daily.ndjson" and path.read_bytes() == first:
            partial = path.with_name("daily.ndjson.part")
            partial.write_bytes(second)
            os.replace(partial, path)
            settle(path)

    wrap_ingest_drop(monkeypatch, replace)
    watcher = DropWatcher(runtime)
    # WHEN it is read THEN the new file is not taken for the old one: it stays, and is read next
    scans(watcher)
    assert path.read_bytes() == second
    assert any("replaced while it was read" in m for m in messages(caplog, logging.WARNING))
    scans(watcher)
    assert bucket_path(runtime, "processed/daily.ndjson").read_bytes() == second
    assert runtime.curated.count() == 5


def json_too_large(limits: Limits) -> bytes:
    return orjson.dumps({"events": events(1) * (limits.max_body_bytes // 500)})


REFUSED = {
    "broken-gzip": lambda limits: gzip.compress(os.urandom(64 * 1024))[:30_000],
    "json-document-too-large": json_too_large,
}


@pytest.mark.parametrize("content", list(REFUSED))
def test_a_refused_file_moves_to_rejected_with_an_error(
    runtime: LocalRuntime, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    # GIVEN a file that cannot be read as a whole, and a good one
    put_settled(runtime, "a-refused.json.gz", REFUSED[content](runtime.settings.limits))
    put_settled(runtime, "b-good.ndjson", ndjson(*events(2)))
    # WHEN they are read
    outcomes = scans(DropWatcher(runtime))
    # THEN the refused one moves to rejected/, with an error that names it and says why; the good one is read
    assert [(o.key, o.status) for o in outcomes] == [
        ("incoming/a-refused.json.gz", "refused"),
        ("incoming/b-good.ndjson", "ingested"),
    ]
    assert bucket_path(runtime, "rejected/a-refused.json.gz").exists()
    assert not bucket_path(runtime, "processed/a-refused.json.gz").exists()
    assert not bucket_path(runtime, "incoming/a-refused.json.gz").exists()
    assert any("incoming/a-refused.json.gz refused, moved to rejected/: " in m for m in messages(caplog))
    assert bucket_path(runtime, "processed/b-good.ndjson").exists()
    assert runtime.curated.count() == 2


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_dangling_link(path: Path) -> None:
    path.symlink_to(path.with_name("nothing-here"))


def make_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path.name)  # relative to the working directory: a socket's path must be short


def make_file(path: Path) -> None:
    path.write_bytes(ndjson(*events(3)))


ODD_ENTRIES: dict[str, tuple[str, Callable[[Path], None]]] = {
    "fifo": ("a-pipe.ndjson", make_fifo),
    "socket": ("a-socket.ndjson", make_socket),
    "dangling-link": ("a-link.ndjson", make_dangling_link),
    "name-not-utf8": (os.fsdecode(b"a-\xff.ndjson"), make_file),
}


@pytest.mark.parametrize("kind", list(ODD_ENTRIES))
def test_an_entry_that_is_not_a_readable_file_moves_to_rejected_and_the_others_are_read(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    # GIVEN an odd entry in incoming/, listed before a good file
    name, make = ODD_ENTRIES[kind]
    incoming = runtime.bucket.root / "incoming"
    monkeypatch.chdir(incoming)
    make(incoming / name)
    put_settled(runtime, "b-good.ndjson", ndjson(*events(2)))
    # WHEN the watcher scans (nothing may block or raise)
    outcomes = scans(DropWatcher(runtime))
    # THEN the odd entry moved to rejected/ unread, with an error; the good file was read
    assert [o.key for o in outcomes] == ["incoming/b-good.ndjson"]
    assert os.path.lexists(runtime.bucket.root / "rejected" / name)
    assert not os.path.lexists(incoming / name)
    shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    assert [m for m in messages(caplog) if shown in m], messages(caplog)
    assert runtime.curated.count() == 2


def test_an_entry_that_cannot_be_moved_is_logged_once_and_moved_when_it_can(
    runtime: LocalRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a FIFO in incoming/ whose place in rejected/ is taken by a folder
    os.mkfifo(runtime.bucket.root / "incoming" / "pipe")
    (runtime.bucket.root / "rejected" / "pipe").mkdir()
    caplog.set_level(logging.INFO, logger=watcher_module.__name__)
    watcher = DropWatcher(runtime)
    # WHEN the watcher scans again and again
    scans(watcher, 5)
    # THEN one error says it is refused and cannot be moved, and it stays
    errors = [m for m in messages(caplog) if "incoming/pipe" in m]
    assert len(errors) == 1, errors
    assert "incoming/pipe refused (it is a FIFO, not a regular file) but cannot move to rejected/" in errors[0]
    assert (runtime.bucket.root / "incoming" / "pipe").exists()
    # AND once the way is clear, the next scan moves it
    (runtime.bucket.root / "rejected" / "pipe").rmdir()
    scans(watcher, 1)
    assert not os.path.lexists(runtime.bucket.root / "incoming" / "pipe")
    assert any("moved incoming/pipe to rejected/ at last" in m for m in messages(caplog, logging.INFO))


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail_in_ingest(monkeypatch: pytest.MonkeyPatch, runtime: LocalRuntime, key: str) -> list[int]:
    """`key` fails with an unexpected error as it is read; the count of its attempts."""
    real = ingest_drop
    attempts = [0]

    def failing(drop: ObjectDrop, services: Services) -> DropOutcome:
        if drop.key == key:
            attempts[0] += 1
            raise RuntimeError("a bug met in one file")
        return real(drop, services)

    monkeypatch.setattr(watcher_module, "ingest_drop", failing)
    return attempts


def fail_to_open(monkeypatch: pytest.MonkeyPatch, runtime: LocalRuntime, key: str) -> list[int]:
    """`key` cannot be opened (as an unreadable file; these tests may run as root); its attempts."""
    real = runtime.bucket.open
    attempts = [0]

    def failing(wanted: str, version_id: str | None = None) -> IO[bytes]:
        if wanted == key:
            attempts[0] += 1
            raise StorageError(f"cannot read {key}: [Errno 13] Permission denied")
        return real(wanted, version_id)

    monkeypatch.setattr(runtime.bucket, "open", failing)
    return attempts


@pytest.mark.parametrize("fail", [fail_in_ingest, fail_to_open], ids=["error-while-ingesting", "unreadable"])
def test_a_file_that_fails_does_not_stop_the_others_and_is_tried_again_a_minute_later(
    runtime: LocalRuntime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fail: Callable[[pytest.MonkeyPatch, LocalRuntime, str], list[int]],
) -> None:
    # GIVEN a file that fails, listed before a good one
    put_settled(runtime, "a-fails.ndjson", ndjson(*events(1)))
    put_settled(runtime, "b-good.ndjson", ndjson(*events(2)))
    attempts = fail(monkeypatch, runtime, "incoming/a-fails.ndjson")
    clock = FakeMonotonic()
    watcher = DropWatcher(runtime, monotonic=clock)
    # WHEN the watcher scans
    outcomes = scans(watcher)
    # THEN the good file is read, and the failure is logged (an unexpected one with its traceback)
    assert [o.key for o in outcomes] == ["incoming/b-good.ndjson"]
    (failure,) = [r for r in caplog.records if r.levelno == logging.ERROR and "a-fails" in r.getMessage()]
    assert (failure.exc_info is not None) == (fail is fail_in_ingest)
    assert attempts == [1]
    # AND it is not tried again within the minute, however many scans pass
    clock.now += 59
    assert scans(watcher, 4) == []
    assert attempts == [1]
    # AND a minute after, it is tried again (once), and once it works it is read and moved
    clock.now += 2
    scans(watcher)
    assert attempts == [2]
    monkeypatch.undo()
    clock.now += 61
    assert [o.key for o in scans(watcher)] == ["incoming/a-fails.ndjson"]
    assert bucket_path(runtime, "processed/a-fails.ndjson").exists()
    assert runtime.curated.count() == 3


def test_a_failure_of_the_stores_leaves_the_scan_and_the_file_is_read_once_they_work(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a file, and a batch store that fails once
    put_settled(runtime, "a.ndjson", ndjson(*events(2)))
    real = runtime.batches.create
    failures = [StorageError("database is locked")]

    def create_once_failing(record: Any) -> bool:
        if failures:
            raise failures.pop()
        return real(record)

    monkeypatch.setattr(runtime.batches, "create", create_once_failing)
    watcher = DropWatcher(runtime)
    # WHEN the watcher scans THEN the StorageError reaches the caller (the worker logs it)
    watcher.scan()
    with pytest.raises(StorageError, match="database is locked"):
        watcher.scan()
    # AND the file is read at the next scans, not a minute later
    assert [o.key for o in scans(watcher)] == ["incoming/a.ndjson"]
    assert runtime.curated.count() == 2


# --- a running `eventpipe up` --------------------------------------------------------------------------------

FILE_LIMIT = 16 * 1024 * 1024  # EVENTPIPE_MAX_FILE_BYTES of these servers: a gzip bomb stops early


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("drops") / "data"
    with up(data_dir, env={"EVENTPIPE_MAX_FILE_BYTES": str(FILE_LIMIT)}) as running:
        yield running


def incoming(server: Server) -> Path:
    return server.data_dir / "bucket" / "incoming"


def processed(server: Server) -> Path:
    return server.data_dir / "bucket" / "processed"


def drop(server: Server, name: str, data: bytes) -> None:
    """Write under a `.part` name, then rename: how a producer hands over a complete file."""
    target = incoming(server) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, target)


def mixed_lines(valid: int) -> tuple[bytes, dict[str, int]]:
    """NDJSON of `valid` valid events plus one each of: schema violation, no event_id, not JSON, a repeat."""
    good = events(valid)
    lines = [orjson.dumps(e) for e in good]
    lines += [orjson.dumps(invalid_event()), orjson.dumps(shapeless_event()), b'{"event_id": ', lines[0]]
    return b"\n".join(lines) + b"\n", {"received": valid + 4, "curated": valid, "duplicates": 1, "rejected": 3}


def rejected(server: Server) -> Path:
    return server.data_dir / "bucket" / "rejected"


def file_totals(server: Server, name: str, *, timeout: float = 60.0, to: str = "processed") -> dict[str, int]:
    """Once the file has moved to processed/ (or `to`) and its batches are done: its counts, summed over them."""
    moved = server.data_dir / "bucket" / to / name
    wait_for(
        lambda: moved.exists() and not (incoming(server) / name).exists(),
        what=f"{name} moved to {to}/",
        timeout=timeout,
    )
    source = f"s3:incoming/{name}"

    def done() -> list[dict[str, Any]] | None:
        batches = batches_of_source(server.data_dir, source)
        # moved means stored: every batch of the file exists by now (a refused file may have none)
        return batches if all(b["status"] == "done" for b in batches) else None

    batches = wait_for(done, what=f"batches of {name} done", timeout=timeout)
    return {key: sum(b[key] for b in batches) for key in ("received", "curated", "duplicates", "rejected")}


def malformed_count(server: Server, name: str) -> int:
    rows = query(
        server.data_dir,
        "SELECT COUNT(*) FROM quarantine q JOIN batches b ON q.batch_id = b.batch_id "
        "WHERE b.source = ? AND CAST(q.reasons AS TEXT) LIKE '%malformed_json%'",
        f"s3:incoming/{name}",
    )
    return int(rows[0][0])


def test_a_renamed_file_is_ingested_and_moved_to_processed(server: Server) -> None:
    # GIVEN a complete file handed over by rename
    data, expected = mixed_lines(20)
    # WHEN it lands in incoming/
    drop(server, "orders.ndjson", data)
    # THEN every line is counted once and the file moves to processed/ unchanged
    assert file_totals(server, "orders.ndjson") == expected
    assert (processed(server) / "orders.ndjson").read_bytes() == data


def test_a_gzip_file_is_ingested(server: Server) -> None:
    data, expected = mixed_lines(10)
    drop(server, "compressed.ndjson.gz", gzip.compress(data))
    assert file_totals(server, "compressed.ndjson.gz") == expected


def test_a_json_document_file_is_ingested(server: Server) -> None:
    drop(server, "document.json", orjson.dumps({"events": events(3)}))
    assert file_totals(server, "document.json") == {"received": 3, "curated": 3, "duplicates": 0, "rejected": 0}


def test_a_file_in_a_subfolder_is_ingested_and_keeps_its_folder(server: Server) -> None:
    data, expected = mixed_lines(5)
    drop(server, "2026/11/28/part-0001.ndjson", data)
    assert file_totals(server, "2026/11/28/part-0001.ndjson") == expected


def test_partial_and_hidden_files_are_left_alone(server: Server) -> None:
    # GIVEN files still being written (by name) and hidden ones, with valid events in them
    waiting = ["upload.ndjson.part", "upload.ndjson.tmp", "upload.ndjson.partial", ".hidden.ndjson", ".dir/a.ndjson"]
    for name in waiting:
        path = incoming(server) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(make_one()) + b"\n")
    # WHEN a complete file dropped after them has been read, and more scans have passed
    drop(server, "after.ndjson", orjson.dumps(make_one()) + b"\n")
    file_totals(server, "after.ndjson")
    scans = health(server.url)["worker"]["files_read"]
    time.sleep(1.5)  # three more scans (one every 0.5 s)
    # THEN the others are untouched and no batch was cut from them
    assert health(server.url)["worker"]["files_read"] == scans
    for name in waiting:
        assert (incoming(server) / name).exists(), name
        assert not batches_of_source(server.data_dir, f"s3:incoming/{name}"), name


def make_one() -> dict[str, Any]:
    return events(1)[0]


def test_a_file_appended_slowly_is_not_read_before_it_stops_changing(server: Server) -> None:
    # GIVEN a producer that writes a file in place, in five parts cut mid-line, pausing under a second between them
    data, expected = mixed_lines(40)
    cuts = [len(data) * k // 5 for k in range(6)]
    path = incoming(server) / "slow.ndjson"
    with path.open("wb") as stream:
        for start, stop in itertools.pairwise(cuts):
            stream.write(data[start:stop])
            stream.flush()
            if stop < len(data):
                time.sleep(0.9)
    # THEN the file is read once complete: every line counted once, none cut
    assert file_totals(server, "slow.ndjson") == expected
    assert malformed_count(server, "slow.ndjson") == 1  # only the line that is broken on purpose


def gzip_bomb(expanded: int) -> bytes:
    """`expanded` zero bytes as gzip: concatenated members of 8 MiB each, about 8 KiB apiece."""
    member = gzip.compress(b"\0" * (8 * 1024 * 1024), compresslevel=9)
    return member * (expanded // (8 * 1024 * 1024))


def test_a_gzip_bomb_is_refused_and_the_worker_goes_on(server: Server) -> None:
    # GIVEN a file of under a MiB that expands to 1 GiB, far over the file limit
    bomb = gzip_bomb(1024 * 1024 * 1024)
    assert len(bomb) < 1024 * 1024
    # WHEN it is dropped
    drop(server, "bomb.ndjson.gz", bomb)
    # THEN it is given up on (moved to rejected/, no event from it) without harm to the worker
    totals = file_totals(server, "bomb.ndjson.gz", to="rejected")
    assert totals["curated"] == 0
    assert not (processed(server) / "bomb.ndjson.gz").exists()
    assert wait_for(lambda: output_has(server, b"bomb.ndjson.gz refused, moved to rejected/"), what="the error")
    worker = health(server.url)["worker"]
    assert (worker["alive"], worker["restarts"]) == (True, 0)
    # AND the next file is read as usual
    data, expected = mixed_lines(3)
    drop(server, "after-bomb.ndjson", data)
    assert file_totals(server, "after-bomb.ndjson") == expected


def output_has(server: Server, text: bytes) -> bool:
    return text in b"".join(server.output)


# How long a test of a running `up` waits for its worker to get somewhere: a bound that only a wedged
# worker reaches, not a speed (a loaded machine has taken more than 20 s to read two small files).
WORKER_BOUND_S = 180.0


def test_a_deeply_nested_json_event_is_refused_alone(tmp_path: Path) -> None:
    with up(tmp_path / "data") as own:  # a server of its own: a failure could take its worker down for good
        # GIVEN a JSON document of a valid event and one nested 600 deep, then a good file
        deep = {"event_id": "e-deep", "event_type": "page_view"}
        document = b"[" + orjson.dumps(events(1)[0]) + b"," + orjson.dumps(deep)[:-1] + b',"x":'
        drop(own, "a-deep.json", document + b"[" * 600 + b"]" * 600 + b"}]")
        data, expected = mixed_lines(3)
        drop(own, "b-good.ndjson", data)
        # THEN the deep event alone is refused, the file is processed, and the good file is read
        assert file_totals(own, "a-deep.json", timeout=WORKER_BOUND_S) == {
            "received": 2,
            "curated": 1,
            "duplicates": 0,
            "rejected": 1,
        }
        assert file_totals(own, "b-good.ndjson", timeout=WORKER_BOUND_S) == expected
        # AND the worker never restarted
        assert health(own.url)["worker"]["restarts"] == 0


def test_entries_that_are_not_readable_files_move_to_rejected_and_the_worker_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with up(tmp_path / "data") as own:  # a server of its own: a FIFO could wedge its worker for good
        # GIVEN a FIFO, a listening socket and a file whose name is not UTF-8 in incoming/, then a good file
        incoming(own).mkdir(parents=True, exist_ok=True)
        monkeypatch.chdir(incoming(own))
        odd = ["a-pipe.ndjson", "a-socket.ndjson", os.fsdecode(b"a-\xff.ndjson")]
        os.mkfifo(odd[0])
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listening:
            listening.bind(odd[1])
            listening.listen()
            Path(odd[2]).write_bytes(ndjson(*events(2)))
            data, expected = mixed_lines(3)
            drop(own, "b-good.ndjson", data)
            # THEN the good file is read, the others move to rejected/ unread, each with an error
            assert file_totals(own, "b-good.ndjson", timeout=WORKER_BOUND_S) == expected
            for name in odd:
                wait_for(
                    functools.partial(os.path.lexists, rejected(own) / name),
                    what=f"{name!r} in rejected/",
                    timeout=WORKER_BOUND_S,
                )
                assert not os.path.lexists(incoming(own) / name)
        for text in (  # the worker logs a refusal once the entry has moved, and the output comes through a pipe
            b"a-pipe.ndjson refused, moved to rejected/: it is a FIFO",
            b"a-socket.ndjson refused, moved to rejected/: it is a socket",
            b"a-\\xff.ndjson refused, moved to rejected/: its name is not valid UTF-8",
        ):
            wait_for(functools.partial(output_has, own, text), what=f"{text!r} logged", timeout=WORKER_BOUND_S)
        # AND the worker never restarted
        assert health(own.url)["worker"]["restarts"] == 0


LARGE = 20_000
# 200 batches (a file is cut at the group size): a stop finds the file half done
LARGE_ENV = {"EVENTPIPE_MAX_BATCH_EVENTS": "100", "EVENTPIPE_GROUP_MAX_EVENTS": "100"}


def large_file() -> tuple[bytes, dict[str, int]]:
    """LARGE lines: valid events, with about 3% repeats and 2% invalid ones."""
    lines: list[bytes] = []
    for number, event in enumerate(events(LARGE - LARGE // 20)):
        lines.append(orjson.dumps(event))
        if number % 33 == 0 and len(lines) < LARGE:
            lines.append(lines[-1])
    while len(lines) < LARGE:
        lines.append(orjson.dumps(invalid_event()))
    unique = LARGE - LARGE // 20
    return b"\n".join(lines[:LARGE]) + b"\n", {"received": LARGE, "curated": unique}


def check_counted_once(server: Server, name: str, expected: dict[str, int]) -> None:
    totals = file_totals(server, name)
    assert totals["received"] == expected["received"]
    assert totals["curated"] + totals["duplicates"] + totals["rejected"] == expected["received"]
    assert totals["curated"] == expected["curated"]
    assert curated_count(server.data_dir) == expected["curated"]
    wait_idle(server.url)
    assert insights(server.url)["totals"]["events"] == expected["curated"]


def batch_states(server: Server, name: str) -> dict[str, int]:
    states: dict[str, int] = {}
    for batch in batches_of_source(server.data_dir, f"s3:incoming/{name}"):
        states[batch["status"]] = states.get(batch["status"], 0) + 1
    return states


def half_done(server: Server) -> dict[str, int] | None:
    states = batch_states(server, "large.ndjson")
    return states if states.get("done") and states.get("pending") else None


@pytest.mark.slow
def test_a_stop_in_the_middle_of_a_large_drop_then_a_restart_counts_every_line_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data, expected = large_file()
    first = start_server(data_dir, env=LARGE_ENV)
    try:
        # GIVEN a large file being worked through
        drop(first, "large.ndjson", data)
        states = wait_for(lambda: half_done(first), what="some batches of the file done, others pending", interval=0.02)
        # WHEN the server is stopped (SIGTERM)
        status = first.stop(signal.SIGTERM)
    finally:
        end(first)
    # THEN it exits cleanly, with part of the file left pending
    assert status == 0, b"".join(first.output).decode(errors="replace")
    assert states.get("pending")
    # AND after a restart every line is counted exactly once
    with up(data_dir, env=LARGE_ENV) as second:
        check_counted_once(second, "large.ndjson", expected)


@pytest.mark.slow
def test_a_crash_in_the_middle_of_a_large_drop_then_a_restart_counts_every_line_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data, expected = large_file()
    first = start_server(data_dir, env=LARGE_ENV)
    try:
        # GIVEN a large file whose batches are being stored
        drop(first, "large.ndjson", data)
        wait_for(lambda: batch_states(first, "large.ndjson") or None, what="a first batch stored", interval=0.01)
        # WHEN the server and its worker are killed (SIGKILL)
        first.kill()
    finally:
        end(first)
    # THEN after a restart every line is counted exactly once
    with up(data_dir, env=LARGE_ENV) as second:
        check_counted_once(second, "large.ndjson", expected)
