"""OpenFuse on Dagster: connections as resources, streams as assets and ops, pipelines as jobs.

The public names are imported on first use (PEP 562), so ``import openfuse_dagster`` - and the
``openfuse`` CLI, which loads :mod:`openfuse_dagster.cli` on every start - does not import
Dagster until a Dagster name is actually used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openfuse_dagster.assets import openfuse_assets
    from openfuse_dagster.cdc import (
        SLOT_HEALTH_CHECK,
        CdcRunConfig,
        build_cdc_job,
        build_cdc_sensor,
        build_cdc_slot_check,
        openfuse_cdc_assets,
    )
    from openfuse_dagster.checks import QUARANTINE_CHECK, ROW_COUNT_CHECK, build_openfuse_check_specs
    from openfuse_dagster.definitions import (
        BROKEN_PIPELINES_SENSOR,
        BrokenPipeline,
        PipelineSource,
        YamlPipelineFolder,
        build_definitions,
    )
    from openfuse_dagster.executors import build_executor, celery_executor_config
    from openfuse_dagster.freshness import build_freshness_checks, build_freshness_sensor, freshness_policy
    from openfuse_dagster.instance import (
        dagster_process_env,
        embedded_instance_config,
        ensure_embedded_dagster_home,
        load_instance,
        postgres_env,
        prepare_dagster_home,
        render_instance_yaml,
        write_instance_yaml,
    )
    from openfuse_dagster.jobs import build_pipeline_job, build_pipeline_schedule, job_tags
    from openfuse_dagster.partitions import partitioning, partitions_def
    from openfuse_dagster.resources import (
        OpenFuseConnectionResource,
        destination_resource_key,
        openfuse_resources,
        source_resource_key,
    )
    from openfuse_dagster.sensors import build_files_sensor
    from openfuse_dagster.settings import Settings
    from openfuse_dagster.sync import SyncConfig, materialization_metadata, pipeline_retry_policy
    from openfuse_dagster.translator import OpenFuseTranslator, build_openfuse_asset_specs

_WHERE = {
    "openfuse_assets": "assets",
    "SLOT_HEALTH_CHECK": "cdc",
    "CdcRunConfig": "cdc",
    "build_cdc_job": "cdc",
    "build_cdc_sensor": "cdc",
    "build_cdc_slot_check": "cdc",
    "openfuse_cdc_assets": "cdc",
    "QUARANTINE_CHECK": "checks",
    "ROW_COUNT_CHECK": "checks",
    "build_openfuse_check_specs": "checks",
    "BROKEN_PIPELINES_SENSOR": "definitions",
    "BrokenPipeline": "definitions",
    "PipelineSource": "definitions",
    "YamlPipelineFolder": "definitions",
    "build_definitions": "definitions",
    "build_executor": "executors",
    "celery_executor_config": "executors",
    "dagster_process_env": "instance",
    "embedded_instance_config": "instance",
    "ensure_embedded_dagster_home": "instance",
    "load_instance": "instance",
    "postgres_env": "instance",
    "prepare_dagster_home": "instance",
    "render_instance_yaml": "instance",
    "write_instance_yaml": "instance",
    "build_freshness_checks": "freshness",
    "build_freshness_sensor": "freshness",
    "freshness_policy": "freshness",
    "build_pipeline_job": "jobs",
    "build_pipeline_schedule": "jobs",
    "job_tags": "jobs",
    "partitioning": "partitions",
    "partitions_def": "partitions",
    "OpenFuseConnectionResource": "resources",
    "destination_resource_key": "resources",
    "openfuse_resources": "resources",
    "source_resource_key": "resources",
    "build_files_sensor": "sensors",
    "Settings": "settings",
    "SyncConfig": "sync",
    "materialization_metadata": "sync",
    "pipeline_retry_policy": "sync",
    "OpenFuseTranslator": "translator",
    "build_openfuse_asset_specs": "translator",
}

__all__ = [
    "BROKEN_PIPELINES_SENSOR",
    "QUARANTINE_CHECK",
    "ROW_COUNT_CHECK",
    "SLOT_HEALTH_CHECK",
    "BrokenPipeline",
    "CdcRunConfig",
    "OpenFuseConnectionResource",
    "OpenFuseTranslator",
    "PipelineSource",
    "Settings",
    "SyncConfig",
    "YamlPipelineFolder",
    "build_cdc_job",
    "build_cdc_sensor",
    "build_cdc_slot_check",
    "build_definitions",
    "build_executor",
    "build_files_sensor",
    "build_freshness_checks",
    "build_freshness_sensor",
    "build_openfuse_asset_specs",
    "build_openfuse_check_specs",
    "build_pipeline_job",
    "build_pipeline_schedule",
    "celery_executor_config",
    "dagster_process_env",
    "destination_resource_key",
    "embedded_instance_config",
    "ensure_embedded_dagster_home",
    "freshness_policy",
    "job_tags",
    "load_instance",
    "materialization_metadata",
    "openfuse_assets",
    "openfuse_cdc_assets",
    "openfuse_resources",
    "partitioning",
    "partitions_def",
    "pipeline_retry_policy",
    "postgres_env",
    "prepare_dagster_home",
    "render_instance_yaml",
    "source_resource_key",
    "write_instance_yaml",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"openfuse_dagster.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
