"""FolderBucket: the raw bucket as a folder (keys are relative paths, writes are atomic)."""

from __future__ import annotations

import io
import os
import socket
import threading
from pathlib import Path

import pytest

from eventpipe.adapters.local.bucket import PREFIXES, FolderBucket
from eventpipe.core.errors import ObjectNotFoundError, StorageError


@pytest.fixture
def bucket(tmp_path: Path) -> FolderBucket:
    return FolderBucket(tmp_path / "bucket")


def files_on_disk(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_a_new_bucket_has_every_prefix_as_an_empty_folder(tmp_path: Path) -> None:
    # GIVEN a folder that does not exist yet
    root = tmp_path / "bucket"
    # WHEN a bucket is opened on it
    bucket = FolderBucket(root)
    # THEN each prefix is a folder (not staged/, which only earlier versions wrote) and nothing is listed
    assert sorted(p.name + "/" for p in root.iterdir()) == sorted(PREFIXES) == ["incoming/", "raw/", "rejected/"]
    assert list(bucket.keys("")) == []
    assert list(bucket.keys("staged/")) == []
    # AND an object put under another prefix makes its folder
    bucket.put("staged/left-by-an-earlier-version", b"x")
    assert list(bucket.keys("staged/")) == ["staged/left-by-an-earlier-version"]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("durable", [True, False])
def test_put_then_get_returns_the_same_bytes_under_each_prefix(
    bucket: FolderBucket, prefix: str, durable: bool
) -> None:
    # GIVEN bytes that include a newline, a NUL and non-ASCII
    data = b'{"a":1}\n\x00\xc3\xa9' * 100
    key = f"{prefix}deep/er/object.ndjson"
    # WHEN stored and read back
    bucket.put(key, data, durable=durable)
    # THEN the bytes are identical and the key is listed under its prefix only
    assert bucket.get(key) == data
    assert list(bucket.keys(prefix)) == [key]
    other = next(p for p in PREFIXES if p != prefix)
    assert list(bucket.keys(other)) == []


def test_keys_lists_nested_keys_in_order_scoped_to_the_prefix(bucket: FolderBucket) -> None:
    # GIVEN objects written out of order, some nested, some under other prefixes
    for key in ["raw/c.ndjson", "raw/b/d.ndjson", "incoming/x.json", "raw/a.ndjson", "raw/b/c.ndjson"]:
        bucket.put(key, key.encode(), durable=False)
    # WHEN listing raw/ (with and without the trailing slash) and everything
    # THEN the keys come sorted, as relative posix paths
    expected = ["raw/a.ndjson", "raw/b/c.ndjson", "raw/b/d.ndjson", "raw/c.ndjson"]
    assert list(bucket.keys("raw/")) == expected
    assert list(bucket.keys("raw")) == expected
    assert list(bucket.keys("raw/b/")) == ["raw/b/c.ndjson", "raw/b/d.ndjson"]
    assert list(bucket.keys("")) == ["incoming/x.json", *expected]


def test_keys_of_a_prefix_that_does_not_exist_is_empty(bucket: FolderBucket) -> None:
    bucket.put("raw/a", b"A")
    assert list(bucket.keys("nothing/here/")) == []
    # A key is not a folder: listing it as a prefix gives nothing, not an error.
    assert list(bucket.keys("raw/a/")) == []


def test_keys_skips_temporary_files(bucket: FolderBucket) -> None:
    # GIVEN a stored object and a temp file left by a crash in the middle of a write
    bucket.put("raw/a", b"A")
    (bucket.root / "raw" / ".tmp-abc123").write_bytes(b"half an obj")
    # WHEN listing
    # THEN the temp file is not a key
    assert list(bucket.keys("raw/")) == ["raw/a"]
    assert list(bucket.keys("")) == ["raw/a"]


def test_put_leaves_no_temporary_files(bucket: FolderBucket) -> None:
    # GIVEN several writes, durable and not, including overwrites
    for n in range(5):
        bucket.put(f"raw/{n % 2}/obj", bytes([n]) * 1000, durable=n % 2 == 0)
    # THEN only the objects themselves are on disk
    assert files_on_disk(bucket.root) == ["raw/0/obj", "raw/1/obj"]


def test_a_reader_sees_the_old_object_until_the_new_one_is_complete(
    bucket: FolderBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an object, and a hook that looks at the bucket just before the write is published
    bucket.put("raw/b", b"old" * 1000)
    seen: dict[str, object] = {}
    real_replace = os.replace

    def observing_replace(src: str, dst: str) -> None:
        seen["during"] = bucket.get("raw/b")
        seen["listed"] = list(bucket.keys("raw/"))
        seen["temp"] = Path(src).read_bytes()
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", observing_replace)
    # WHEN a new version is written
    bucket.put("raw/b", b"new" * 5000)
    # THEN until the rename, readers saw the whole old object and no temp key; the temp file was complete
    assert seen["during"] == b"old" * 1000
    assert seen["listed"] == ["raw/b"]
    assert seen["temp"] == b"new" * 5000
    assert bucket.get("raw/b") == b"new" * 5000


def test_a_failed_write_keeps_the_previous_object_and_removes_its_temp_file(
    bucket: FolderBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an object, and a disk that fails when the new version is flushed
    bucket.put("raw/b", b"old")

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    # WHEN a new version is written durably
    with pytest.raises(StorageError, match="raw/b"):
        bucket.put("raw/b", b"new version")
    monkeypatch.undo()
    # THEN the old version is intact and no temp file is left behind
    assert bucket.get("raw/b") == b"old"
    assert files_on_disk(bucket.root) == ["raw/b"]


@pytest.mark.parametrize("key", ["../x", "raw/../../x", "raw/../x", "/abs", "/etc/passwd", "", "."])
def test_invalid_keys_raise_storage_error(bucket: FolderBucket, key: str) -> None:
    # GIVEN a key that escapes the bucket or names nothing
    # WHEN it is used for any operation
    # THEN each one raises StorageError and nothing is written outside the bucket
    with pytest.raises(StorageError, match="invalid object key"):
        bucket.put(key, b"x")
    with pytest.raises(StorageError, match="invalid object key"):
        bucket.get(key)
    with pytest.raises(StorageError, match="invalid object key"):
        bucket.delete(key)
    assert files_on_disk(bucket.root.parent) == []


def test_keys_refuses_a_prefix_that_escapes_the_bucket(bucket: FolderBucket) -> None:
    with pytest.raises(StorageError, match="invalid object key"):
        list(bucket.keys("../"))


def test_get_of_a_missing_key_raises_storage_error_not_file_not_found(bucket: FolderBucket) -> None:
    # WHEN a key that was never written is read
    with pytest.raises(StorageError, match="raw/missing") as info:
        bucket.get("raw/missing")
    # THEN the vendor (OS) error is wrapped, not leaked
    assert not isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_get_of_a_prefix_folder_raises_storage_error(bucket: FolderBucket) -> None:
    with pytest.raises(StorageError):
        bucket.get("raw")


def test_put_onto_a_folder_raises_storage_error_and_cleans_up(bucket: FolderBucket) -> None:
    # GIVEN a nested key, so raw/dir is a folder
    bucket.put("raw/dir/obj", b"x")
    # WHEN something is written at the folder's own key
    with pytest.raises(StorageError):
        bucket.put("raw/dir", b"y")
    # THEN no temp file is left and the nested object is untouched
    assert files_on_disk(bucket.root) == ["raw/dir/obj"]


def test_a_key_with_a_nul_byte_raises_storage_error(bucket: FolderBucket) -> None:
    with pytest.raises(StorageError):
        bucket.get("raw/a\x00b")


def open_fds() -> int:
    return len(os.listdir("/dev/fd"))


def test_open_gives_a_buffered_blocking_stream_of_a_regular_file(bucket: FolderBucket) -> None:
    bucket.put("incoming/a.ndjson", b'{"a":1}\n' * 1000)
    with bucket.open("incoming/a.ndjson") as stream:
        assert isinstance(stream, io.BufferedReader)
        assert os.get_blocking(stream.fileno())
        assert stream.read() == b'{"a":1}\n' * 1000


def test_mapped_gives_the_object_as_it_was_when_mapped_even_once_replaced(bucket: FolderBucket) -> None:
    # GIVEN an object, mapped, and an empty one
    bucket.put("raw/b", b"old" * 5000)
    bucket.put("raw/empty", b"")
    mapped = bucket.mapped("raw/b")
    # WHEN the object is replaced (a put renames a new file into place) and deleted
    bucket.put("raw/b", b"new" * 7000)
    held = bytes(mapped)
    bucket.delete("raw/b")
    # THEN the map still holds the bytes it was made with; an empty object is b"" (no map can hold it)
    assert held == b"old" * 5000
    assert bytes(mapped) == b"old" * 5000
    assert bucket.mapped("raw/empty") == b""
    with pytest.raises(ObjectNotFoundError):
        bucket.mapped("raw/b")


def test_mapped_reads_an_object_smaller_than_min_bytes_and_holds_no_descriptor(bucket: FolderBucket) -> None:
    bucket.put("raw/small", b"s" * 100)
    bucket.put("raw/large", b"l" * 5000)
    before = open_fds()
    small, large = bucket.mapped("raw/small", min_bytes=4096), bucket.mapped("raw/large", min_bytes=4096)
    assert (small, bytes(large)) == (b"s" * 100, b"l" * 5000)
    assert isinstance(small, bytes)
    assert open_fds() - before == 1  # the large one's map
    del large
    assert open_fds() == before


def test_mapped_refuses_what_is_not_a_regular_file(bucket: FolderBucket) -> None:
    os.mkfifo(bucket.root / "incoming" / "pipe")
    with pytest.raises(StorageError, match="not a regular file"):
        bucket.mapped("incoming/pipe")
    with pytest.raises(StorageError):
        bucket.mapped("raw")


def test_open_of_a_fifo_refuses_at_once_instead_of_waiting_for_a_writer(bucket: FolderBucket) -> None:
    # GIVEN a FIFO under a key, with no writer
    fifo = bucket.root / "incoming" / "pipe.ndjson"
    os.mkfifo(fifo)
    fds = open_fds()
    outcome: list[BaseException | None] = []

    def try_open() -> None:
        try:
            bucket.open("incoming/pipe.ndjson").close()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    # WHEN it is opened
    opener = threading.Thread(target=try_open, daemon=True)
    opener.start()
    opener.join(5)
    if opener.is_alive():  # blocked in open(): a writer lets it go, so the thread ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        opener.join(5)
        pytest.fail("opening a FIFO blocked until a writer came")
    # THEN it is refused as not a regular file, and no descriptor is left open
    (error,) = outcome
    assert isinstance(error, StorageError)
    assert "not a regular file" in str(error)
    assert open_fds() == fds


def test_open_of_a_socket_or_a_folder_is_a_storage_error(bucket: FolderBucket, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a listening UNIX socket and a folder under keys of the bucket
    (bucket.root / "incoming" / "folder").mkdir()
    monkeypatch.chdir(bucket.root / "incoming")  # a socket's path is short: bind a relative one
    fds = open_fds()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind("s.sock")
        server.listen()
        fds_with_socket = open_fds()
        # WHEN each is opened THEN a StorageError names it, and no descriptor is left open
        for key in ("incoming/s.sock", "incoming/folder"):
            with pytest.raises(StorageError, match=f"cannot read {key}"):
                bucket.open(key)
        assert open_fds() == fds_with_socket
    assert open_fds() == fds


# --- what the file watcher reads through the port: entries with their version, and a move ----------


def test_entries_list_every_kind_of_entry_with_its_version(bucket: FolderBucket) -> None:
    # GIVEN a file, a nested file, a FIFO, a dangling link and a file in a hidden folder under incoming/
    bucket.put("incoming/a.json", b"{}")
    bucket.put("incoming/deep/b.json", b"[]")
    os.mkfifo(bucket.root / "incoming" / "pipe")
    os.symlink(bucket.root / "nowhere", bucket.root / "incoming" / "link")
    bucket.put("incoming/.hidden/c.json", b"{}")
    # WHEN the entries of incoming/ are listed
    entries = {entry.key: entry for entry in bucket.entries("incoming/")}
    # THEN each is there with what it is, hidden folders left out, and a file's version is its content's
    assert {key: entry.kind for key, entry in entries.items()} == {
        "incoming/a.json": "file",
        "incoming/deep/b.json": "file",
        "incoming/pipe": "a FIFO",
        "incoming/link": "a link that leads to no file",
    }
    assert entries["incoming/a.json"] == bucket.entry("incoming/a.json")
    version = entries["incoming/a.json"].version
    assert version is not None
    assert version[1] == 2
    bucket.put("incoming/a.json", b"{ }")
    assert bucket.entry("incoming/a.json").version != version
    assert bucket.entry("incoming/gone.json").kind is None


def test_move_renames_an_entry_into_another_prefix(bucket: FolderBucket) -> None:
    bucket.put("incoming/deep/a.json", b"{}")
    bucket.move("incoming/deep/a.json", "processed/deep/a.json")
    assert bucket.get("processed/deep/a.json") == b"{}"
    assert bucket.entry("incoming/deep/a.json").kind is None
    with pytest.raises(ObjectNotFoundError):
        bucket.move("incoming/deep/a.json", "processed/deep/a.json")
    (bucket.root / "rejected" / "taken").mkdir(parents=True)
    bucket.put("incoming/taken", b"x")
    with pytest.raises(StorageError):  # a folder is in the way
        bucket.move("incoming/taken", "rejected/taken")
    with pytest.raises(StorageError):
        bucket.move("incoming/taken", "../outside")
