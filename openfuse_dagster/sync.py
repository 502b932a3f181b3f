"""One stream synced inside a Dagster step: run config, retries, metadata, failures.

Shared by the asset factory (:mod:`openfuse_dagster.assets`) and the op job
(:mod:`openfuse_dagster.jobs`), so both report a sync the same way. The metadata comes from the
engine's :class:`~openfuse_connectors.engine.StreamResult`, never from log text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
from dagster import (
    Backoff,
    Config,
    DagsterLogManager,
    Failure,
    Jitter,
    MetadataValue,
    RetryPolicy,
    TableColumn,
    TableColumnConstraints,
    TableSchema,
)
from pydantic import Field

from openfuse_connectors.catalog import native_type
from openfuse_connectors.engine import StreamResult, disposition_for, run_stream
from openfuse_connectors.errors import ConfigError, FatalError
from openfuse_connectors.extractor import Extractor
from openfuse_connectors.loader import CursorRange, Loader
from openfuse_connectors.registry import Registry
from openfuse_connectors.spec import PipelineSpec, RetrySpec, StreamSpec
from openfuse_dagster.governance import gate_for, record_decisions
from openfuse_policy.dataplane import StreamDenied

__all__ = [
    "DEFAULT_RETRIES",
    "RETRIES_TAG",
    "RETRY_DELAY_TAG",
    "SyncConfig",
    "fatal_is_final",
    "materialization_metadata",
    "pipeline_retry_policy",
    "stream_failure",
    "sync_stream",
    "table_schema",
]

#: Deprecated pipeline tags, read when the pipeline has no ``retries`` block.
RETRIES_TAG = "retries"
RETRY_DELAY_TAG = "retry_delay_seconds"
DEFAULT_RETRIES = 2
_DEFAULT_RETRY_DELAY = 30.0
_MAX_RETRIES = 20
log = logging.getLogger("openfuse_dagster")
_PROGRESS_EVERY_SECONDS = 30.0


class SyncConfig(Config):
    """Run config of a sync step (set it in the launchpad or a schedule's run config)."""

    full_refresh: bool = Field(
        default=False,
        description="Reload incremental streams from scratch: overwrite the table and reset the cursor.",
    )


def pipeline_retry_policy(pipeline: PipelineSpec, retries: int | None = None) -> RetryPolicy | None:
    """The step retry policy: ``retries``, else the pipeline's ``retries`` block, else 2.

    Retrying is safe by construction (a load commits data and state together or not at all), so
    transient failures retry by default; ``max_retries: 0`` turns it off (returns None). The
    default delay is 30 s, doubled per attempt, with jitter (see
    :class:`~openfuse_connectors.spec.RetrySpec`). Fatal OpenFuse errors (bad config, missing
    table, frozen schema drift) are never retried: the step raises ``Failure(allow_retries=False)``.

    Deprecated, read when the pipeline has no ``retries`` block (a warning is logged): the tags
    ``retries`` and ``retry_delay_seconds``.
    """
    spec = pipeline.retries
    if spec is None:
        spec = _retries_from_tags(pipeline)
    if retries is not None:
        if not 0 <= retries <= _MAX_RETRIES:
            raise ConfigError(f"retries must be between 0 and {_MAX_RETRIES}", field="retries", value=retries)
        spec = spec.model_copy(update={"max_retries": retries})
    if spec.max_retries == 0:
        return None
    return RetryPolicy(
        max_retries=spec.max_retries,
        delay=spec.delay_seconds,
        backoff=_BACKOFF[spec.backoff],
        jitter=_JITTER[spec.jitter],
    )


_BACKOFF = {"none": None, "linear": Backoff.LINEAR, "exponential": Backoff.EXPONENTIAL}
_JITTER = {"none": None, "full": Jitter.FULL, "plus_minus": Jitter.PLUS_MINUS}
_warned: set[str] = set()


def _retries_from_tags(pipeline: PipelineSpec) -> RetrySpec:
    raw, raw_delay = pipeline.tags.get(RETRIES_TAG), pipeline.tags.get(RETRY_DELAY_TAG)
    if raw is None and raw_delay is None:
        return RetrySpec(max_retries=DEFAULT_RETRIES, delay_seconds=_DEFAULT_RETRY_DELAY)
    if pipeline.name not in _warned:
        _warned.add(pipeline.name)
        log.warning(
            "pipeline %r: the tags %r and %r are deprecated; write a `retries:` block instead "
            "(max_retries, delay_seconds, backoff, jitter)",
            pipeline.name,
            RETRIES_TAG,
            RETRY_DELAY_TAG,
        )
    retries = DEFAULT_RETRIES if raw is None else _int_tag(raw, RETRIES_TAG)
    if retries > _MAX_RETRIES:
        raise ConfigError(
            f"retries must be between 0 and {_MAX_RETRIES}", field=f"tags.{RETRIES_TAG}", value=retries
        )
    delay = _DEFAULT_RETRY_DELAY if raw_delay is None else float(_int_tag(raw_delay, RETRY_DELAY_TAG))
    return RetrySpec(max_retries=retries, delay_seconds=delay)


def _int_tag(raw: str, tag: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError("must be a whole number", field=f"tags.{tag}", value=raw) from None
    if value < 0:
        raise ConfigError("must not be negative", field=f"tags.{tag}", value=raw)
    return value


class _Progress:
    """Logs rows read at most every 30 s, so long syncs show life without flooding the log."""

    def __init__(self, log: DagsterLogManager):
        self.log = log
        self.last = time.monotonic()

    def __call__(self, stream: str, rows: int) -> None:
        now = time.monotonic()
        if now - self.last >= _PROGRESS_EVERY_SECONDS:
            self.last = now
            self.log.info(f"stream {stream!r}: {rows:,} rows read so far")


def sync_stream(
    pipeline: PipelineSpec,
    stream: StreamSpec,
    extractor: Extractor,
    loader: Loader,
    *,
    log: DagsterLogManager,
    run_id: str,
    full_refresh: bool = False,
    registry: Registry | None = None,
    replace_range: CursorRange | None = None,
) -> StreamResult:
    """Run one stream through the engine (streamed, exactly once); raises on failure."""
    how = stream.mode.value + (", full refresh" if full_refresh else "")
    log.info(f"syncing stream {stream.name!r} into table {stream.table!r} ({how})")
    # Governance first: may the owner read this stream and write its table, and with what
    # obligations? A denial is fatal (StreamDenied) and names the policy.
    gate = gate_for(pipeline)
    grant = None
    if gate is not None:
        try:
            grant = gate.check(pipeline, stream)
        except StreamDenied as e:
            record_decisions(pipeline, stream, [e.decision], run_id=run_id)
            raise
        record_decisions(pipeline, stream, [grant.read, grant.write], run_id=run_id)
    if grant is not None:
        log.info(
            f"stream {stream.name!r}: allowed by {', '.join(grant.metadata()['policy_allowed_by'])} "
            f"(decisions {', '.join(grant.decision_ids)})"
            + (f"; obligations {', '.join(map(str, grant.obligations))}" if grant.obligations else "")
        )
    result = run_stream(
        pipeline,
        stream,
        extractor,
        loader,
        registry=registry,
        extra_transformers=grant.transformers(registry, gate.salt()) if grant and gate else None,
        full_refresh=full_refresh,
        run_id=run_id,
        progress=_Progress(log),
        replace_range=replace_range,
    )
    result.annotations.update(grant.metadata() if grant is not None else {"policy_enforcement": "off"})
    log.info(
        f"stream {stream.name!r}: {result.rows_read:,} rows read, {result.rows_written:,} written, "
        f"{result.rows_quarantined:,} quarantined in {result.seconds:.2f}s"
        + (" (pass-through)" if result.passthrough else "")
    )
    return result


def table_schema(schema: pa.Schema, primary_key: tuple[str, ...] = ()) -> TableSchema:
    """Arrow schema -> Dagster column schema (Arrow type; the native type, if any, as description)."""
    return TableSchema(
        columns=[
            TableColumn(
                name=f.name,
                type=str(f.type),
                description=(f"native type {n}" if (n := native_type(f)) else None),
                constraints=TableColumnConstraints(nullable=f.nullable, unique=primary_key == (f.name,)),
            )
            for f in schema
        ]
    )


def materialization_metadata(
    result: StreamResult,
    stream: StreamSpec,
    *,
    run_id: str,
    full_refresh: bool = False,
    destination_rows: int | None = None,
) -> dict[str, Any]:
    """Materialization metadata of one synced stream, from the engine's result."""
    meta: dict[str, Any] = {
        "stream": MetadataValue.text(stream.name),
        "rows_read": MetadataValue.int(result.rows_read),
        "rows_written": MetadataValue.int(result.rows_written),
        "rows_quarantined": MetadataValue.int(result.rows_quarantined),
        "bytes_written": MetadataValue.int(result.bytes_written),
        "duration_seconds": MetadataValue.float(round(result.seconds, 3)),
        "mode": MetadataValue.text(result.mode),
        "disposition": MetadataValue.text(result.disposition or disposition_for(stream, full_refresh).value),
        "cursor_field": MetadataValue.text(stream.cursor_field or ""),
        "cursor_before": _cursor(result.cursor_before),
        "cursor_after": _cursor(result.cursor_after),
        "schema_changes": MetadataValue.json(list(result.schema_changes)),
        "passthrough": MetadataValue.bool(result.passthrough),
        "openfuse_run_id": MetadataValue.text(run_id),
    }
    for key, value in result.annotations.items():
        meta[key] = (
            MetadataValue.json(value) if isinstance(value, dict | list) else MetadataValue.text(str(value))
        )
    if result.schema is not None:
        meta["dagster/column_schema"] = table_schema(result.schema, stream.primary_key)
    if destination_rows is not None:
        meta["dagster/row_count"] = MetadataValue.int(destination_rows)
    return meta


def _cursor(value: Any) -> MetadataValue:
    return MetadataValue.null() if value is None else MetadataValue.text(str(value))


def stream_failure(pipeline: PipelineSpec, selected: int, errors: Mapping[str, BaseException]) -> Failure:
    """One step failure naming every failed stream and its error.

    Retries are allowed unless every error is fatal (retrying a bad config cannot help).
    """
    names = ", ".join(repr(s) for s in errors)
    lines = "\n".join(f"- {s}: {type(e).__name__}: {e}" for s, e in errors.items())
    return Failure(
        description=(
            f"{len(errors)} of {selected} stream(s) of pipeline {pipeline.name!r} failed: {names}\n{lines}"
        ),
        metadata={
            "failed_streams": MetadataValue.json(list(errors)),
            **{f"error {s}": MetadataValue.text(f"{type(e).__name__}: {e}") for s, e in errors.items()},
        },
        allow_retries=not all(isinstance(e, FatalError) for e in errors.values()),
    )


@contextmanager
def fatal_is_final(what: str) -> Iterator[None]:
    """Turn a fatal OpenFuse error (e.g. bad connection settings) into a Failure never retried."""
    try:
        yield
    except FatalError as e:
        raise Failure(description=f"{what}: {type(e).__name__}: {e}", allow_retries=False) from e
