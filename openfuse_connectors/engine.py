"""The sync engine: one stream from extractor through transforms into a loader, exactly once.

The hot path never holds more than one batch: ``Extractor.read`` yields Arrow batches, the
engine drops rows already loaded at the cursor boundary, applies transforms, conforms each
batch to the destination schema (quarantining what does not fit), and hands it to the open
load transaction. The new state is computed as the batches pass and committed by the loader in
the same destination transaction as the data.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from openfuse_connectors.conform import conform
from openfuse_connectors.drift import plan_schema
from openfuse_connectors.errors import ConfigError, OpenFuseError
from openfuse_connectors.extractor import Extractor
from openfuse_connectors.loader import CursorRange, Disposition, Loader, QuarantinedRow, WriteJob
from openfuse_connectors.registry import Registry, get_registry, plugin_boundary
from openfuse_connectors.spec import PipelineSpec, StreamSpec, SyncMode
from openfuse_connectors.state import Cursor, StreamState, key_digests
from openfuse_connectors.transformer import TransformContext, Transformer

__all__ = ["ProgressFn", "StreamResult", "disposition_for", "run_pipeline", "run_stream"]

log = logging.getLogger(__name__)

#: Called with (stream name, rows read so far) as batches pass.
ProgressFn = Callable[[str, int], None]


@dataclass
class StreamResult:
    stream: str
    table: str
    mode: str
    rows_read: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    passthrough: bool = False
    cursor_before: Any = None
    cursor_after: Any = None
    schema_changes: list[str] = field(default_factory=list)
    schema: pa.Schema | None = None
    error: str | None = None
    #: How the rows went in (:class:`~openfuse_connectors.loader.Disposition` value).
    disposition: str = ""
    #: Facts the caller adds to the result it reports (e.g. the policy decision), JSON-ready.
    annotations: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


def disposition_for(stream: StreamSpec, full_refresh: bool) -> Disposition:
    if stream.mode is SyncMode.FULL_REFRESH_OVERWRITE or (full_refresh and stream.mode.incremental):
        return Disposition.OVERWRITE
    if stream.mode is SyncMode.INCREMENTAL_DEDUPE:
        return Disposition.MERGE
    return Disposition.APPEND


def _refuse_cdc(pipeline: PipelineSpec, stream: StreamSpec) -> None:
    if stream.mode is SyncMode.CDC:
        raise ConfigError(
            f"pipeline {pipeline.name!r}: stream {stream.name!r} uses mode cdc, which this batch engine "
            "does not run; run it with `openfuse cdc run PIPELINE.yaml` or its Dagster CDC job "
            f"(`{pipeline.name}`)",
            field="mode",
            value=stream.mode.value,
        )


def run_stream(
    pipeline: PipelineSpec,
    stream: StreamSpec,
    extractor: Extractor,
    loader: Loader,
    *,
    registry: Registry | None = None,
    extra_transformers: list[Transformer] | None = None,
    full_refresh: bool = False,
    run_id: str | None = None,
    progress: ProgressFn | None = None,
    replace_range: CursorRange | None = None,
) -> StreamResult:
    """Sync one stream. Raises on failure; the destination is then unchanged.

    ``replace_range``: load the stream's rows of that cursor range in place of the destination's
    rows of that range (one transaction; the stored state is not used: the extractor must yield
    the whole range, e.g. a partition's range extractor). Needs a loader with ``replaces_ranges``.

    The exception carries the counts reached before the failure as ``exc.stream_result``.
    """
    result = StreamResult(stream.name, stream.table, stream.mode.value)
    started = time.perf_counter()
    try:
        return _run_stream(
            pipeline,
            stream,
            extractor,
            loader,
            result,
            started,
            registry=registry,
            extra_transformers=extra_transformers,
            full_refresh=full_refresh,
            run_id=run_id,
            progress=progress,
            replace_range=replace_range,
        )
    except Exception as e:
        # Rows read are kept for the record; nothing was committed, so nothing counts as written.
        result.rows_written = result.rows_quarantined = result.bytes_written = 0
        result.error = f"{type(e).__name__}: {e}"
        result.seconds = time.perf_counter() - started
        e.stream_result = result  # type: ignore[attr-defined]
        raise


def _run_stream(
    pipeline: PipelineSpec,
    stream: StreamSpec,
    extractor: Extractor,
    loader: Loader,
    result: StreamResult,
    started: float,
    *,
    registry: Registry | None,
    extra_transformers: list[Transformer] | None,
    full_refresh: bool,
    run_id: str | None,
    progress: ProgressFn | None,
    replace_range: CursorRange | None,
) -> StreamResult:
    _refuse_cdc(pipeline, stream)
    reg = registry or get_registry()
    run_id = run_id or uuid.uuid4().hex
    disposition = disposition_for(stream, full_refresh)
    if replace_range is not None:
        if not loader.replaces_ranges:
            raise ConfigError(
                f"stream {stream.name!r}: destination {loader.name!r} cannot replace the rows of a cursor "
                "range (a partition's full refresh); rerun the partition without full_refresh",
                field="full_refresh",
                value=True,
            )
        if stream.mode is not SyncMode.INCREMENTAL_APPEND:
            # A dedupe stream merges on its key (a key may live outside the range); full
            # refreshes replace the whole table anyway.
            raise ConfigError(
                f"stream {stream.name!r}: only incremental_append streams load a replaced range",
                field="mode",
                value=stream.mode.value,
            )
        if replace_range.field != stream.cursor_field:
            raise ConfigError(
                f"stream {stream.name!r}: a replaced range must be of the stream's cursor_field "
                f"({stream.cursor_field!r})",
                field="cursor_field",
                value=replace_range.field,
            )
        disposition = Disposition.REPLACE_RANGE
    result.disposition = disposition.value
    # Transforms imposed from outside (policy obligations) run first, on the source's columns,
    # so no pipeline transform ever sees a value they mask, hash or drop.
    transformers = list(extra_transformers or [])
    transformers += [reg.transformer(t.type, dict(t.options)) for t in stream.transforms]
    ctx = TransformContext(pipeline.name, stream.name, run_id)
    for t in transformers:
        with plugin_boundary(t.label, "setup"):
            t.setup(ctx)
    pk = stream.primary_key
    job = WriteJob(
        pipeline=pipeline.name,
        stream=stream,
        table=stream.table,
        disposition=disposition,
        drift=pipeline.schema_drift,
        run_id=run_id,
        primary_key=pk,
        cursor_field=stream.cursor_field,
        replace_range=replace_range,
    )

    state = None
    if stream.mode.incremental and not full_refresh and replace_range is None:
        state = loader.read_state(pipeline.name, stream.state_key)
    result.cursor_before = state.cursor.value if state and state.cursor else None

    with plugin_boundary(extractor.name, "discover"):
        info = extractor.stream_info(stream)
    schema = info.schema
    for t in transformers:
        with plugin_boundary(t.label, "transform_schema"):
            schema = t.transform_schema(schema)
    existing = loader.table_schema(job.table)
    plan = plan_schema(
        stream.name,
        schema,
        existing,
        pipeline.schema_drift,
        replace=disposition is Disposition.OVERWRITE,
        storage_type=loader.storage_type,
    )
    result.schema_changes = plan.changes
    result.schema = plan.target
    if replace_range is not None and plan.target.get_field_index(replace_range.field) < 0:
        raise ConfigError(
            f"stream {stream.name!r}: cursor column {replace_range.field!r} does not reach the destination "
            "(a transform or a policy obligation removes it), so its range cannot be replaced there",
            field="cursor_field",
            value=replace_range.field,
        )

    common = sorted(extractor.passthrough_formats & loader.passthrough_formats)
    use_passthrough = (
        stream.passthrough
        and bool(common)
        and not transformers
        and disposition is Disposition.OVERWRITE
        and not stream.mode.incremental
        and plan.target.equals(info.schema, check_metadata=True)
        and loader.accepts_passthrough(common[0], info.schema, job)
    )

    job.extra["passthrough"] = common[0] if use_passthrough else None
    with loader.open(job) as tx:
        tx.prepare(plan.target)
        if use_passthrough:
            fmt = common[0]
            with plugin_boundary(extractor.name, "copy_out"):
                chunks = extractor.copy_out(stream, fmt)
                n = tx.write_raw(_count_bytes(chunks, result), fmt)
            result.rows_read = result.rows_written = n
            result.passthrough = True
            if progress:
                progress(stream.name, n)
            new_state = StreamState(extra={"last_run_id": run_id, "rows": n})
        else:
            tracker = _CursorTracker(stream, state)
            quarantined: list[QuarantinedRow] = []
            position = 0
            required = tuple(c for c in pk if plan.target.get_field_index(c) >= 0)
            batches = extractor.read(stream, state, batch_size=pipeline.batch_size)
            for raw in _guard(batches, extractor.name):
                result.rows_read += raw.num_rows
                batch = tracker.drop_loaded(raw)
                # The cursor advances past quarantined rows too: they are kept, not lost.
                tracker.observe(batch)
                for t in transformers:
                    with plugin_boundary(t.label, "transform"):
                        batch = t.transform(batch)
                good, bad = conform(
                    batch, plan.target, offset=position, required=required, check=loader.unfit_values
                )
                position += raw.num_rows
                if bad:
                    with plugin_boundary(extractor.name, "annotate_quarantine"):
                        quarantined.extend(extractor.annotate_quarantine(bad))
                # Records the source could not even parse (malformed lines), handed over as they occur.
                with plugin_boundary(extractor.name, "take_rejects"):
                    quarantined.extend(extractor.take_rejects())
                if good.num_rows:
                    tx.write(good)
                    result.rows_written += good.num_rows
                    result.bytes_written += good.nbytes
                if progress:
                    progress(stream.name, result.rows_read)
            with plugin_boundary(extractor.name, "take_rejects"):
                quarantined.extend(extractor.take_rejects())
            if quarantined:
                tx.quarantine(quarantined)
            result.rows_quarantined = len(quarantined)
            new_state = tracker.state(run_id)
            with plugin_boundary(extractor.name, "checkpoint"):
                source_ck = extractor.checkpoint()
            if source_ck is None and state is not None:
                source_ck = state.extra.get("source")
            if source_ck is not None:
                new_state = new_state.model_copy(update={"extra": {**new_state.extra, "source": source_ck}})
        tx.commit(new_state)
    try:
        with plugin_boundary(extractor.name, "after_commit"):
            extractor.after_commit(stream, new_state)
    except OpenFuseError as e:  # the data is committed; the acknowledgement is best effort
        log.warning("stream %r committed, but after_commit failed: %s", stream.name, e)
    result.cursor_after = new_state.cursor.value if new_state.cursor else None
    result.seconds = time.perf_counter() - started
    return result


def run_pipeline(
    pipeline: PipelineSpec,
    *,
    registry: Registry | None = None,
    full_refresh: bool = False,
    streams: list[str] | None = None,
    run_id: str | None = None,
    progress: ProgressFn | None = None,
    on_result: Callable[[StreamResult], None] | None = None,
) -> list[StreamResult]:
    """Run every (or the selected) stream in order. A failing stream does not stop the others."""
    for s in pipeline.streams:
        _refuse_cdc(pipeline, s)
    reg = registry or get_registry()
    run_id = run_id or uuid.uuid4().hex
    results = []
    extractor = reg.extractor(pipeline.source.connector, pipeline.source.config)
    loader = reg.loader(pipeline.destination.connector, pipeline.destination.config)
    try:
        for s in pipeline.streams:
            if streams and s.name not in streams:
                continue
            t0 = time.perf_counter()
            try:
                r = run_stream(
                    pipeline,
                    s,
                    extractor,
                    loader,
                    registry=reg,
                    full_refresh=full_refresh,
                    run_id=run_id,
                    progress=progress,
                )
            except Exception as e:
                # Counts reached before the failure are kept (the load itself was rolled back).
                r = getattr(e, "stream_result", None) or StreamResult(
                    s.name,
                    s.table,
                    s.mode.value,
                    error=f"{type(e).__name__}: {e}",
                    seconds=time.perf_counter() - t0,
                )
            results.append(r)
            if on_result:
                on_result(r)
    finally:
        extractor.close()
        loader.close()
    return results


class _CursorTracker:
    """Skips rows already loaded at the previous boundary; tracks the new max cursor and its rows.

    Rows at the boundary are recognised by a digest of the whole row (a multiset, so identical
    rows are counted, not merged): a row updated without moving its cursor is a new row, an
    unchanged one is skipped.
    """

    def __init__(self, stream: StreamSpec, state: StreamState | None):
        self.field = stream.cursor_field if stream.mode.incremental else None
        self.prev = state.cursor.to_scalar() if state and state.cursor and self.field else None
        self.prev_keys: Counter[str] = Counter(state.boundary_keys) if state else Counter()
        self.loaded_at_prev: Counter[str] = Counter(self.prev_keys)
        self.max: pa.Scalar | None = None
        self.max_keys: Counter[str] = Counter()

    def drop_loaded(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if self.prev is None or not self.prev_keys or self.field is None:
            return batch
        col = batch.column(self.field)
        at_boundary = pc.fill_null(pc.equal(col, self.prev.cast(col.type)), False)
        if not pc.any(at_boundary).as_py():
            return batch
        idx = pc.indices_nonzero(at_boundary).to_pylist()
        digests = key_digests(batch.take(pa.array(idx)), batch.schema.names)
        drop = set()
        for i, d in zip(idx, digests, strict=True):
            if self.prev_keys[d] > 0:
                self.prev_keys[d] -= 1
                drop.add(i)
        if not drop:
            return batch
        return batch.filter(pa.array([i not in drop for i in range(batch.num_rows)]))

    def observe(self, batch: pa.RecordBatch) -> None:
        if self.field is None or batch.num_rows == 0:
            return
        col = batch.column(self.field)
        m = pc.max(col)
        if not m.is_valid:
            return
        if self.max is None or pc.greater(m, self.max.cast(m.type)).as_py():
            self.max = m
            self.max_keys = Counter()
        if pc.equal(m, self.max.cast(m.type)).as_py():
            rows = batch.filter(pc.fill_null(pc.equal(col, m), False))
            self.max_keys.update(key_digests(rows, batch.schema.names))

    def state(self, run_id: str) -> StreamState:
        extra = {"last_run_id": run_id}
        if self.field is None:
            return StreamState(extra=extra)
        if self.prev is not None and (
            self.max is None or pc.equal(self.max, self.prev.cast(self.max.type)).as_py()
        ):
            # The cursor did not move: the boundary holds what was there plus what was added at it.
            # (prev_keys was consumed while skipping; rebuild it from the stored state's full set.)
            keys = self.loaded_at_prev + self.max_keys
            return StreamState(
                cursor=Cursor.from_scalar(self.field, self.prev),
                boundary_keys=tuple(sorted(keys.elements())),
                extra=extra,
            )
        if self.max is None:
            return StreamState(extra=extra)
        return StreamState(
            cursor=Cursor.from_scalar(self.field, self.max),
            boundary_keys=tuple(sorted(self.max_keys.elements())),
            extra=extra,
        )


def _guard(batches: Iterator[pa.RecordBatch], plugin: str) -> Iterator[pa.RecordBatch]:
    it = iter(batches)
    while True:
        with plugin_boundary(plugin, "read"):
            try:
                b = next(it)
            except StopIteration:
                return
        yield b


def _count_bytes(chunks: Iterator[bytes], result: StreamResult) -> Iterator[bytes]:
    for c in chunks:
        result.bytes_written += len(c)
        yield c
