"""The runtime of a command that runs batches (`eventpipe ingest`, `eventpipe replay`), beside or
without a running `eventpipe up` on the same data directory.

Without one, the command takes the data directory's lock and runs its batches in-process, as
always. Beside one, two processes must not run the same batch at once (each would take the other's
staged objects away), so the command only stores its batches as pending, which `up`'s worker takes
in order, and waits for them to finish. Should that `up` stop meanwhile, the command takes the lock
and runs what is left itself.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import TYPE_CHECKING

from eventpipe.adapters.local.request_log import segments
from eventpipe.core.model import BatchStatus
from eventpipe.localrun.datadir_lock import UP, DataDirLock, holder_of
from eventpipe.localrun.logged_requests import LoggedRequests
from eventpipe.localrun.runtime import REQUEST_LOG_FOLDER, LocalRuntime

ERASE = "eventpipe erase"

if TYPE_CHECKING:
    from pathlib import Path

    from eventpipe.core.ingest import IngestSummary
    from eventpipe.core.model import BatchRecord
    from eventpipe.settings import Settings

POLL_S = 0.1
REPORT_EVERY_S = 5.0


class CommandRuntime:
    """A `LocalRuntime` for one command, and who runs its batches: this process or `up`'s worker."""

    def __init__(self, settings: Settings, command: str) -> None:
        self._settings = settings
        self._command = command
        self.beside_up = ""  # the `eventpipe up` whose worker runs our batches, if one does
        self.lock = self._acquire_or_find_up()
        self._handed = bool(self.beside_up)  # batches were left to a worker: `settle` has work to do
        self.runtime = LocalRuntime(settings, defer_to=(lambda: None) if self.beside_up else None)

    def finish_unfinished(self, *, include_failed: bool) -> list[BatchRecord]:
        """What a crash left pending (and failed batches, if asked), finished; `up`'s worker does it if one runs."""
        if self.beside_up and not include_failed:
            return []
        return [self.wait(record.batch_id) for record in self.runtime.finish_unfinished(include_failed=include_failed)]

    def settle_request_log(self) -> None:
        """Return once the request log's segments that hold requests now are gone: their requests are
        then in recorded groups, whose raw batches hold them. `up`'s worker deletes a segment once it
        has grouped its requests and the server writes to a newer one (within seconds); when no `up`
        runs (a crash left them, or it stopped), the requests are grouped here."""
        folder = self._settings.data_dir / REQUEST_LOG_FOLDER
        holding = [s for s in segments(folder) if _size(folder / s.name)]
        last_report = time.monotonic()
        while holding := [s for s in holding if (folder / s.name).exists()]:
            if self.lock is None and (lock := DataDirLock.try_acquire(self._settings.data_dir, self._command)):
                self.lock, self.beside_up = lock, ""
            if self.lock is not None:  # no server writes to the log, no worker reads it: group it here
                self.runtime.remove_unrecorded_groups()
                logged = LoggedRequests(
                    self.runtime, folder, max_events=self._settings.group_max_events, window_ms=0, writer_gone=True
                )
                try:
                    while logged.due_in_ms(self.runtime.clock.now_ms()) is not None:
                        logged.group()  # pending groups: their raw batches are rewritten like any other
                finally:
                    logged.close()
                return
            if time.monotonic() - last_report >= REPORT_EVERY_S:
                print(f"eventpipe: waiting for the worker of {self.beside_up} (its request log)", file=sys.stderr)
                last_report = time.monotonic()
            time.sleep(POLL_S)

    def wait(self, batch_id: str) -> BatchRecord:
        """The batch's record once it is no longer pending: at once when this process ran it."""
        last_report = time.monotonic()
        while True:
            record = self.runtime.batches.get(batch_id)
            if record is None or record.status is not BatchStatus.PENDING:
                assert record is not None, f"batch {batch_id} is not recorded"
                return record
            if self.lock is None and (lock := DataDirLock.try_acquire(self._settings.data_dir, self._command)):
                self.lock, self.beside_up = lock, ""  # `up` stopped: run what is left here
                self.runtime.run(record.batch_id, record.raw_key)
                continue
            if self.lock is not None:  # ours, and still pending: its workflow did not start (a store failed)
                return record
            if time.monotonic() - last_report >= REPORT_EVERY_S:
                print(f"eventpipe: waiting for the worker of {self.beside_up} (batch {batch_id})", file=sys.stderr)
                last_report = time.monotonic()
            time.sleep(POLL_S)

    def settle(self, summary: IngestSummary) -> IngestSummary:
        """`summary` with the outcome of its batches left pending for `up`'s worker, once they are done."""
        if not self._handed:
            return summary
        settled = dataclasses.replace(summary, unfinished=[])
        for batch_id in summary.unfinished:
            record = self.wait(batch_id)
            settled.curated += record.curated
            settled.duplicates += record.duplicates
            settled.rejected.update(record.rejected_by_code)
            if record.status is not BatchStatus.DONE:
                settled.unfinished.append(batch_id)
        return settled

    def close(self) -> None:
        self.runtime.close()
        if self.lock is not None:
            self.lock.release()

    def _acquire_or_find_up(self) -> DataDirLock | None:
        """The lock; or None beside a running `up`; waits while another command holds it."""
        waiting = False
        while (lock := DataDirLock.try_acquire(self._settings.data_dir, self._command)) is None:
            holder = holder_of(self._settings.data_dir)
            if holder.startswith(UP):
                self.beside_up = holder
                # erase runs no batch of its own: it waits for the ones `up` received before it
                role = (
                    "erasing once the batches it holds are done"
                    if self._command == ERASE
                    else "its worker runs these batches"
                )
                print(f"eventpipe: {holder} serves {self._settings.data_dir}; {role}", file=sys.stderr)
                return None
            if not waiting:  # another ingest or replay: wait for it rather than run its batches alongside it
                print(
                    f"eventpipe: waiting for {holder or 'another process'} to finish with {self._settings.data_dir}",
                    file=sys.stderr,
                )
                waiting = True
            time.sleep(POLL_S)
        return lock


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
