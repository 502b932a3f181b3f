"""OpenFuse on Dagster: connections as resources, streams as assets and ops, pipelines as jobs."""

from openfuse_dagster.assets import openfuse_assets
from openfuse_dagster.checks import QUARANTINE_CHECK, ROW_COUNT_CHECK, build_openfuse_check_specs
from openfuse_dagster.definitions import (
    BROKEN_PIPELINES_SENSOR,
    BrokenPipeline,
    PipelineSource,
    YamlPipelineFolder,
    build_definitions,
)
from openfuse_dagster.instance import (
    embedded_instance_config,
    ensure_embedded_dagster_home,
    load_instance,
    postgres_env,
    render_instance_yaml,
    write_instance_yaml,
)
from openfuse_dagster.jobs import build_pipeline_job, build_pipeline_schedule
from openfuse_dagster.resources import (
    OpenFuseConnectionResource,
    destination_resource_key,
    openfuse_resources,
    source_resource_key,
)
from openfuse_dagster.sync import SyncConfig, materialization_metadata, pipeline_retry_policy
from openfuse_dagster.translator import OpenFuseTranslator, build_openfuse_asset_specs

__all__ = [
    "BROKEN_PIPELINES_SENSOR",
    "QUARANTINE_CHECK",
    "ROW_COUNT_CHECK",
    "BrokenPipeline",
    "OpenFuseConnectionResource",
    "OpenFuseTranslator",
    "PipelineSource",
    "SyncConfig",
    "YamlPipelineFolder",
    "build_definitions",
    "build_openfuse_asset_specs",
    "build_openfuse_check_specs",
    "build_pipeline_job",
    "build_pipeline_schedule",
    "destination_resource_key",
    "embedded_instance_config",
    "ensure_embedded_dagster_home",
    "load_instance",
    "materialization_metadata",
    "openfuse_assets",
    "openfuse_resources",
    "pipeline_retry_policy",
    "postgres_env",
    "render_instance_yaml",
    "source_resource_key",
    "write_instance_yaml",
]
