"""A change-data-capture pipeline on Dagster: bounded runs kept going by a sensor.

A pipeline whose streams are ``mode: cdc`` (see :mod:`openfuse_connectors.spec`) becomes

* **assets**: one per captured table (keys from the :class:`~openfuse_dagster.OpenFuseTranslator`,
  as for batch pipelines), materialized together by one step that runs the
  :class:`~openfuse_connectors.cdc.runner.CdcRunner` - one slot serves every table, so the step
  is not subsettable;
* **an asset check** ``cdc_slot_health`` on each of them: lag in bytes and retained WAL of the
  pipeline's replication slot against ``cdc.lag_threshold_bytes`` /
  ``cdc.retained_wal_threshold_bytes`` (:func:`openfuse_connectors.cdc.slot.slot_health`); it
  fails (severity ERROR) above a threshold, and it also fails when the slot is missing or lost.
  It runs after every CDC run and can be executed on its own ("Execute checks");
* **a job** named after the pipeline, selecting those assets and checks; run config
  :class:`CdcRunConfig`;
* **a sensor** ``<pipeline>_cdc`` that requests a run whenever none of the job's runs is queued
  or in progress (stopped by default, like every OpenFuse schedule and sensor).

Why micro-batch runs and not one endless run
    Each run streams for at most ``cdc.max_run_seconds`` (default 300 s), then commits the last
    acknowledged position and ends; the sensor starts the next run within
    ``cdc.sensor_interval_s``. Inside a run the latency is the runner's (a batch is committed at
    most ``max_batch_delay_ms`` after a transaction arrives); between runs it grows by the sensor
    interval plus a run's start-up, a few seconds a few times an hour. In return:

    * Dagster's run storage and UI get a bounded event log per run and a materialization per
      table every few minutes (a never-ending run would hold one ever-growing event log, and its
      assets would show no materialization until it ends);
    * restarts of the daemon, the code location or a worker cost at most one run: the position
      is committed in the destination, so the next run resumes exactly there (and refuses, with
      :class:`~openfuse_connectors.cdc.errors.SlotPositionError`, a slot that would lose data);
    * the slot health check and the run history show a stalled pipeline (no recent success).

    For the lowest latency set ``cdc.max_run_seconds: null``: a run then streams until it is
    terminated - a long-running job, still started (and restarted) by the sensor. Run config can
    override the bound per run (``max_seconds``), or stop once caught up (``until_caught_up``).

Graceful stop
    The runner streams in a thread of the step; the step's own thread only waits for it. When
    Dagster interrupts the step (the run is terminated from the UI or the API), the step asks the
    runner to stop: it commits the whole transactions received so far to every sink, confirms
    that position to the slot, and ends; a transaction still arriving is sent again next run.

Runs carry ``openfuse/lock = <pipeline>`` (one run per pipeline at a time, by the instance's
tag concurrency limit); a second runner would be refused anyway (the slot is in use).
"""

# No `from __future__ import annotations`: Dagster reads the step's config class from its annotation.
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    Config,
    DagsterRunStatus,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    multi_asset,
    multi_asset_check,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from pydantic import Field

from openfuse_connectors.cdc.catalog import SourceInfo
from openfuse_connectors.cdc.changes import Change, TableInfo
from openfuse_connectors.cdc.runner import CdcRunner, RunSummary
from openfuse_connectors.cdc.sink import CdcState, ChangeSink
from openfuse_connectors.cdc.slot import SlotHealth
from openfuse_connectors.errors import ConfigError
from openfuse_connectors.spec import ConnectorRef, PipelineSpec, StreamSpec
from openfuse_dagster.jobs import LOCK_TAG, PIPELINE_TAG, job_tags
from openfuse_dagster.resources import OpenFuseConnectionResource
from openfuse_dagster.resources import destination_resource_key as default_destination_key
from openfuse_dagster.resources import source_resource_key as default_source_key
from openfuse_dagster.translator import OpenFuseTranslator, build_openfuse_asset_specs

__all__ = [
    "SLOT_HEALTH_CHECK",
    "CdcRunConfig",
    "build_cdc_job",
    "build_cdc_sensor",
    "build_cdc_slot_check",
    "openfuse_cdc_assets",
    "resolved_pipeline",
    "slot_health_result",
]

SLOT_HEALTH_CHECK = "cdc_slot_health"
_IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
#: How long a terminated step waits for the runner to commit and stop before giving up on it.
_STOP_GRACE_SECONDS = 60.0


class CdcRunConfig(Config):
    """Run config of a CDC step."""

    max_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Stream at most this long (default: the pipeline's cdc.max_run_seconds).",
    )
    until_caught_up: bool = Field(
        default=False,
        description="Stop once every change committed on the source before the start is applied.",
    )
    endless: bool = Field(
        default=False, description="Stream until the run is terminated (ignores max_seconds)."
    )


def _require_cdc(pipeline: PipelineSpec) -> None:
    if not pipeline.is_cdc:
        raise ConfigError(
            f"pipeline {pipeline.name!r} is not a cdc pipeline; use openfuse_assets / build_pipeline_job",
            field="streams",
        )


def resolved_pipeline(
    pipeline: PipelineSpec, source: OpenFuseConnectionResource, destination: OpenFuseConnectionResource
) -> PipelineSpec:
    """The pipeline with its connection settings as the resources resolve them in this process
    (``${VAR}`` references and ``EnvVar`` secrets filled in). Never log the result."""
    return pipeline.model_copy(
        update={
            "source": ConnectorRef(connector=source.connector, config=source.connector_config()),
            "destination": ConnectorRef(
                connector=destination.connector, config=destination.connector_config()
            ),
        }
    )


def _qualified(stream: str) -> str:
    from openfuse_connectors.builtin.postgres.sql import split_stream

    return ".".join(split_stream(stream))


@dataclass
class _CountingSink(ChangeSink):
    """A sink that counts, per table and operation, the changes its destination committed."""

    inner: ChangeSink
    before: CdcState | None = None
    pending: Counter[tuple[str, str]] = field(default_factory=Counter)
    applied: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.name = self.inner.name

    def open(self, source: SourceInfo) -> None:
        self.inner.open(source)

    def read_state(self) -> CdcState | None:
        self.before = self.inner.read_state()
        return self.before

    def begin_snapshot(self, tables: list[TableInfo]) -> None:
        self.inner.begin_snapshot(tables)

    def write(self, changes: list[Change]) -> None:
        self.inner.write(changes)
        for c in changes:
            self.pending[(c.table.stream, c.op)] += 1

    def flush(self) -> None:
        self.inner.flush()

    def commit(self, state: CdcState) -> None:
        self.inner.commit(state)
        self.applied.update(self.pending)
        self.pending.clear()

    def rollback(self) -> None:
        self.inner.rollback()
        self.pending.clear()

    def clear_state(self) -> None:
        self.inner.clear_state()

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()


def _run_in_thread(runner: CdcRunner, *, until_caught_up: bool, max_seconds: float | None) -> RunSummary:
    """Run ``runner`` in a thread; an interrupt of this thread stops it gracefully first."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["summary"] = runner.run(until_caught_up=until_caught_up, max_seconds=max_seconds)
        except BaseException as e:  # handed to the step's thread
            box["error"] = e
        finally:
            done.set()

    # Waiting on an event, not Thread.join: an interrupted join can mark a live thread stopped.
    threading.Thread(target=target, name=f"openfuse-cdc-{runner.settings.pipeline}", daemon=True).start()
    try:
        while not done.wait(0.25):
            pass
    except BaseException:
        # Dagster interrupts the step (run terminated): commit what is whole, then end.
        runner.request_stop()
        done.wait(_STOP_GRACE_SECONDS)
        raise
    if "error" in box:
        raise box["error"]
    summary: RunSummary = box["summary"]
    return summary


def _change_metadata(counts: Counter[tuple[str, str]], table: str) -> dict[str, int]:
    ops = {"r": "snapshot", "c": "inserts", "u": "updates", "d": "deletes", "t": "truncates"}
    return {name: counts.get((table, op), 0) for op, name in ops.items()}


def openfuse_cdc_assets(
    pipeline: PipelineSpec,
    *,
    translator: OpenFuseTranslator | None = None,
    name: str | None = None,
    source_resource_key: str | None = None,
    destination_resource_key: str | None = None,
) -> AssetsDefinition:
    """The captured tables of a CDC pipeline as assets, materialized by one CDC step.

    Each run reports, per table, the changes committed to the destination by operation
    (``changes_applied``, ``inserts``, ``updates``, ``deletes``, ``truncates``, ``snapshot_rows``)
    and, for the pipeline, ``lsn_before`` / ``lsn_after`` (the committed source position at the
    start and the end), transactions, commits, why the run stopped and its duration.
    """
    _require_cdc(pipeline)
    t = translator or OpenFuseTranslator()
    specs = build_openfuse_asset_specs(pipeline, t)
    streams: list[tuple[AssetKey, StreamSpec]] = [
        (spec.key, s) for spec, s in zip(specs, pipeline.streams, strict=True)
    ]
    src_key = source_resource_key or default_source_key(pipeline)
    dst_key = destination_resource_key or default_destination_key(pipeline)
    options = pipeline.cdc_options

    @multi_asset(
        name=name or f"openfuse_{pipeline.name}_cdc",
        specs=specs,
        can_subset=False,
        required_resource_keys={src_key, dst_key},
        op_tags={PIPELINE_TAG: pipeline.name},
        description=f"Apply the captured changes of OpenFuse CDC pipeline `{pipeline.name}` "
        "(PostgreSQL logical decoding) for a bounded time.",
    )
    def _cdc(context: AssetExecutionContext, config: CdcRunConfig) -> Iterator[MaterializeResult]:
        from openfuse_connectors.cdc.pipeline import build

        source: OpenFuseConnectionResource = getattr(context.resources, src_key)
        destination: OpenFuseConnectionResource = getattr(context.resources, dst_key)
        settings, sinks = build(resolved_pipeline(pipeline, source, destination), options)
        counting = [_CountingSink(s) for s in sinks]
        max_seconds = None if config.endless else (config.max_seconds or options.max_run_seconds)
        bound = "until caught up" if config.until_caught_up else ""
        if max_seconds is not None:
            bound += (" or " if bound else "") + f"for at most {max_seconds:g}s"
        context.log.info(
            f"cdc: streaming slot {settings.slot!r} into {', '.join(s.name for s in sinks)} "
            f"{bound or 'until the run is terminated'}"
        )
        runner = CdcRunner(settings, list(counting))
        summary = _run_in_thread(runner, until_caught_up=config.until_caught_up, max_seconds=max_seconds)
        befores = [c.before for c in counting]
        lsn_before = None if any(b is None for b in befores) else min(befores, key=lambda b: b.position).lsn  # type: ignore[union-attr]
        context.log.info(
            f"cdc: {summary.snapshot_rows:,} snapshot rows, {summary.changes:,} changes in "
            f"{summary.transactions:,} transactions; position {lsn_before} -> {summary.position}; "
            f"stopped by {summary.stopped_by} after {summary.seconds:.1f}s"
        )
        counts = counting[0].applied  # the destination's (a Kafka side sink gets the same changes)
        for key, s in streams:
            per_op = _change_metadata(counts, _qualified(s.name))
            changes = sum(v for k, v in per_op.items() if k != "snapshot")
            yield MaterializeResult(
                asset_key=key,
                metadata={
                    "stream": MetadataValue.text(s.name),
                    "table": MetadataValue.text(s.table),
                    "mode": MetadataValue.text(s.mode.value),
                    "changes_applied": MetadataValue.int(changes),
                    **{k: MetadataValue.int(v) for k, v in per_op.items() if k != "snapshot"},
                    "snapshot_rows": MetadataValue.int(per_op["snapshot"]),
                    "lsn_before": MetadataValue.text(lsn_before) if lsn_before else MetadataValue.null(),
                    "lsn_after": MetadataValue.text(summary.position)
                    if summary.position
                    else MetadataValue.null(),
                    "slot": MetadataValue.text(settings.slot),
                    "sinks": MetadataValue.json([c.name for c in counting]),
                    "transactions": MetadataValue.int(summary.transactions),
                    "commits": MetadataValue.int(summary.commits),
                    "stopped_by": MetadataValue.text(summary.stopped_by),
                    "duration_seconds": MetadataValue.float(round(summary.seconds, 3)),
                    "openfuse_run_id": MetadataValue.text(context.run.run_id),
                },
            )

    return _cdc


def slot_health_result(key: AssetKey, health: SlotHealth) -> AssetCheckResult:
    """The ``cdc_slot_health`` result of one captured table from its pipeline's slot health."""
    meta: dict[str, Any] = {
        "slot": MetadataValue.text(health.slot),
        "exists": MetadataValue.bool(health.exists),
        "active": MetadataValue.bool(health.active),
        "lag_bytes": MetadataValue.int(health.lag_bytes)
        if health.lag_bytes is not None
        else MetadataValue.null(),
        "retained_wal_bytes": MetadataValue.int(health.retained_wal_bytes)
        if health.retained_wal_bytes is not None
        else MetadataValue.null(),
        "lag_threshold_bytes": MetadataValue.int(health.threshold_bytes),
        "retained_wal_threshold_bytes": MetadataValue.int(health.retained_threshold_bytes),
        "wal_status": MetadataValue.text(health.wal_status or ""),
        "confirmed_flush_lsn": MetadataValue.text(health.confirmed_flush_lsn or ""),
        "current_lsn": MetadataValue.text(health.current_lsn or ""),
    }
    return AssetCheckResult(
        asset_key=key,
        check_name=SLOT_HEALTH_CHECK,
        passed=health.ok,
        severity=AssetCheckSeverity.ERROR,
        description=health.message,
        metadata=meta,
    )


def build_cdc_slot_check(
    pipeline: PipelineSpec,
    *,
    translator: OpenFuseTranslator | None = None,
    source_resource_key: str | None = None,
) -> AssetChecksDefinition:
    """``cdc_slot_health`` on every captured table's asset (see the module docstring)."""
    _require_cdc(pipeline)
    t = translator or OpenFuseTranslator()
    keys = [t.get_asset_key(pipeline, s) for s in pipeline.streams]
    src_key = source_resource_key or default_source_key(pipeline)
    options = pipeline.cdc_options
    threshold = options.lag_threshold_bytes
    retained = options.retained_wal_threshold_bytes or 4 * threshold
    specs = [
        AssetCheckSpec(
            SLOT_HEALTH_CHECK,
            asset=k,
            description=f"The replication slot of pipeline `{pipeline.name}` lags at most {threshold:,} "
            f"bytes and retains at most {retained:,} bytes of WAL, and has not lost WAL.",
        )
        for k in keys
    ]

    @multi_asset_check(
        name=f"openfuse_{pipeline.name}_slot_health",
        specs=specs,
        required_resource_keys={src_key},
        op_tags={PIPELINE_TAG: pipeline.name},
    )
    def _check(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        from openfuse_connectors.cdc.config import CdcSettings
        from openfuse_connectors.cdc.options import SETTINGS_FIELDS
        from openfuse_connectors.cdc.slot import slot_health

        source: OpenFuseConnectionResource = getattr(context.resources, src_key)
        spec = pipeline.model_copy(
            update={"source": ConnectorRef(connector=source.connector, config=source.connector_config())}
        )
        settings = CdcSettings.from_pipeline(spec, **{k: getattr(options, k) for k in SETTINGS_FIELDS})
        health = slot_health(settings)
        if not health.ok:
            context.log.warning(f"cdc slot {health.slot!r}: {health.message}")
        for k in keys:
            yield slot_health_result(k, health)

    return _check


def build_cdc_job(
    pipeline: PipelineSpec,
    assets: AssetsDefinition,
    *,
    name: str | None = None,
) -> UnresolvedAssetJobDefinition:
    """The pipeline's CDC job: its assets and their slot checks, one run at a time."""
    _require_cdc(pipeline)
    return define_asset_job(
        name=name or pipeline.name,
        selection=AssetSelection.assets(*assets.keys),
        description=f"OpenFuse CDC pipeline `{pipeline.name}`: {len(pipeline.streams)} captured table(s); "
        "each run streams for a bounded time (see openfuse_dagster.cdc).",
        tags={**job_tags(pipeline), LOCK_TAG: pipeline.name},
    )


def build_cdc_sensor(
    pipeline: PipelineSpec,
    job_name: str,
    *,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> SensorDefinition:
    """``<pipeline>_cdc``: requests a run of the CDC job whenever none is queued or running."""
    _require_cdc(pipeline)

    def evaluate(context: SensorEvaluationContext) -> RunRequest | SkipReason:
        runs = context.instance.get_runs(filters=RunsFilter(job_name=job_name, statuses=_IN_FLIGHT), limit=1)
        if runs:
            return SkipReason(f"run {runs[0].run_id} of {job_name!r} is {runs[0].status.value}")
        return RunRequest(
            tags={PIPELINE_TAG: pipeline.name, LOCK_TAG: pipeline.name, "openfuse/trigger": "cdc_sensor"}
        )

    return SensorDefinition(
        name=f"{pipeline.name}_cdc",
        evaluation_fn=evaluate,
        job_name=job_name,
        minimum_interval_seconds=pipeline.cdc_options.sensor_interval_s,
        default_status=default_status,
        description=f"Keeps one run of OpenFuse CDC pipeline `{pipeline.name}` going: requests the next "
        "when the last one ended.",
    )
