"""Time-partitioned incremental pipelines: each partition is a cursor range ``[start, end)``.

A pipeline opts in with its ``partitions`` block (:class:`~openfuse_connectors.spec.PartitionSpec`)::

    partitions:
      type: time
      granularity: daily            # hourly | daily | weekly | monthly - or cron: "0 */6 * * *"
      start: "2024-01-01"           # first partition (ISO date, or date + time for hourly)
      end: "2025-01-01"             # optional: no partition starts at or after it
      end_offset: 1                 # optional: also offer the partition still in progress
      timezone: Europe/Berlin       # optional, default UTC
      cursor_field: updated_at      # optional: every stream must use it as its cursor_field

Deprecated, still read when there is no ``partitions`` block (a warning is logged): the tags
``partition`` (granularity), ``partition_start``, ``partition_end``, ``partition_end_offset`` and
``timezone``.

Every stream of a partitioned pipeline must be incremental with a timestamp or date
``cursor_field``. A run for partition ``P = [start, end)`` syncs, per stream, exactly the
source rows with ``start <= cursor_field < end``:

* **Own state per partition.** The stream's state is kept under ``<state_key>#<partition>``
  (:class:`PartitionStreamSpec`), committed with the partition's rows in one destination
  transaction as for any sync. Partitions therefore never share a cursor: a backfill of any
  range, in any order, runs each partition independently, and the loader's per-state lock
  lets different partitions load in parallel.
* **Only the range is read and loaded.** The source is read from ``start`` (or from the
  partition's stored cursor, when it has synced before: the engine's usual inclusive read plus
  boundary-row digests), and rows at or after ``end`` are dropped before the engine sees them
  (:class:`CursorRangeExtractor`), so row counts, the new cursor and its boundary rows are the
  partition's own.
* **Rerunning a partition never duplicates.** ``incremental_dedupe`` merges on the primary
  key, newest cursor wins, so the order partitions land in does not matter either;
  ``incremental_append`` appends only rows after the partition's stored cursor (exactly once,
  like an unpartitioned incremental sync). A rerun picks up rows that arrived late inside the
  partition's range.
* ``full_refresh`` on a partition re-reads the whole range: for ``incremental_dedupe`` it is
  merged again (idempotent); for ``incremental_append`` the destination's rows of the range are
  replaced by it in one transaction (``Disposition.REPLACE_RANGE``: rows changed or deleted at
  the source inside the range are picked up), on destinations with ``replaces_ranges``
  (PostgreSQL, DuckDB, SQLite); others refuse it rather than load the rows twice.

Both bounds go to the source when the extractor declares ``bounded_reads`` (PostgreSQL, MySQL,
DuckDB, SQLite): a backfill of a year of daily partitions reads each day once instead of
everything after it. Other sources are read from ``start`` and filtered to ``< end``.

Limit: rows deleted from the source are not removed from the destination by a plain rerun or a
dedupe partition's refresh (as with any incremental sync) - only an append partition's full
refresh, which replaces its range, removes them.

The jobs carry the run tag ``openfuse/lock = <pipeline>@<partition>``, so the instance's
one-run-per-lock limit keeps two runs of one partition apart but lets partitions run in parallel.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    DagsterLogManager,
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    MonthlyPartitionsDefinition,
    TimeWindowPartitionsDefinition,
    WeeklyPartitionsDefinition,
)

from openfuse_connectors.catalog import StreamInfo
from openfuse_connectors.engine import StreamResult
from openfuse_connectors.errors import ConfigError
from openfuse_connectors.extractor import Extractor
from openfuse_connectors.loader import CursorRange, Loader, QuarantinedRow
from openfuse_connectors.registry import Registry
from openfuse_connectors.spec import PipelineSpec, StreamSpec, SyncMode
from openfuse_connectors.state import Cursor, StreamState
from openfuse_dagster.sync import sync_stream

__all__ = [
    "GRANULARITIES",
    "PARTITION_END_OFFSET_TAG",
    "PARTITION_END_TAG",
    "PARTITION_START_TAG",
    "PARTITION_TAG",
    "CursorRangeExtractor",
    "PartitionStreamSpec",
    "PartitionWindow",
    "Partitioning",
    "cursor_bounds",
    "partition_stream",
    "partitioning",
    "partitioning_label",
    "partitions_def",
    "sync_partition",
]

PARTITION_TAG = "partition"
PARTITION_START_TAG = "partition_start"
PARTITION_END_TAG = "partition_end"
PARTITION_END_OFFSET_TAG = "partition_end_offset"
_TIMEZONE_TAG = "timezone"  # the same tag as the cron schedule's (jobs.TIMEZONE_TAG)

log = logging.getLogger("openfuse_dagster")
_warned: set[str] = set()

_DEFS: dict[str, type[TimeWindowPartitionsDefinition]] = {
    "hourly": HourlyPartitionsDefinition,
    "daily": DailyPartitionsDefinition,
    "weekly": WeeklyPartitionsDefinition,
    "monthly": MonthlyPartitionsDefinition,
}
GRANULARITIES = tuple(_DEFS)


@dataclass(frozen=True)
class Partitioning:
    """A pipeline's partitioning, from its ``partitions`` block (or its deprecated tags)."""

    granularity: str | None
    start: str
    end: str | None = None
    timezone: str = "UTC"
    end_offset: int = 0
    cron: str | None = None
    #: Where the settings came from, for error messages: ``partitions`` or ``tags``.
    origin: str = "partitions"


def _tag(pipeline: PipelineSpec, key: str) -> str | None:
    v = pipeline.tags.get(key)
    return v.strip() if isinstance(v, str) and v.strip() else None


def partitioning(pipeline: PipelineSpec) -> Partitioning | None:
    """The pipeline's partitioning, or None; raises :class:`ConfigError` naming the field or stream."""
    p = pipeline.partitions
    if p is not None:
        return Partitioning(
            granularity=p.granularity,
            start=p.start,
            end=p.end,
            timezone=p.timezone,
            end_offset=p.end_offset,
            cron=p.cron,
        )
    granularity = _tag(pipeline, PARTITION_TAG)
    if granularity is None:
        return None
    if pipeline.name not in _warned:
        _warned.add(pipeline.name)
        log.warning(
            "pipeline %r: the partition tags are deprecated; write a `partitions:` block instead "
            "(granularity, start, end, end_offset, timezone)",
            pipeline.name,
        )
    if granularity not in _DEFS:
        raise ConfigError(
            f"unknown partition granularity; use one of {', '.join(GRANULARITIES)}",
            field=f"tags.{PARTITION_TAG}",
            value=granularity,
        )
    start = _tag(pipeline, PARTITION_START_TAG)
    if start is None:
        raise ConfigError(
            "a partitioned pipeline needs its first partition, e.g. partition_start: '2024-01-01'",
            field=f"tags.{PARTITION_START_TAG}",
        )
    for key, value in ((PARTITION_START_TAG, start), (PARTITION_END_TAG, _tag(pipeline, PARTITION_END_TAG))):
        if value is None:
            continue
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(
                "must be an ISO date such as 2024-01-01 (hourly: 2024-01-01T00:00)",
                field=f"tags.{key}",
                value=value,
            ) from None
    raw_offset = _tag(pipeline, PARTITION_END_OFFSET_TAG) or "0"
    if not raw_offset.isdigit():
        raise ConfigError(
            "must be a whole number >= 0", field=f"tags.{PARTITION_END_OFFSET_TAG}", value=raw_offset
        )
    for i, s in enumerate(pipeline.streams):
        if not s.mode.incremental or not s.cursor_field:
            raise ConfigError(
                f"every stream of a partitioned pipeline must be incremental (a partition is a "
                f"cursor range); stream {s.name!r} is {s.mode.value}",
                field=f"streams[{i}:{s.name}].mode",
                value=s.mode.value,
            )
    return Partitioning(
        granularity=granularity,
        start=start,
        end=_tag(pipeline, PARTITION_END_TAG),
        timezone=_tag(pipeline, _TIMEZONE_TAG) or "UTC",
        end_offset=int(raw_offset),
        origin="tags",
    )


def partitioning_label(pipeline: PipelineSpec) -> str:
    """``daily from 2024-01-01 (UTC)``, for descriptions."""
    p = partitioning(pipeline)
    if p is None:
        return "not partitioned"
    until = f" until {p.end}" if p.end else ""
    every = p.granularity or f"on cron {p.cron!r}"
    return f"{every} from {p.start}{until} ({p.timezone})"


def partitions_def(pipeline: PipelineSpec) -> TimeWindowPartitionsDefinition | None:
    """The Dagster partitions of ``pipeline`` (None when it is not partitioned)."""
    p = partitioning(pipeline)
    if p is None:
        return None
    fmt = "%Y-%m-%d-%H:%M" if p.granularity in ("hourly", None) else "%Y-%m-%d"

    def _date(value: str) -> str:
        return dt.datetime.fromisoformat(value).strftime(fmt)

    try:
        if p.granularity is None:
            assert p.cron is not None  # PartitionSpec needs one of the two
            return TimeWindowPartitionsDefinition(
                cron_schedule=p.cron,
                start=_date(p.start),
                end=_date(p.end) if p.end else None,
                fmt=fmt,
                timezone=p.timezone,
                end_offset=p.end_offset,
            )
        return _DEFS[p.granularity](  # type: ignore[call-arg]
            start_date=_date(p.start),
            end_date=_date(p.end) if p.end else None,
            timezone=p.timezone,
            end_offset=p.end_offset,
        )
    except Exception as e:  # Dagster's own checks (timezone, cron, end before start)
        field = f"tags.{PARTITION_TAG}" if p.origin == "tags" else "partitions"
        raise ConfigError(f"invalid partitioning: {e}", field=field) from None


@dataclass(frozen=True)
class PartitionWindow:
    """One partition: its key and its time range ``[start, end)`` (timezone-aware)."""

    key: str
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def of(cls, pdef: TimeWindowPartitionsDefinition, key: str) -> PartitionWindow:
        w = pdef.time_window_for_partition_key(key)
        return cls(key, w.start, w.end)


class PartitionStreamSpec(StreamSpec):
    """A stream restricted to one partition: same table, its own state key."""

    partition: str

    @property
    def state_key(self) -> str:
        return f"{super().state_key}#{self.partition}"


def partition_stream(stream: StreamSpec, key: str) -> PartitionStreamSpec:
    return PartitionStreamSpec.model_validate({**stream.model_dump(), "partition": key})


def cursor_bounds(field: pa.Field, start: dt.datetime, end: dt.datetime) -> tuple[pa.Scalar, pa.Scalar]:
    """``[start, end)`` as scalars of the cursor column's type.

    A timestamp with a time zone compares instants; a naive timestamp compares wall times in
    the partitions' time zone; a date column needs whole-day (or longer) partitions.
    """
    t = field.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            return (
                pa.scalar(start.replace(tzinfo=None), type=t),
                pa.scalar(end.replace(tzinfo=None), type=t),
            )
        return pa.scalar(start, type=t), pa.scalar(end, type=t)
    if pa.types.is_date(t):
        if start.time() != dt.time(0) or end.time() != dt.time(0):
            raise ConfigError(
                f"cursor column {field.name!r} is a date; hourly partitions need a timestamp cursor",
                field="partitions.granularity",
                value="hourly",
            )
        return pa.scalar(start.date(), type=t), pa.scalar(end.date(), type=t)
    raise ConfigError(
        f"a partitioned stream needs a timestamp or date cursor_field; {field.name!r} is {t}",
        field="cursor_field",
        value=field.name,
    )


class CursorRangeExtractor(Extractor):
    """Another extractor's stream, restricted to ``start <= cursor_field < end``.

    The lower bound is pushed down as a cursor (every extractor honours one); the upper bound
    too, as ``cursor_end``, to extractors with ``bounded_reads`` (the SQL sources), so a
    partition reads only its range. The batches are filtered as well - for the others, and as a
    guard. ``reread`` reads from ``start`` even when the partition has a stored cursor (a
    partition's full refresh). ``rows_from_source`` counts what the inner extractor yielded.
    """

    passthrough_formats: ClassVar[frozenset[str]] = frozenset()  # a byte stream cannot be filtered

    def __init__(
        self, inner: Extractor, field: str, start: dt.datetime, end: dt.datetime, *, reread: bool = False
    ):
        super().__init__(inner.config)
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]  # errors name the real connector
        self.field = field
        self.start = start
        self.end = end
        self.reread = reread
        self._infos: dict[str, StreamInfo] = {}
        self.bounds: tuple[pa.Scalar, pa.Scalar] | None = None
        self.rows_from_source = 0

    def check(self) -> None:
        self.inner.check()

    def discover(self) -> list[StreamInfo]:
        return self.inner.discover()

    def stream_info(self, stream: StreamSpec) -> StreamInfo:
        if stream.name not in self._infos:
            info = self.inner.stream_info(stream)
            idx = info.schema.get_field_index(self.field)
            if idx < 0:
                raise ConfigError(
                    f"stream {stream.name!r}: cursor column {self.field!r} is not in the source",
                    field="cursor_field",
                    value=self.field,
                )
            self.bounds = cursor_bounds(info.schema.field(idx), self.start, self.end)
            self._infos[stream.name] = info
        return self._infos[stream.name]

    def read(
        self, stream: StreamSpec, state: StreamState | None, *, batch_size: int = 100_000
    ) -> Iterator[pa.RecordBatch]:
        self.stream_info(stream)
        assert self.bounds is not None
        lo, hi = self.bounds
        if self.reread or state is None or state.cursor is None:
            state = StreamState(cursor=Cursor.from_scalar(self.field, lo))
        bound: dict[str, Any] = (
            {"cursor_end": Cursor.from_scalar(self.field, hi)} if self.inner.bounded_reads else {}
        )
        for batch in self.inner.read(stream, state, batch_size=batch_size, **bound):
            self.rows_from_source += batch.num_rows
            col = batch.column(self.field)
            keep = pc.fill_null(
                pc.and_(pc.greater_equal(col, lo.cast(col.type)), pc.less(col, hi.cast(col.type))), False
            )
            if pc.all(keep).as_py():
                yield batch
            elif pc.any(keep).as_py():
                yield batch.filter(keep)

    def checkpoint(self) -> dict[str, Any] | None:
        return self.inner.checkpoint()

    def take_rejects(self) -> list[QuarantinedRow]:
        return self.inner.take_rejects()

    def annotate_quarantine(self, rows: list[QuarantinedRow]) -> list[QuarantinedRow]:
        return self.inner.annotate_quarantine(rows)

    # close() is left to the owner of the inner extractor (it serves every partition of the run).


def sync_partition(
    pipeline: PipelineSpec,
    stream: StreamSpec,
    extractor: Extractor,
    loader: Loader,
    window: PartitionWindow,
    *,
    log: DagsterLogManager,
    run_id: str,
    refresh: bool = False,
    registry: Registry | None = None,
) -> StreamResult:
    """Sync the rows of ``window`` of one stream (see the module docstring); raises on failure."""
    assert stream.cursor_field is not None  # checked by partitioning()
    span: CursorRange | None = None
    if refresh and stream.mode is SyncMode.INCREMENTAL_APPEND:
        if not loader.replaces_ranges:
            raise ConfigError(
                f"full_refresh of partition {window.key!r} of append stream {stream.name!r} would load its "
                f"rows a second time, and destination {loader.name!r} cannot replace a cursor range; rerun "
                "the partition without full_refresh (it loads only what is new), or use "
                "incremental_dedupe with a primary key",
                field="full_refresh",
                value=True,
            )
        # The partition's rows in the destination are replaced by its range read again, in one
        # transaction: late changes and source-side deletions inside the range are picked up.
        lo, hi = cursor_bounds(
            extractor.stream_info(stream).schema.field(stream.cursor_field), window.start, window.end
        )
        span = CursorRange(
            stream.cursor_field,
            Cursor.from_scalar(stream.cursor_field, lo),
            Cursor.from_scalar(stream.cursor_field, hi),
        )
    ranged = CursorRangeExtractor(extractor, stream.cursor_field, window.start, window.end, reread=refresh)
    pstream = partition_stream(stream, window.key)
    log.info(
        f"partition {window.key}: stream {stream.name!r} rows with {window.start.isoformat()} <= "
        f"{stream.cursor_field} < {window.end.isoformat()}"
        + (" (replacing the range)" if span else " (whole range again)" if refresh else "")
    )
    existed = loader.table_schema(stream.table) is not None
    try:
        return sync_stream(
            pipeline, pstream, ranged, loader, log=log, run_id=run_id, registry=registry, replace_range=span
        )
    except Exception as e:
        # Partitions loading in parallel into a table that does not exist yet race to create it;
        # the loser's transaction rolled back whole, so loading it again is safe.
        if existed or loader.table_schema(stream.table) is None:
            raise
        log.warning(
            f"partition {window.key}: table {stream.table!r} was created by a parallel load "
            f"({type(e).__name__}); loading again"
        )
        return sync_stream(
            pipeline, pstream, ranged, loader, log=log, run_id=run_id, registry=registry, replace_range=span
        )
