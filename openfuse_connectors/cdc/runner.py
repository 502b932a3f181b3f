"""The CDC runner: one long-running loop per pipeline, from the slot to the sinks.

Model
    One process streams one pipeline's slot over the replication protocol (push, decoded once by
    the server) and groups what arrives into micro-batches that end at transaction boundaries: a
    batch is committed when ``max_batch_changes`` are waiting or ``max_batch_delay_ms`` after its
    first transaction arrived, whichever is first. A source transaction larger than
    ``chunk_changes`` is handed to the sinks in chunks inside one sink transaction, so memory stays
    bounded and the destination still applies it atomically.

Positions
    A sink stores the position it committed: the end of the last source transaction it holds
    (every transaction whose commit record starts before it is in that sink). The runner confirms
    to the slot only the smallest position every sink committed, and only after the commits, so
    the slot is never ahead of a destination. On start it asks the server to stream from that
    position and drops, per sink, the transactions the sink already has. When the captured tables
    are idle, the server's WAL position is committed and confirmed every ``heartbeat_interval_s``,
    so the slot does not keep WAL written elsewhere.

Stopping
    :meth:`CdcRunner.request_stop` (``run_cdc`` wires it to SIGTERM and SIGINT) ends the loop at the
    next transaction boundary: whole transactions received so far are committed and confirmed,
    a transaction still arriving is left for the next run.
"""

from __future__ import annotations

import bisect
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openfuse_connectors.cdc import pgoutput as po
from openfuse_connectors.cdc.catalog import Catalog, SourceInfo, check_source, describe_tables, source_connect
from openfuse_connectors.cdc.changes import UNCHANGED, Change, TableInfo
from openfuse_connectors.cdc.config import CdcSettings
from openfuse_connectors.cdc.errors import DecodeError, SlotInUseError, SlotPositionError
from openfuse_connectors.cdc.lsn import format_lsn
from openfuse_connectors.cdc.replication import (
    ReplicationConnection,
    SystemInfo,
    parse_keepalive,
    parse_xlogdata,
)
from openfuse_connectors.cdc.sink import CdcState, ChangeSink
from openfuse_connectors.cdc.slot import check_position, drop_slot, ensure_publication, slot_info
from openfuse_connectors.cdc.snapshot import SnapshotReader

__all__ = ["MARKER_PREFIX", "CdcRunner", "RunSummary", "run_cdc"]

log = logging.getLogger(__name__)

#: Prefix of the logical decoding messages the runner writes to know it has caught up.
MARKER_PREFIX = "openfuse.cdc"

#: Test and instrumentation hook: called with a point name ("snapshot_chunk", "published" -
#: every sink acknowledged the batch, nothing committed yet -, "committed" - every sink
#: committed, the slot not yet confirmed).
Hook = Callable[[str], None]


@dataclass
class RunSummary:
    pipeline: str
    slot: str
    snapshot_rows: int = 0
    changes: int = 0
    transactions: int = 0
    commits: int = 0
    position: str | None = None
    stopped_by: str = ""
    seconds: float = 0.0
    #: Seconds from a transaction's commit on the source to its commit in every sink (sampled
    #: per batch: the batch's first transaction), for the latency benchmark.
    latencies: list[float] = field(default_factory=list)


@dataclass
class _Txn:
    begin: po.Begin
    skip_all: bool
    changes: list[Change] = field(default_factory=list)
    spilled: bool = False


class _Stopped(Exception):
    pass


class CdcRunner:
    """Streams one pipeline's changes into its sinks until stopped."""

    def __init__(
        self,
        settings: CdcSettings,
        sinks: list[ChangeSink],
        *,
        hook: Hook | None = None,
        stop: threading.Event | None = None,
    ):
        if not sinks:
            from openfuse_connectors.errors import ConfigError

            raise ConfigError("cdc: a pipeline needs at least one sink", field="destination")
        self.settings = settings
        self.sinks = list(sinks)
        self.hook = hook or (lambda point: None)
        self.stop = stop or threading.Event()
        self.positions: list[int] = []
        self.confirmed = 0
        self.received = 0
        self.summary = RunSummary(settings.pipeline, settings.slot)
        self._state: CdcState | None = None
        self._repl: ReplicationConnection | None = None

    def request_stop(self) -> None:
        self.stop.set()

    # -- entry point

    def run(self, *, until_caught_up: bool = False, max_seconds: float | None = None) -> RunSummary:
        """Snapshot if needed, then stream until stopped (or caught up, or ``max_seconds`` passed)."""
        started = time.monotonic()
        deadline = started + max_seconds if max_seconds is not None else None
        s = self.settings
        src = source_connect(s.source)
        try:
            info = check_source(src)
            describe_tables(src, s.tables)  # refuses keyless tables before they join a publication
            ensure_publication(src, s.publication, list(s.tables))
            for sink in self.sinks:
                sink.open(info)
            states = [sink.read_state() for sink in self.sinks]
            self._repl = ReplicationConnection(s.source, slot=s.slot)
            ident = self._repl.identify_system()
            if any(st is None for st in states):
                self._snapshot(src, ident, states)
            else:
                self._resume(src, ident, info, [st for st in states if st is not None])
            if self.stop.is_set():
                self.summary.stopped_by = "stop"
            else:
                self._stream(src, until_caught_up=until_caught_up, deadline=deadline)
        finally:
            for sink in self.sinks:
                try:
                    sink.rollback()
                    sink.close()
                except Exception as e:  # closing must not hide the error that ended the run
                    log.warning("cdc: closing sink %s failed: %s", sink.name, e)
            if self._repl is not None:
                self._repl.close()
            src.close()
        self.summary.seconds = time.monotonic() - started
        self.summary.position = format_lsn(min(self.positions)) if self.positions else None
        return self.summary

    # -- start: snapshot or resume

    def _snapshot(self, src: Any, ident: SystemInfo, states: list[CdcState | None]) -> None:
        s = self.settings
        assert self._repl is not None
        existing = slot_info(src, s.slot)
        if existing is not None:
            if existing.active:
                raise SlotInUseError(slot=s.slot, pid=existing.active_pid)
            log.warning(
                "cdc: %s has no committed position in %s; dropping slot %r and taking a new initial snapshot",
                s.pipeline,
                [sink.name for sink, st in zip(self.sinks, states, strict=True) if st is None],
                s.slot,
            )
            drop_slot(src, s.slot)
        lsn, snapshot_name = self._repl.create_slot(export_snapshot=s.snapshot == "initial")
        log.info("cdc: created slot %r at %s", s.slot, format_lsn(lsn))
        state = CdcState.new(s, ident.system_id, ident.timeline, lsn).model_copy(
            update={"snapshot_lsn": format_lsn(lsn)}
        )
        try:
            if snapshot_name is not None:
                reader = SnapshotReader(
                    s.source,
                    snapshot_name=snapshot_name,
                    tables=s.tables,
                    lsn=lsn,
                    chunk_rows=s.snapshot_chunk_rows,
                )
                try:
                    tables = reader.open()
                    for sink in self.sinks:
                        sink.begin_snapshot(tables)
                    for chunk in reader.chunks():
                        if self.stop.is_set():
                            raise _Stopped
                        for sink in self.sinks:
                            sink.write(chunk)
                        self.hook("snapshot_chunk")
                finally:
                    reader.close()
                self.summary.snapshot_rows = reader.rows
                state = state.model_copy(update={"snapshot_at": state.updated_at})
            for sink in self.sinks:
                sink.flush()
            self.hook("published")
            for sink in self.sinks:
                sink.commit(state)
        except _Stopped:
            for sink in self.sinks:
                sink.rollback()
            self._repl.close()  # ends the snapshot export and frees the slot
            self._repl = None
            drop_slot(src, s.slot)  # nothing committed: do not leave a slot holding WAL
            log.info("cdc: stopped during the initial snapshot; nothing was committed")
            return
        except BaseException:
            for sink in self.sinks:
                sink.rollback()
            raise
        self._state = state
        self.positions = [lsn] * len(self.sinks)
        self.confirmed = lsn

    def _resume(self, src: Any, ident: SystemInfo, info: SourceInfo, states: list[CdcState]) -> None:
        s = self.settings
        for st in states:
            if st.system_id != ident.system_id:
                raise SlotPositionError(
                    slot=s.slot,
                    reason=f"the committed position belongs to another PostgreSQL cluster (system identifier "
                    f"{st.system_id}; this server is {ident.system_id})",
                    slot_lsn=None,
                    committed_lsn=st.position,
                )
        self.positions = [st.position for st in states]
        committed = min(self.positions)
        slot = slot_info(src, s.slot)
        check_position(s, slot, committed, info.database)
        assert slot is not None
        if slot.active:
            raise SlotInUseError(slot=s.slot, pid=slot.active_pid)
        self._state = min(states, key=lambda st: st.position).model_copy(
            update={"system_id": ident.system_id, "timeline": ident.timeline}
        )
        self.confirmed = slot.confirmed_flush_lsn or committed

    # -- streaming

    def _stream(self, src: Any, *, until_caught_up: bool, deadline: float | None) -> None:
        s = self.settings
        repl = self._repl
        assert repl is not None and self._state is not None
        start = min(self.positions)
        repl.start(start_lsn=start, publication=s.publication)
        log.info("cdc: streaming slot %r from %s", s.slot, format_lsn(start))
        self.received = max(self.confirmed, start)
        catalog = Catalog(src)
        relations: dict[int, TableInfo] = {}
        txn: _Txn | None = None
        ready: list[Change] = []
        ready_end = 0
        ready_since: float | None = None
        ready_commit_us: int | None = None
        last_status = last_commit = time.monotonic()
        marker = None
        if until_caught_up:
            marker = f"{s.slot}:{uuid.uuid4().hex}".encode()
            src.execute("SELECT pg_logical_emit_message(false, %s, %s)", (MARKER_PREFIX, marker))
        caught_up = False
        delay = s.max_batch_delay_ms / 1000
        try:
            while True:
                now = time.monotonic()
                stopping = self.stop.is_set() or (deadline is not None and now >= deadline)
                if stopping and txn is not None and txn.spilled:
                    # A large transaction is half written: abandon it; it is sent again next time.
                    for sink in self.sinks:
                        sink.rollback()
                    txn = None
                if stopping or caught_up:
                    if ready:
                        self._commit(ready, ready_end, ready_commit_us)
                    self.summary.stopped_by = (
                        "caught_up" if caught_up else "stop" if self.stop.is_set() else "max_seconds"
                    )
                    break
                wait = 0.1
                if ready_since is not None:
                    wait = max(0.0, min(wait, ready_since + delay - now))
                for frame in repl.read(wait):
                    kind = frame[0]
                    if kind == 0x6B:  # k: keepalive
                        wal_end, reply = parse_keepalive(frame)
                        self.received = max(self.received, wal_end)
                        if reply:
                            repl.send_status(received=self.received, flushed=self.confirmed)
                            last_status = time.monotonic()
                        continue
                    if kind != 0x77:  # w: XLogData
                        continue
                    lsn, wal_end, payload = parse_xlogdata(frame)
                    self.received = max(self.received, wal_end)
                    msg = po.decode(payload)
                    if isinstance(msg, po.Begin):
                        txn = _Txn(msg, skip_all=all(msg.final_lsn < p for p in self.positions))
                    elif isinstance(msg, po.Commit):
                        assert txn is not None
                        if txn.skip_all:
                            txn = None
                            continue
                        self.summary.transactions += 1
                        if txn.spilled:
                            self._commit(txn.changes, msg.end_lsn, msg.commit_ts_us)
                        else:
                            ready.extend(txn.changes)
                            ready_end = msg.end_lsn
                            if ready_since is None:
                                ready_since = time.monotonic()
                                ready_commit_us = msg.commit_ts_us
                        txn = None
                        if len(ready) >= s.max_batch_changes:
                            self._commit(ready, ready_end, ready_commit_us)
                            ready, ready_since, ready_commit_us = [], None, None
                            last_commit = time.monotonic()
                    elif isinstance(msg, po.Relation):
                        relations[msg.relid] = catalog.table(msg)
                    elif isinstance(msg, po.Message):
                        if not msg.transactional and msg.prefix == MARKER_PREFIX and msg.content == marker:
                            caught_up = True
                    elif isinstance(msg, po.Insert | po.Update | po.Delete | po.Truncate):
                        if txn is None:
                            raise DecodeError(kind=type(msg).__name__, reason="change outside a transaction")
                        if txn.skip_all:
                            continue
                        txn.changes.extend(_changes(msg, txn.begin, relations, lsn))
                        if len(txn.changes) >= s.chunk_changes:
                            if ready:
                                self._commit(ready, ready_end, ready_commit_us)
                                ready, ready_since, ready_commit_us = [], None, None
                            self._write(txn.changes)
                            self.summary.changes += len(txn.changes)
                            txn.changes = []
                            txn.spilled = True
                now = time.monotonic()
                if txn is None and ready and ready_since is not None and now - ready_since >= delay:
                    self._commit(ready, ready_end, ready_commit_us)
                    ready, ready_since, ready_commit_us = [], None, None
                    last_commit = now
                elif (
                    txn is None
                    and not ready
                    and self.received > min(self.positions)
                    and now - last_commit >= s.heartbeat_interval_s
                ):
                    # Idle: nothing of ours in the WAL up to `received`; store and confirm it.
                    self._commit([], self.received, None)
                    last_commit = now
                if now - last_status >= s.status_interval_s:
                    repl.send_status(received=self.received, flushed=self.confirmed)
                    last_status = now
        except BaseException:
            for sink in self.sinks:
                sink.rollback()
            raise
        try:
            repl.send_status(received=self.received, flushed=self.confirmed)
        except Exception as e:  # the position is committed in the sinks; the slot catches up next run
            log.warning("cdc: final status update failed: %s", e)

    def _write(self, changes: list[Change]) -> None:
        """Hand changes to every sink, without those a sink already committed."""
        if not changes:
            return
        for sink, pos in zip(self.sinks, self.positions, strict=True):
            part = changes
            if changes[0].commit_lsn < pos:
                # Changes are in commit order: drop the prefix this sink already has.
                i = bisect.bisect_left([c.commit_lsn for c in changes], pos)
                part = changes[i:]
            if part:
                sink.write(part)

    def _commit(self, changes: list[Change], end_lsn: int, commit_ts_us: int | None) -> None:
        assert self._state is not None and self._repl is not None
        if changes:
            self._write(changes)
            self.summary.changes += len(changes)
        for sink in self.sinks:
            sink.flush()
        self.hook("published")
        state = self._state.at(end_lsn)
        for i, sink in enumerate(self.sinks):
            if self.positions[i] < end_lsn:
                sink.commit(state)
                self.positions[i] = end_lsn
        self._state = state
        self.summary.commits += 1
        if commit_ts_us is not None:
            self.summary.latencies.append(time.time() - commit_ts_us / 1_000_000)
        self.hook("committed")
        self.confirmed = min(self.positions)
        self._repl.send_status(received=self.received, flushed=self.confirmed)


def _changes(msg: Any, begin: po.Begin, relations: dict[int, TableInfo], lsn: int) -> list[Change]:
    """pgoutput row messages -> changes; a key change becomes a delete and a create (as Debezium)."""

    def change(op: str, t: TableInfo, before: Any, after: Any) -> Change:
        return Change(op, t, before, after, lsn, begin.final_lsn, begin.xid, begin.commit_ts_us)

    if isinstance(msg, po.Truncate):
        return [change("t", _table(relations, r), None, None) for r in msg.relids]
    t = _table(relations, msg.relid)
    if isinstance(msg, po.Insert):
        return [change("c", t, None, msg.new)]
    if isinstance(msg, po.Delete):
        return [change("d", t, msg.old, None)]
    new = msg.new
    old = msg.old
    if old is not None and msg.old_kind == "O" and any(v is UNCHANGED for v in new):
        # REPLICA IDENTITY FULL sends the whole old row: unchanged TOASTed values are in it.
        new = tuple(o if v is UNCHANGED else v for v, o in zip(new, old, strict=True))
    if old is None:
        return [change("u", t, None, new)]
    idx = t.key_index
    if t.keyless or any(old[i] != new[i] for i in idx):
        created = change("c", t, None, new)
        created.moved_from = tuple(old[i] for i in idx)
        return [change("d", t, old, None), created]
    return [change("u", t, old if msg.old_kind == "O" else None, new)]


def _table(relations: dict[int, TableInfo], relid: int) -> TableInfo:
    try:
        return relations[relid]
    except KeyError:
        raise DecodeError(
            kind="R", reason=f"change for relation {relid} before its Relation message"
        ) from None


def run_cdc(
    settings: CdcSettings,
    sinks: list[ChangeSink],
    *,
    until_caught_up: bool = False,
    max_seconds: float | None = None,
    handle_signals: bool = True,
    hook: Hook | None = None,
) -> RunSummary:
    """Run a pipeline's CDC loop; SIGTERM and SIGINT stop it at the next transaction boundary.

    Signal handlers are installed only in the main thread (and restored on return); elsewhere,
    e.g. inside a Dagster op, use :class:`CdcRunner` with a ``stop`` event.
    """
    runner = CdcRunner(settings, sinks, hook=hook)
    previous: dict[signal.Signals, Any] = {}
    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda signum, frame: runner.request_stop())
    try:
        return runner.run(until_caught_up=until_caught_up, max_seconds=max_seconds)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
