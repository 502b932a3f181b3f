"""The destination side of a connector.

A load is a transaction: :meth:`Loader.open` returns a :class:`LoadTransaction`; the engine
prepares it with the target schema, streams batches in, adds quarantined rows, and commits it
together with the new stream state. Any exception before :meth:`LoadTransaction.commit`
returns leaves the destination exactly as it was.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import pyarrow as pa

from openfuse_connectors.config import ConnectorConfig
from openfuse_connectors.spec import SchemaDrift, StreamSpec
from openfuse_connectors.state import Cursor, StreamState

__all__ = ["CursorRange", "Disposition", "LoadTransaction", "Loader", "QuarantinedRow", "WriteJob"]

STATE_TABLE = "_openfuse_state"
QUARANTINE_TABLE = "_openfuse_quarantine"


class Disposition(StrEnum):
    OVERWRITE = "overwrite"  # staging table, swapped in atomically at commit
    APPEND = "append"
    MERGE = "merge"  # upsert on primary key, newest cursor wins
    #: Delete the rows of one cursor range, then append the range as read again, in one
    #: transaction (a time partition's refresh); only loaders with ``replaces_ranges``.
    REPLACE_RANGE = "replace_range"


@dataclass(frozen=True)
class CursorRange:
    """The rows with ``start <= field < end`` (cursor values as stored in stream state)."""

    field: str
    start: Cursor
    end: Cursor


@dataclass(frozen=True)
class QuarantinedRow:
    position: int
    field: str | None
    value: str | None
    reason: str
    record: dict[str, Any]


@dataclass
class WriteJob:
    pipeline: str
    stream: StreamSpec
    table: str
    disposition: Disposition
    drift: SchemaDrift
    run_id: str
    primary_key: tuple[str, ...] = ()
    cursor_field: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: With :attr:`Disposition.REPLACE_RANGE`: the range whose rows the load replaces.
    replace_range: CursorRange | None = None


class LoadTransaction(ABC):
    """One stream's load into the destination, committed all at once."""

    @abstractmethod
    def prepare(self, schema: pa.Schema) -> None:
        """Create or evolve the target (or its staging table) to hold ``schema``."""

    @abstractmethod
    def write(self, batch: pa.RecordBatch) -> None:
        """Append one batch (already conformed to the prepared schema)."""

    def write_raw(self, chunks: Iterator[bytes], fmt: str) -> int:
        """Load a pass-through byte stream; return rows loaded."""
        raise NotImplementedError(fmt)

    @abstractmethod
    def quarantine(self, rows: list[QuarantinedRow]) -> None:
        """Record rows that did not fit, in the same transaction."""

    @abstractmethod
    def commit(self, state: StreamState) -> None:
        """Swap/merge, save ``state`` in the destination state table, and commit - atomically."""

    @abstractmethod
    def rollback(self) -> None:
        """Abandon everything written in this transaction."""

    def __enter__(self) -> LoadTransaction:
        return self

    def __exit__(self, et: object, ev: object, tb: object) -> None:
        if et is not None:
            self.rollback()


class Loader(ABC):
    """Writes Arrow batches to a destination, with the stream state in the same transaction."""

    name: ClassVar[str]
    config_model: ClassVar[type[ConnectorConfig]]
    required_feature: ClassVar[str | None] = None
    passthrough_formats: ClassVar[frozenset[str]] = frozenset()
    #: The loader handles :attr:`Disposition.REPLACE_RANGE`: its transaction deletes the rows of
    #: ``job.replace_range`` from an existing table before the load's rows go in.
    replaces_ranges: ClassVar[bool] = False

    def __init__(self, config: ConnectorConfig):
        self.config = config

    @abstractmethod
    def check(self) -> None: ...

    @abstractmethod
    def read_state(self, pipeline: str, stream: str) -> StreamState | None:
        """The state committed by the last successful load of this stream, if any.

        ``stream`` is :attr:`StreamSpec.state_key`; loaders save state under the same key
        (``job.stream.state_key``).
        """

    @abstractmethod
    def table_schema(self, table: str) -> pa.Schema | None:
        """The Arrow schema of an existing destination table, or None when it does not exist."""

    @abstractmethod
    def open(self, job: WriteJob) -> LoadTransaction: ...

    def storage_type(self, t: pa.DataType) -> pa.DataType:
        """The Arrow type a column created for ``t`` reads back as (e.g. SQLite stores int32 as
        int64), so drift detection does not report a lossless round trip as a change."""
        return t

    def unfit_values(self, column: pa.Array, field: pa.Field) -> dict[int, tuple[str, str]]:
        """Values of the right Arrow type this destination still cannot store exactly (e.g. a
        timestamp beyond year 9999 in a format that keeps ISO 8601 text): ``{row: (value as
        text, why)}``. The engine quarantines those rows. Default: every value fits."""
        return {}

    def accepts_passthrough(self, fmt: str, source_schema: pa.Schema, job: WriteJob) -> bool:
        """Whether a raw byte stream of ``fmt`` with this schema can be loaded for ``job``."""
        return fmt in self.passthrough_formats

    def count_rows(self, table: str) -> int:
        raise NotImplementedError

    def read_table(self, table: str) -> pa.Table:
        """Read a whole destination table (for tests and checks on small tables)."""
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
