"""A pipeline as Dagster assets: one asset per destination table, one step for the pipeline.

:func:`openfuse_assets` returns a subsettable ``@multi_asset``: select any of its assets and
only those streams sync, in order, sharing one source and one destination connection. Each
synced stream reports a ``MaterializeResult`` with the engine's numbers and its checks
(:mod:`openfuse_dagster.checks`).

A failing stream does not stop the others: the step syncs every selected stream, reports the
ones that committed, then fails with a :class:`~dagster.Failure` naming each failed stream and
its error (metadata ``failed_streams``). Assets that failed get no materialization, so the
catalog never shows a partial failure as a success. Retries rerun the whole step; streams that
already committed are cheap to rerun (an incremental stream finds nothing new) - use
:func:`openfuse_dagster.build_pipeline_job` for one step, and one retry, per stream.

A time-partitioned pipeline (:mod:`openfuse_dagster.partitions`) gives time-partitioned assets:
a run syncs each of its partitions' cursor ranges in turn (one transaction and one state per
partition), and the materialization of a run covering several partitions (a single-run
backfill) sums their numbers.
"""

import dataclasses
from collections.abc import Iterable, Iterator

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    multi_asset,
)

from openfuse_connectors.engine import StreamResult
from openfuse_connectors.errors import ConfigError
from openfuse_connectors.extractor import Extractor
from openfuse_connectors.loader import Loader
from openfuse_connectors.registry import Registry
from openfuse_connectors.spec import PipelineSpec, StreamSpec
from openfuse_dagster.checks import (
    ROW_COUNT_CHECK,
    build_openfuse_check_specs,
    outcomes_after_sync,
    outcomes_from_metadata,
)
from openfuse_dagster.jobs import require_batch
from openfuse_dagster.partitions import PartitionWindow, partitions_def, sync_partition
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
from openfuse_dagster.translator import OpenFuseTranslator, build_openfuse_asset_specs

__all__ = ["openfuse_assets"]


def openfuse_assets(
    pipeline: PipelineSpec,
    *,
    translator: OpenFuseTranslator | None = None,
    name: str | None = None,
    source_resource_key: str | None = None,
    destination_resource_key: str | None = None,
    retry_policy: RetryPolicy | None = None,
    registry: Registry | None = None,
    pool: str | None = None,
) -> AssetsDefinition:
    """The assets of ``pipeline``: one per stream, materialized by one subsettable step.

    Args:
        pipeline: the pipeline; secret connection settings should be ``${VAR}`` references
            (see :mod:`openfuse_dagster.resources`).
        translator: customises keys, groups, owners, tags, descriptions.
        name: op name (default ``openfuse_<pipeline>``).
        source_resource_key / destination_resource_key: keys of the
            :class:`OpenFuseConnectionResource` s to use (default ``openfuse_<pipeline>_source``
            / ``_destination``; :func:`openfuse_dagster.openfuse_resources` builds them).
        retry_policy: default :func:`~openfuse_dagster.pipeline_retry_policy` (``retries`` tag, else 2).
        registry: connector registry (default: the process-wide one).
        pool: Dagster concurrency pool, e.g. to cap syncs into one destination.
    """
    require_batch(pipeline)
    t = translator or OpenFuseTranslator()
    specs = build_openfuse_asset_specs(pipeline, t)
    streams: dict[AssetKey, StreamSpec] = {
        spec.key: s for spec, s in zip(specs, pipeline.streams, strict=True)
    }
    if len(streams) != len(pipeline.streams):
        raise ConfigError(
            f"pipeline {pipeline.name!r}: the translator gave two streams the same asset key", field="streams"
        )
    src_key = source_resource_key or default_source_key(pipeline)
    dst_key = destination_resource_key or default_destination_key(pipeline)
    pdef = partitions_def(pipeline)

    @multi_asset(
        name=name or f"openfuse_{pipeline.name}",
        specs=specs,
        check_specs=build_openfuse_check_specs(pipeline, t, registry),
        can_subset=True,
        required_resource_keys={src_key, dst_key},
        retry_policy=retry_policy if retry_policy is not None else pipeline_retry_policy(pipeline),
        op_tags={"openfuse/pipeline": pipeline.name},
        description=f"Sync the selected streams of OpenFuse pipeline `{pipeline.name}`.",
        pool=pool,
        partitions_def=pdef,
    )
    def _sync(
        context: AssetExecutionContext, config: SyncConfig
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        source: OpenFuseConnectionResource = getattr(context.resources, src_key)
        destination: OpenFuseConnectionResource = getattr(context.resources, dst_key)
        selected = [(k, s) for k, s in streams.items() if k in context.selected_asset_keys]
        checks = _checks_by_asset(context.selected_asset_check_keys)
        check_only = {k: names for k, names in checks.items() if k not in context.selected_asset_keys}

        extractor: Extractor | None = None
        loader: Loader | None = None
        errors: dict[str, BaseException] = {}
        try:
            with fatal_is_final(f"pipeline {pipeline.name!r}"):
                if selected:
                    extractor = source.build_extractor(registry)
                if selected or any(ROW_COUNT_CHECK in n for n in check_only.values()):
                    loader = destination.build_loader(registry)
            work = (
                [(k, s, extractor, loader) for k, s in selected]
                if extractor is not None and loader is not None
                else []
            )
            windows = (
                [PartitionWindow.of(pdef, k) for k in context.partition_keys] if pdef is not None else []
            )
            for key, stream, ex, ld in work:
                try:
                    if pdef is None:
                        result = sync_stream(
                            pipeline,
                            stream,
                            ex,
                            ld,
                            log=context.log,
                            run_id=context.run.run_id,
                            full_refresh=config.full_refresh,
                            registry=registry,
                        )
                    else:
                        result = _combined(
                            [
                                sync_partition(
                                    pipeline,
                                    stream,
                                    ex,
                                    ld,
                                    w,
                                    log=context.log,
                                    run_id=context.run.run_id,
                                    refresh=config.full_refresh,
                                    registry=registry,
                                )
                                for w in windows
                            ]
                        )
                except Exception as e:  # the other streams still run; the step fails at the end
                    context.log.error(f"stream {stream.name!r} failed: {type(e).__name__}: {e}")
                    errors[stream.name] = e
                    continue
                outcomes, counted = outcomes_after_sync(result, ld, checks.get(key, set()))
                metadata = materialization_metadata(
                    result,
                    stream,
                    run_id=context.run.run_id,
                    full_refresh=config.full_refresh and pdef is None,
                    destination_rows=counted,
                )
                if windows:
                    metadata["partitions"] = MetadataValue.json([w.key for w in windows])
                    metadata["partition_start"] = MetadataValue.text(windows[0].start.isoformat())
                    metadata["partition_end"] = MetadataValue.text(windows[-1].end.isoformat())
                yield MaterializeResult(
                    asset_key=key,
                    metadata=metadata,
                    check_results=[o.result(key) for o in outcomes],
                )
            for key, names in check_only.items():
                event = context.instance.get_latest_materialization_event(key)
                meta = event.asset_materialization.metadata if event and event.asset_materialization else None
                for o in outcomes_from_metadata(meta, streams[key].table, loader, names):
                    yield o.result(key)
        finally:
            if extractor is not None:
                extractor.close()
            if loader is not None:
                loader.close()
        if errors:
            raise stream_failure(pipeline, len(selected), errors)

    return _sync


def _checks_by_asset(keys: Iterable[AssetCheckKey]) -> dict[AssetKey, set[str]]:
    out: dict[AssetKey, set[str]] = {}
    for k in keys:
        out.setdefault(k.asset_key, set()).add(k.name)
    return out


def _combined(results: list[StreamResult]) -> StreamResult:
    """The results of one stream's partitions as one (sums; first cursor before, last after)."""
    first, last = results[0], results[-1]
    changes = list(dict.fromkeys(c for r in results for c in r.schema_changes))
    return dataclasses.replace(
        last,
        rows_read=sum(r.rows_read for r in results),
        rows_written=sum(r.rows_written for r in results),
        rows_quarantined=sum(r.rows_quarantined for r in results),
        bytes_written=sum(r.bytes_written for r in results),
        seconds=sum(r.seconds for r in results),
        cursor_before=first.cursor_before,
        schema_changes=changes,
    )
