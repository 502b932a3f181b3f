"""A pipeline as a Dagster job with one op per stream, and its schedule.

The ops share nothing and depend on nothing, so the multiprocess and Celery executors run them
in parallel; each has the pipeline's retry policy, so one flaky stream retries alone. An op
reports the same materialization metadata and check evaluations as the asset step
(:mod:`openfuse_dagster.assets`), against the same asset keys, so the catalog shows syncs from
either path.

Schedules come from ``PipelineSpec.schedule`` (cron), evaluated in UTC unless the pipeline's
``timezone`` tag (or else its ``partitions.timezone``) names an IANA zone.

A time-partitioned pipeline (:mod:`openfuse_dagster.partitions`) gets a partitioned job: a run
syncs the cursor range of its partition(s) and reports one materialization per partition. Its
schedule (when ``schedule`` is set) requests, on every tick, the partition the tick falls in
and the one before it, so late rows of a partition that just closed are picked up too.

The job's tags (and so its runs') are :func:`job_tags`: ``openfuse/pipeline``, the pipeline's own
``openfuse/*`` tags and its owner as ``openfuse/owner``, so runs can be filtered by them.

Runs carry the tag ``openfuse/lock``: the pipeline's name, or ``<pipeline>@<partition>``. The
instance config allows one run per lock value at a time (``deployments/dagster/dagster.yaml``).
"""

import re
from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInvalidDefinitionError,
    DefaultScheduleStatus,
    ExecutorDefinition,
    JobDefinition,
    MetadataValue,
    OpDefinition,
    OpExecutionContext,
    PartitionedConfig,
    RetryPolicy,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    TimeWindowPartitionsDefinition,
    job,
    op,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from openfuse_connectors.errors import ConfigError
from openfuse_connectors.registry import Registry
from openfuse_connectors.spec import PipelineSpec, StreamSpec
from openfuse_dagster.checks import build_openfuse_check_specs, outcomes_after_sync
from openfuse_dagster.partitions import (
    PartitionWindow,
    partitioning_label,
    partitions_def,
    sync_partition,
)
from openfuse_dagster.resources import OpenFuseConnectionResource
from openfuse_dagster.resources import destination_resource_key as default_destination_key
from openfuse_dagster.resources import source_resource_key as default_source_key
from openfuse_dagster.sync import (
    SyncConfig,
    fatal_is_final,
    materialization_metadata,
    pipeline_retry_policy,
    stream_failure,
    sync_stream,
)
from openfuse_dagster.translator import OpenFuseTranslator

__all__ = [
    "LOCK_TAG",
    "PIPELINE_TAG",
    "TIMEZONE_TAG",
    "build_pipeline_job",
    "build_pipeline_schedule",
    "job_tags",
    "stream_op_name",
]

TIMEZONE_TAG = "timezone"
PIPELINE_TAG = "openfuse/pipeline"
LOCK_TAG = "openfuse/lock"
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def job_tags(pipeline: PipelineSpec) -> dict[str, str]:
    """The Dagster job tags of a pipeline: its ``openfuse/*`` tags, owner and name."""
    tags = {k: v for k, v in pipeline.tags.items() if k.startswith("openfuse/") and k != LOCK_TAG}
    if pipeline.owner:
        tags["openfuse/owner"] = pipeline.owner
    tags[PIPELINE_TAG] = pipeline.name
    return tags


def require_batch(pipeline: PipelineSpec) -> None:
    """Refuse a CDC pipeline where a batch sync is being built (it needs the CDC runner)."""
    if pipeline.is_cdc:
        raise ConfigError(
            f"pipeline {pipeline.name!r} is a cdc pipeline: build it with openfuse_dagster.cdc "
            "(openfuse_cdc_assets, build_cdc_job); build_definitions does that for you",
            field="streams",
        )


def stream_op_name(pipeline: PipelineSpec, stream: StreamSpec) -> str:
    """``<pipeline>__<table>``: unique, since a pipeline's streams load distinct tables."""
    return f"{pipeline.name}__{_UNSAFE.sub('_', stream.table)}"


def _stream_op(
    pipeline: PipelineSpec,
    stream: StreamSpec,
    *,
    translator: OpenFuseTranslator,
    src_key: str,
    dst_key: str,
    retry_policy: RetryPolicy | None,
    checks: set[str],
    registry: Registry | None,
    pdef: TimeWindowPartitionsDefinition | None,
) -> OpDefinition:
    key = translator.get_asset_key(pipeline, stream)

    @op(
        name=stream_op_name(pipeline, stream),
        description=f"Sync stream `{stream.name}` into table `{stream.table}` ({stream.mode.value}).",
        required_resource_keys={src_key, dst_key},
        retry_policy=retry_policy,
        tags={PIPELINE_TAG: pipeline.name, "openfuse/table": stream.table},
    )
    def _sync(context: OpExecutionContext, config: SyncConfig) -> None:
        source: OpenFuseConnectionResource = getattr(context.resources, src_key)
        destination: OpenFuseConnectionResource = getattr(context.resources, dst_key)
        run_id = context.run.run_id
        windows = (
            [PartitionWindow.of(pdef, k) for k in context.partition_keys] if pdef is not None else [None]
        )
        with fatal_is_final(f"pipeline {pipeline.name!r}, stream {stream.name!r}"):
            extractor = source.build_extractor(registry)
            try:
                loader = destination.build_loader(registry)
            except BaseException:
                extractor.close()
                raise
        try:
            for window in windows:
                try:
                    if window is None:
                        result = sync_stream(
                            pipeline,
                            stream,
                            extractor,
                            loader,
                            log=context.log,
                            run_id=run_id,
                            full_refresh=config.full_refresh,
                            registry=registry,
                        )
                    else:
                        result = sync_partition(
                            pipeline,
                            stream,
                            extractor,
                            loader,
                            window,
                            log=context.log,
                            run_id=run_id,
                            refresh=config.full_refresh,
                            registry=registry,
                        )
                except Exception as e:
                    raise stream_failure(pipeline, 1, {stream.name: e}) from e
                outcomes, counted = outcomes_after_sync(result, loader, checks)
                metadata = materialization_metadata(
                    result,
                    stream,
                    run_id=run_id,
                    full_refresh=config.full_refresh and window is None,
                    destination_rows=counted,
                )
                if window is not None:
                    metadata.update(_window_metadata(window))
                context.log_event(
                    AssetMaterialization(
                        asset_key=key, partition=window.key if window else None, metadata=metadata
                    )
                )
                for o in outcomes:
                    # Dagster accepts check evaluations here (its annotation lists only the older events).
                    context.log_event(o.evaluation(key))  # type: ignore[arg-type]
        finally:
            extractor.close()
            loader.close()

    return _sync


def _window_metadata(window: PartitionWindow) -> dict[str, Any]:
    return {
        "partition_start": MetadataValue.text(window.start.isoformat()),
        "partition_end": MetadataValue.text(window.end.isoformat()),
    }


def build_pipeline_job(
    pipeline: PipelineSpec,
    *,
    translator: OpenFuseTranslator | None = None,
    name: str | None = None,
    retries: int | None = None,
    source_resource_key: str | None = None,
    destination_resource_key: str | None = None,
    executor_def: ExecutorDefinition | None = None,
    registry: Registry | None = None,
) -> JobDefinition:
    """A job named after the pipeline, with one independent op per stream.

    Args:
        retries: step retries (default: the pipeline's ``retries`` tag; see
            :func:`openfuse_dagster.sync.pipeline_retry_policy`).
        executor_def: e.g. a Celery executor; default Dagster's (multiprocess when launched).
        Others: as for :func:`openfuse_dagster.openfuse_assets`.
    """
    require_batch(pipeline)
    t = translator or OpenFuseTranslator()
    src_key = source_resource_key or default_source_key(pipeline)
    dst_key = destination_resource_key or default_destination_key(pipeline)
    policy = pipeline_retry_policy(pipeline, retries)
    pdef = partitions_def(pipeline)
    check_names: dict[AssetKey, set[str]] = {}
    for spec in build_openfuse_check_specs(pipeline, t, registry):
        check_names.setdefault(spec.asset_key, set()).add(spec.name)
    ops = [
        _stream_op(
            pipeline,
            s,
            translator=t,
            src_key=src_key,
            dst_key=dst_key,
            retry_policy=policy,
            checks=check_names.get(t.get_asset_key(pipeline, s), set()),
            registry=registry,
            pdef=pdef,
        )
        for s in pipeline.streams
    ]
    tags = job_tags(pipeline)
    partitioned: dict[str, Any] = {}
    if pdef is None:
        tags[LOCK_TAG] = pipeline.name
    else:
        partitioned["config"] = PartitionedConfig(
            partitions_def=pdef,
            run_config_for_partition_key_fn=lambda _key: {},
            tags_for_partition_key_fn=lambda key: {LOCK_TAG: f"{pipeline.name}@{key}"},
        )

    @job(
        name=name or pipeline.name,
        description=f"OpenFuse pipeline `{pipeline.name}`: {len(ops)} stream(s), one op each"
        + (f"; partitioned {partitioning_label(pipeline)}" if pdef else "")
        + ".",
        tags=tags,
        executor_def=executor_def,
        **partitioned,
    )
    def _pipeline_job() -> None:
        for o in ops:
            o()

    return _pipeline_job


def build_pipeline_schedule(
    pipeline: PipelineSpec,
    job_def: JobDefinition | UnresolvedAssetJobDefinition,
    *,
    default_status: DefaultScheduleStatus = DefaultScheduleStatus.STOPPED,
) -> ScheduleDefinition | None:
    """The pipeline's cron schedule for ``job_def``, or None when it has none.

    Schedules start stopped (turn them on in the UI) unless ``default_status`` says otherwise,
    so loading a folder of pipelines never starts syncing on its own.
    """
    if not pipeline.schedule:
        return None
    pdef = partitions_def(pipeline)
    try:
        if pdef is None:
            return ScheduleDefinition(
                name=f"{pipeline.name}_schedule",
                cron_schedule=pipeline.schedule,
                job=job_def,
                execution_timezone=pipeline_timezone(pipeline),
                default_status=default_status,
                description=f"Runs OpenFuse pipeline `{pipeline.name}` on `{pipeline.schedule}`.",
                tags={PIPELINE_TAG: pipeline.name},
            )
        return ScheduleDefinition(
            name=f"{pipeline.name}_schedule",
            cron_schedule=pipeline.schedule,
            job=job_def,
            execution_fn=_partition_ticks(pipeline, pdef),
            execution_timezone=pipeline_timezone(pipeline),
            default_status=default_status,
            description=f"Syncs the current and the previous partition of OpenFuse pipeline "
            f"`{pipeline.name}` on `{pipeline.schedule}`.",
        )
    except DagsterInvalidDefinitionError as e:
        field = f"tags.{TIMEZONE_TAG}" if "timezone" in str(e).lower() else "schedule"
        value = pipeline_timezone(pipeline) if field != "schedule" else pipeline.schedule
        raise ConfigError(f"invalid schedule: {e}", field=field, value=value) from None


def pipeline_timezone(pipeline: PipelineSpec) -> str | None:
    """The time zone of the pipeline's schedule (its partitions', else the deprecated tag)."""
    tz = pipeline.tags.get(TIMEZONE_TAG)
    if tz is None and pipeline.partitions is not None:
        tz = pipeline.partitions.timezone
    return tz


def _partition_ticks(pipeline: PipelineSpec, pdef: TimeWindowPartitionsDefinition) -> Any:
    def evaluate(context: ScheduleEvaluationContext) -> Iterator[RunRequest | SkipReason]:
        now = context.scheduled_execution_time.timestamp()
        current = pdef.get_partition_key_for_timestamp(now)
        keys = [current]
        prev = pdef.get_prev_partition_window(pdef.time_window_for_partition_key(current).start)
        if prev is not None:
            keys.insert(0, pdef.get_partition_key_for_timestamp(prev.start.timestamp()))
        valid = [k for k in keys if pdef.has_partition_key(k)]
        if not valid:
            yield SkipReason(f"no partition of pipeline {pipeline.name!r} to sync at this time ({keys})")
        for k in valid:
            yield RunRequest(
                run_key=f"{k}@{int(now)}",
                partition_key=k,
                tags={PIPELINE_TAG: pipeline.name, LOCK_TAG: f"{pipeline.name}@{k}"},
            )

    return evaluate
