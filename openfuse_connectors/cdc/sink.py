"""Where change events go: the sink contract and the position committed with them.

A sink is written like a load transaction: :meth:`ChangeSink.write` any number of times,
:meth:`ChangeSink.flush` (everything written is acknowledged by the destination, not yet
committed), then :meth:`ChangeSink.commit` with the new :class:`CdcState`, or
:meth:`ChangeSink.rollback`. The runner confirms a position to the replication slot only after
every sink committed it, so the slot never runs ahead of what a destination holds.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel, ConfigDict

from openfuse_connectors.cdc.catalog import SourceInfo
from openfuse_connectors.cdc.changes import Change, TableInfo
from openfuse_connectors.cdc.config import CdcSettings
from openfuse_connectors.cdc.lsn import format_lsn, parse_lsn
from openfuse_connectors.state import StreamState

__all__ = ["STATE_STREAM", "CdcState", "ChangeSink"]

#: The stream key under which a pipeline's CDC position is stored in a destination's state
#: (``_openfuse_state`` table, or state topic): ``loader.read_state(pipeline, STATE_STREAM)``.
STATE_STREAM = "@cdc"


class CdcState(BaseModel):
    """The source position a sink has committed, with what it refers to."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    #: Every transaction whose commit record starts before this LSN is in the destination.
    lsn: str
    slot: str
    publication: str
    #: PostgreSQL's system identifier: a position is meaningless on another cluster.
    system_id: str
    timeline: int
    tables: tuple[str, ...] = ()
    snapshot_lsn: str | None = None
    snapshot_at: str | None = None
    updated_at: str | None = None

    @property
    def position(self) -> int:
        return parse_lsn(self.lsn)

    @classmethod
    def new(cls, settings: CdcSettings, system_id: str, timeline: int, lsn: int) -> CdcState:
        return cls(
            lsn=format_lsn(lsn),
            slot=settings.slot,
            publication=settings.publication,
            system_id=system_id,
            timeline=timeline,
            tables=settings.tables,
            updated_at=_now(),
        )

    def at(self, lsn: int) -> CdcState:
        return self.model_copy(update={"lsn": format_lsn(lsn), "updated_at": _now()})

    def to_stream_state(self) -> StreamState:
        return StreamState(extra={"cdc": self.model_dump(mode="json")})

    @classmethod
    def from_stream_state(cls, state: StreamState | None) -> CdcState | None:
        if state is None or "cdc" not in state.extra:
            return None
        return cls.model_validate(state.extra["cdc"])


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class ChangeSink(ABC):
    """One destination of change events."""

    name: str = "sink"

    def open(self, source: SourceInfo) -> None:  # noqa: B027 - optional hook
        """Called once before anything is written, with facts about the source."""

    @abstractmethod
    def read_state(self) -> CdcState | None:
        """The committed position of this sink's pipeline, or None when it never committed one."""

    @abstractmethod
    def begin_snapshot(self, tables: list[TableInfo]) -> None:
        """An initial snapshot of ``tables`` follows (op ``r``), in this sink's transaction."""

    @abstractmethod
    def write(self, changes: list[Change]) -> None:
        """Hand over changes in source order (may be a part of a large source transaction)."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Wait until the destination acknowledged everything written (it is not committed yet)."""

    @abstractmethod
    def commit(self, state: CdcState) -> None:
        """Make the written changes and ``state`` durable together (or, for Kafka, in that order)."""

    @abstractmethod
    def rollback(self) -> None:
        """Abandon what was written since the last commit (where the destination can)."""

    @abstractmethod
    def clear_state(self) -> None:
        """Forget the committed position (the pipeline was dropped; the next start re-snapshots)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def describe(self) -> dict[str, Any]:
        return {"sink": self.name}
