"""Wire the core to the local adapters: a folder bucket, SQLite stores and the in-process workflow."""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.adapters.local import (
    Database,
    FolderBucket,
    SqliteAppStore,
    SqliteBatchStore,
    SqliteCuratedStore,
    SqliteInsightsStore,
    SqliteQuarantine,
)
from eventpipe.adapters.local.curated import FILTER_FILE as CURATED_FILTER_FILE
from eventpipe.adapters.local.pseudonym_keys import PseudonymKeys
from eventpipe.adapters.local.request_log import RequestLog, record_limit
from eventpipe.core.apps import AppDirectory
from eventpipe.core.batch_ids import GROUP_PREFIX
from eventpipe.core.enrich import build_enrichers
from eventpipe.core.errors import EventpipeError, ExecutionFailedError
from eventpipe.core.grouping import merge
from eventpipe.core.ingest import Ingestor
from eventpipe.core.rawbatch import RAW_PREFIX, RawBatch, store_raw
from eventpipe.core.registry import SchemaRegistry
from eventpipe.core.replay import restart_unfinished
from eventpipe.core.timeutil import SystemClock
from eventpipe.handlers.wiring import build_steps, build_workflow
from eventpipe.localrun.log_acks import LoopAcks

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from eventpipe.core.model import BatchRecord
    from eventpipe.core.ports import Clock
    from eventpipe.settings import Settings

log = logging.getLogger(__name__)
DATABASE_FILE = "eventpipe.db"  # in the data directory: its presence says the directory holds data
REQUEST_LOG_FOLDER = "requests"  # in the data directory


class LocalRuntime:
    """The embedded pipeline. Its workflow starter runs each execution synchronously, in-process,
    unless `defer_to` is given: then a new batch is left pending for a background worker and
    `defer_to()` is called to wake it (`eventpipe up`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        defer_to: Callable[[], None] | None = None,
        request_log: bool = False,
    ) -> None:
        self.settings = settings
        self._defer_to = defer_to
        self.server_counters: Callable[[], dict[str, Any]] = dict  # what the server adds to GET /health
        self.clock = clock or SystemClock()
        self.db = Database(settings.data_dir / DATABASE_FILE, cache_mib=settings.sqlite_cache_mib)
        self.bucket = FolderBucket(settings.data_dir / "bucket")
        self.segments = FolderBucket(settings.data_dir / "curated", prefixes=())
        self.curated = SqliteCuratedStore(
            self.db,
            self.segments,
            clock=self.clock,
            filter_path=settings.data_dir / CURATED_FILTER_FILE,
            filter_mib=settings.dedup_filter_mib,
        )
        self.quarantine = SqliteQuarantine(self.db)
        self.batches = SqliteBatchStore(self.db)
        self.insights = SqliteInsightsStore(self.db)
        # Read on every keyed request (no cache): `eventpipe apps revoke` takes effect at once. The server
        # reads them on its event loop (localrun/log_acks.py): through a connection of their own, which a
        # long read or a write waiting for the worker's lock elsewhere in the process never holds up.
        self._apps_db = Database(settings.data_dir / DATABASE_FILE, cache_mib=1) if request_log else self.db
        self.apps = AppDirectory(SqliteAppStore(self._apps_db))
        self.file_splitter = None  # no time limit here: a dropped file is read whole, however large
        # No request index: a logged request gets a batch record of its own (GROUPED, naming its group)
        # when its group is recorded (logged_requests.py), and GET /batches finds it there.
        self.request_index = None
        self.registry = SchemaRegistry.load(*settings.schema_dirs)
        self.steps = build_steps(
            self, self.registry, build_enrichers(settings.enrichment), atomically=self.db.transaction
        )
        self.finishing_steps = self.steps
        self.workflow = build_workflow(self)
        self._key_noted = False  # run_group notes the pseudonym key once (adapters/local/pseudonym_keys.py)
        # A file's lines are cut into batches of the local group size (EVENTPIPE_GROUP_MAX_EVENTS), as the
        # worker groups requests: a batch's fixed cost (raw object and segment fsynced, its commits, its
        # sketch writes) is shared by 2,000 events, not 500. Requests keep their own limit.
        file_limits = replace(settings.limits, max_batch_events=settings.group_max_events)
        # `eventpipe up`'s server: requests go to the request log, group-committed (adapters/local/request_log.py)
        self.request_log = (
            RequestLog(
                settings.data_dir / REQUEST_LOG_FOLDER,
                max_message_bytes=record_limit(settings.limits),
                after_write=defer_to or (lambda: None),
            )
            if request_log
            else None
        )
        # The server's event loop answers `POST /events` and awaits the log's writes (localrun/log_acks.py)
        self.log_acks = (
            LoopAcks(self.request_log, max_pending_bytes=settings.max_pending_mib << 20)
            if self.request_log is not None
            else None
        )
        if self.log_acks is not None:  # a loop pass's keyless requests share one read of the apps table
            self.apps.same_moment = self.log_acks.current_pass
        self.requests_waiting: Callable[[], int] = lambda: 0  # in the log, not yet grouped (GET /health)
        self.ingestor = Ingestor(
            bucket=self.bucket,
            batches=self.batches,
            starter=self,
            clock=self.clock,
            limits=file_limits,
            queue=self.log_acks,
            queue_below_events=settings.limits.max_batch_events + 1,  # every request: the log costs no round trip
            encode_request=RawBatch.encode,
        )

    @cached_property
    def analytics(self) -> FolderBucket:
        """`<data dir>/analytics/`: the insights export's tables (docs/aws.md, "Analytics export")."""
        return FolderBucket(self.settings.data_dir / "analytics", prefixes=())

    def start(self, batch_id: str, raw_key: str, *, retry: bool = False) -> None:
        """Start one batch's workflow: run it here, or leave it to the worker (a failed batch started
        again becomes pending, since the worker takes pending batches)."""
        if self._defer_to is None:
            self.run(batch_id, raw_key)
            return
        if retry:
            self.batches.reopen(batch_id)
        self._defer_to()

    def run(self, batch_id: str, raw_key: str) -> None:
        """Run the workflow for one batch to its end; a failed execution leaves the batch marked failed."""
        self.run_group([(batch_id, raw_key)])

    def run_group(self, batches: Sequence[tuple[str, str]]) -> None:
        """Run the workflow of each `(batch_id, raw_key)`. A batch whose execution fails is marked
        failed and the others go on.

        Each batch commits its own writes (ProcessBatch's one transaction, then MarkDone's), never the
        group's in one: the write lock would then be held through every batch's parsing and
        enrichment, and `eventpipe up`'s server, which records each request's batch under the same
        lock, would answer at the worker's pace (a burst's acknowledgements fell by half, p99 to 1 s).
        """
        if not self._key_noted:
            self._note_pseudonym_key()
        failed = []
        for batch_id, raw_key in batches:
            try:
                self.workflow.run({"batch_id": batch_id, "raw_key": raw_key}, execution_name=batch_id)
            except ExecutionFailedError:
                failed.append(batch_id)
        for batch_id in failed:
            record = self.batches.get(batch_id)
            log.warning("batch %s failed: %s", batch_id, record.error if record else "unknown")

    def _note_pseudonym_key(self) -> None:
        """Before this process's first batch: the key its events are pseudonymised with, for `eventpipe erase`."""
        enrichment = self.settings.enrichment
        if "pseudonymise" in enrichment.enabled and enrichment.pseudonymise_fields and enrichment.pseudonym_key:
            PseudonymKeys(self.db).note(enrichment.pseudonym_key)
        self._key_noted = True

    def group_requests(self, records: Sequence[BatchRecord]) -> list[tuple[str, str]]:
        """Merge pending request batches into one group batch (micro-batching, core/grouping.py); the
        `(batch_id, raw_key)` to run: the group, or a single request as it is.

        The group's raw object is written durably first, then the group is recorded and its members
        marked grouped in one transaction: a crash at any point leaves either the members or the
        group pending, and the next round finishes it. A request whose raw object cannot be read
        runs alone, where the workflow marks it failed with the reason; the others wait a round.
        """
        members = []
        for record in records:
            try:
                members.append(RawBatch.decode(self.bucket.get(record.raw_key)))
            except (EventpipeError, ValueError, KeyError, orjson.JSONDecodeError):
                return [(record.batch_id, record.raw_key)]
        if len(members) == 1:
            return [(records[0].batch_id, records[0].raw_key)]
        group, firsts = merge(members)
        record = store_raw(self.bucket, group)
        self.batches.group(record, firsts)
        return [(record.batch_id, record.raw_key)]

    def remove_unrecorded_groups(self) -> int:
        """Delete the group raw batches that no batch record names; how many.

        A group's raw batch is written before the group is recorded (here and in logged_requests.py):
        a worker killed between the two leaves it behind, and the group formed again after a restart
        may take more requests, so it gets another name and nothing would ever delete the first (not
        retention, which goes by the records). Its requests wait still (in the request log, or pending),
        so it holds nothing that is not elsewhere. Call it only where no other process forms groups: at
        the worker's start, or from a command that holds the data directory's lock.
        """
        keys = list(self.bucket.keys(RAW_PREFIX + GROUP_PREFIX))  # a group's is raw/<group id>.ndjson (rawbatch.py)
        recorded = self.batches.ids_starting(GROUP_PREFIX)  # every group's record at once: one read of an index
        unrecorded = [key for key in keys if key.removeprefix(RAW_PREFIX).removesuffix(".ndjson") not in recorded]
        for key in unrecorded:
            self.bucket.delete(key)
        if unrecorded:
            log.warning("deleted %d group raw batches no record names (a crash left them)", len(unrecorded))
        return len(unrecorded)

    def finish_unfinished(self, *, include_failed: bool) -> list[BatchRecord]:
        """Drive pending batches (a crash left them) and, if asked, failed ones to their end again."""
        return restart_unfinished(self.batches, self, include_failed=include_failed)

    def health(self) -> dict[str, Any]:
        batches = self.batches.unfinished_counts()
        if self.request_log is not None:
            waiting = self.requests_waiting()
            batches["pending"] += waiting  # a request in the log is pending too, until its group is done
            batches["in_request_log"] = waiting
        return {"batches": batches, **self.server_counters()}

    def close(self) -> None:
        if self.request_log is not None:
            self.request_log.close()
        self.insights.close()
        if self._apps_db is not self.db:
            self._apps_db.close()
        self.db.close()
