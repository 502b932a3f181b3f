"""Errors of change data capture, grouped by what the operator should do (see ``errors.py``)."""

from __future__ import annotations

from openfuse_connectors.cdc.lsn import format_lsn
from openfuse_connectors.errors import FatalError, RetriableError

__all__ = [
    "DecodeError",
    "PublicationMismatchError",
    "ReplicationError",
    "SlotInUseError",
    "SlotPositionError",
    "SourceNotReadyError",
    "TableWithoutKeyError",
]


class SourceNotReadyError(FatalError):
    """The source server cannot do logical decoding as configured (wal_level, version, rights)."""

    def __init__(self, *, setting: str, value: object, fix: str):
        self.setting = setting
        self.value = value
        super().__init__(f"cdc: source {setting}={value!r}: {fix}")


class TableWithoutKeyError(FatalError):
    """A table has neither a primary key nor a usable replica identity."""

    def __init__(self, *, table: str, replica_identity: str):
        self.table = table
        self.replica_identity = replica_identity
        super().__init__(
            f"cdc: table {table} has no primary key and REPLICA IDENTITY "
            f"{ {'d': 'DEFAULT', 'n': 'NOTHING', 'f': 'FULL', 'i': 'USING INDEX'}.get(replica_identity, replica_identity) }"
            ": its updates and deletes cannot be captured (and once it is in a publication PostgreSQL "
            "rejects UPDATE and DELETE on it). Either add a primary key, or run "
            f"`ALTER TABLE {table} REPLICA IDENTITY FULL` (every change then carries the whole old row, "
            "and the table's events are keyed by the whole row), or remove the table from the pipeline."
        )


class PublicationMismatchError(FatalError):
    """The pipeline's publication exists with another set of tables."""

    def __init__(self, *, publication: str, published: list[str], wanted: list[str]):
        self.publication = publication
        self.published = published
        self.wanted = wanted
        super().__init__(
            f"cdc: publication {publication!r} publishes {published} but the pipeline captures {wanted}. "
            "Adding or removing tables needs a new initial snapshot: run `openfuse cdc drop` on the "
            "pipeline (drops its slot and publication) and start it again."
        )


class SlotPositionError(FatalError):
    """Streaming from the slot would silently lose changes; the operator has to choose."""

    def __init__(self, *, slot: str, reason: str, slot_lsn: int | None, committed_lsn: int | None):
        self.slot = slot
        self.reason = reason
        self.slot_lsn = slot_lsn
        self.committed_lsn = committed_lsn
        shown_slot = format_lsn(slot_lsn) if slot_lsn is not None else None
        shown_committed = format_lsn(committed_lsn) if committed_lsn is not None else None
        super().__init__(
            f"cdc: refusing to stream from slot {slot!r}: {reason} (slot confirmed_flush_lsn={shown_slot}, "
            f"position committed in the destination={shown_committed}). The changes in between are no "
            "longer in the slot. Choose one: (1) re-snapshot - `openfuse cdc drop` then start again: the "
            "slot is recreated and every table is read again (destination tables are reloaded, Kafka "
            "topics receive every row again as op=r); or (2) accept the gap - `openfuse cdc reset "
            "--accept-slot-position` stores the slot's position as the committed one, and the changes "
            "in between are missing downstream."
        )


class SlotInUseError(RetriableError):
    """Another process streams from the slot (a second runner of the same pipeline)."""

    def __init__(self, *, slot: str, pid: int | None):
        self.slot = slot
        self.pid = pid
        super().__init__(
            f"cdc: replication slot {slot!r} is in use by server process {pid}; another runner of this "
            "pipeline is streaming. Stop it first (or wait: this run can be retried)."
        )


class ReplicationError(RetriableError):
    """The replication connection failed or ended; the runner resumes from the committed position."""

    def __init__(self, *, slot: str, reason: str):
        self.slot = slot
        self.reason = reason
        super().__init__(f"cdc: replication from slot {slot!r} failed: {reason}")


class DecodeError(FatalError):
    """A pgoutput message could not be decoded (a protocol this version does not know)."""

    def __init__(self, *, kind: str, reason: str):
        self.kind = kind
        self.reason = reason
        super().__init__(f"cdc: cannot decode pgoutput message {kind!r}: {reason}")
