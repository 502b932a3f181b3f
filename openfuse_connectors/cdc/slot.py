"""Operations on a pipeline's slot and publication: create, inspect, check, drop, reset.

:func:`slot_health` is what the Dagster asset check and the API call; :func:`drop_pipeline`
and :func:`reset_position` are the two ways out of a :class:`SlotPositionError`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from openfuse_connectors.builtin.postgres.sql import qi, qname, split_stream
from openfuse_connectors.cdc.config import CdcSettings
from openfuse_connectors.cdc.errors import PublicationMismatchError, SlotInUseError, SlotPositionError
from openfuse_connectors.cdc.lsn import format_lsn, parse_lsn

if TYPE_CHECKING:
    from openfuse_connectors.cdc.sink import ChangeSink

__all__ = [
    "SlotHealth",
    "SlotInfo",
    "drop_pipeline",
    "drop_slot",
    "ensure_publication",
    "reset_position",
    "slot_health",
    "slot_info",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlotInfo:
    name: str
    plugin: str | None
    database: str | None
    active: bool
    active_pid: int | None
    confirmed_flush_lsn: int | None
    restart_lsn: int | None
    wal_status: str | None


def slot_info(conn: Any, slot: str) -> SlotInfo | None:
    row = conn.execute(
        "SELECT slot_name, plugin, database, active, active_pid, confirmed_flush_lsn::text, restart_lsn::text, "
        "wal_status FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    if row is None:
        return None
    return SlotInfo(
        row[0],
        row[1],
        row[2],
        bool(row[3]),
        row[4],
        parse_lsn(row[5]) if row[5] else None,
        parse_lsn(row[6]) if row[6] else None,
        row[7],
    )


def drop_slot(conn: Any, slot: str, *, force: bool = False, timeout_s: float = 10.0) -> bool:
    """Drop the slot; an active one only with ``force`` (its walsender is terminated first)."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = slot_info(conn, slot)
        if info is None:
            return False
        if not info.active:
            break
        if not force:
            raise SlotInUseError(slot=slot, pid=info.active_pid)
        conn.execute("SELECT pg_terminate_backend(%s)", (info.active_pid,))
        if time.monotonic() > deadline:
            raise SlotInUseError(slot=slot, pid=info.active_pid)
        time.sleep(0.1)
    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    return True


def ensure_publication(conn: Any, name: str, tables: list[str]) -> None:
    """Create the publication for exactly ``tables``; refuse an existing one with another set."""
    wanted = sorted(qname(*split_stream(t)) for t in tables)
    exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)).fetchone()
    if exists is None:
        # Changes of a partitioned table are published as the table's, not as its partitions'.
        conn.execute(
            f"CREATE PUBLICATION {qi(name)} FOR TABLE {', '.join(wanted)} WITH (publish_via_partition_root = true)"
        )
        return
    published = sorted(
        qname(r[0], r[1])
        for r in conn.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (name,)
        )
    )
    if published != wanted:
        raise PublicationMismatchError(publication=name, published=published, wanted=wanted)


def check_position(settings: CdcSettings, info: SlotInfo | None, committed: int, database: str) -> None:
    """Refuse to stream when the slot can no longer give every change after ``committed``."""
    slot = settings.slot
    if info is None:
        raise SlotPositionError(
            slot=slot,
            reason="the slot does not exist (it was dropped, or the server was restored or failed over)",
            slot_lsn=None,
            committed_lsn=committed,
        )
    if info.plugin != "pgoutput" or info.database != database:
        raise SlotPositionError(
            slot=slot,
            reason=f"the slot is not this pipeline's (plugin {info.plugin!r}, database {info.database!r})",
            slot_lsn=info.confirmed_flush_lsn,
            committed_lsn=committed,
        )
    if info.wal_status == "lost":
        raise SlotPositionError(
            slot=slot,
            reason="the slot was invalidated: the server removed WAL it still needed (max_slot_wal_keep_size)",
            slot_lsn=info.confirmed_flush_lsn,
            committed_lsn=committed,
        )
    if info.confirmed_flush_lsn is not None and info.confirmed_flush_lsn > committed:
        raise SlotPositionError(
            slot=slot,
            reason="the slot is ahead of the committed position (it was recreated or advanced by someone "
            "else, or the destination was restored from an older backup)",
            slot_lsn=info.confirmed_flush_lsn,
            committed_lsn=committed,
        )


@dataclass(frozen=True)
class SlotHealth:
    """What the asset check and the API show about a pipeline's slot."""

    pipeline: str
    slot: str
    exists: bool
    active: bool
    #: Bytes of WAL written since the position the pipeline confirmed (what it still has to read).
    lag_bytes: int | None
    #: Bytes of WAL the server keeps for the slot (``restart_lsn`` to now; disk in use).
    retained_wal_bytes: int | None
    wal_status: str | None
    current_lsn: str | None
    confirmed_flush_lsn: str | None
    restart_lsn: str | None
    threshold_bytes: int
    retained_threshold_bytes: int
    ok: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def slot_health(settings: CdcSettings, *, conn: Any = None) -> SlotHealth:
    """Lag and retained WAL of the pipeline's slot, judged against ``lag_threshold_bytes``."""
    from openfuse_connectors.cdc.catalog import source_connect

    own = conn is None
    conn = conn or source_connect(settings.source)
    try:
        row = conn.execute(
            "SELECT active, wal_status, pg_current_wal_lsn()::text, confirmed_flush_lsn::text, restart_lsn::text, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
            "FROM pg_replication_slots WHERE slot_name = %s",
            (settings.slot,),
        ).fetchone()
    finally:
        if own:
            conn.close()
    threshold = settings.lag_threshold_bytes
    if row is None:
        return SlotHealth(
            settings.pipeline, settings.slot, False, False, None, None, None, None, None, None, threshold,
            settings.retained_threshold, False,
            f"slot {settings.slot!r} does not exist: the pipeline has not started, or was dropped",
        )  # fmt: skip
    active, wal_status, current, confirmed, restart, lag, retained = row
    problems = []
    if wal_status in ("lost", "unreserved"):
        problems.append(f"wal_status is {wal_status!r}: the slot has lost or is about to lose WAL it needs")
    if lag is not None and lag > threshold:
        problems.append(f"lag {lag} bytes is above the threshold {threshold}")
    if retained is not None and retained > settings.retained_threshold:
        problems.append(
            f"retained WAL {retained} bytes is above the threshold {settings.retained_threshold} (an old "
            "open transaction on the source holds restart_lsn back, or the pipeline is not running)"
        )
    message = "; ".join(problems) or f"lag {lag} bytes, retained WAL {retained} bytes"
    return SlotHealth(
        settings.pipeline, settings.slot, True, bool(active), lag, retained, wal_status, current, confirmed,
        restart, threshold, settings.retained_threshold, not problems, message,
    )  # fmt: skip


def drop_pipeline(
    settings: CdcSettings, sinks: list[ChangeSink] | tuple[ChangeSink, ...] = (), *, force: bool = False
) -> None:
    """Drop the pipeline's slot and publication and forget its committed positions.

    The next start takes a new initial snapshot. An active slot (a runner is streaming) is only
    dropped with ``force``, which terminates that runner's connection.
    """
    from openfuse_connectors.cdc.catalog import source_connect

    conn = source_connect(settings.source)
    try:
        if drop_slot(conn, settings.slot, force=force):
            log.info("cdc: dropped replication slot %r", settings.slot)
        conn.execute(f"DROP PUBLICATION IF EXISTS {qi(settings.publication)}")
    finally:
        conn.close()
    for sink in sinks:
        sink.clear_state()


def reset_position(settings: CdcSettings, sinks: list[ChangeSink] | tuple[ChangeSink, ...]) -> int:
    """Accept the gap: store the slot's confirmed position as every sink's committed position."""
    from openfuse_connectors.cdc.catalog import source_connect
    from openfuse_connectors.cdc.replication import ReplicationConnection
    from openfuse_connectors.cdc.sink import CdcState

    conn = source_connect(settings.source)
    try:
        info = slot_info(conn, settings.slot)
    finally:
        conn.close()
    if info is None or info.confirmed_flush_lsn is None:
        raise SlotPositionError(
            slot=settings.slot,
            reason="there is no slot to take the position from; drop the pipeline and start it again",
            slot_lsn=None,
            committed_lsn=None,
        )
    repl = ReplicationConnection(settings.source, slot=settings.slot)
    try:
        ident = repl.identify_system()
    finally:
        repl.close()
    for sink in sinks:
        old = sink.read_state()
        state = CdcState.new(settings, ident.system_id, ident.timeline, info.confirmed_flush_lsn)
        if old is not None:
            state = state.model_copy(
                update={"snapshot_lsn": old.snapshot_lsn, "snapshot_at": old.snapshot_at}
            )
        log.warning(
            "cdc: %s position reset from %s to the slot's %s; changes in between are not delivered",
            sink.name,
            old.lsn if old else None,
            format_lsn(info.confirmed_flush_lsn),
        )
        sink.commit(state)
    return info.confirmed_flush_lsn
