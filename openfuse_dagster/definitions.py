"""The Dagster entry point: every pipeline of a folder as assets, a job and a schedule.

Run it with ``dagster dev -m openfuse_dagster.definitions`` (or ``dagster api grpc -m ...``).
The module-level ``defs`` is lazy: nothing is read at import; Dagster calls it when it loads the
code location, and it loads every ``*.yaml`` / ``*.yml`` in ``$OPENFUSE_PIPELINES_DIR``
(default ``./pipelines``).

Per pipeline it defines: the assets (:func:`~openfuse_dagster.openfuse_assets`), a job named
after the pipeline (:func:`~openfuse_dagster.build_pipeline_job`), its schedule if it has one,
a new-files sensor when its source is the ``files`` connector
(:func:`~openfuse_dagster.sensors.build_files_sensor`), and its two connection resources
(:func:`~openfuse_dagster.openfuse_resources`). Time-partitioned pipelines
(:mod:`openfuse_dagster.partitions`) get partitioned assets and jobs. A change-data-capture
pipeline (streams ``mode: cdc``) gets its CDC assets, the slot health check, a CDC job and the
sensor that keeps it running instead (:mod:`openfuse_dagster.cdc`).

The executor of every job comes from :class:`~openfuse_dagster.settings.Settings`
(``OPENFUSE_EXECUTOR``, else in-process when embedded and Celery when scaled).

A broken pipeline never breaks the code location: the others load, and each broken one is
reported with its file and field

* as a warning in the code server's log (logger ``openfuse_dagster``);
* as the sensor ``openfuse_broken_pipelines`` (present only while something is broken): its
  description in the UI lists the problems, and each evaluation skips with the same list;
* in the code location's metadata under ``openfuse/broken_pipelines``.

"Broken" covers invalid YAML or fields, unknown connectors, connection settings that do not
validate, literal secrets, a bad schedule, a duplicate pipeline name, and an asset key already
claimed by another pipeline.

Where pipelines come from is a :class:`PipelineSource`; :class:`YamlPipelineFolder` is the one
used here, and the API will add one reading its metadata database.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import yaml
from dagster import (
    AssetChecksDefinition,
    AssetKey,
    AssetsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    ExecutorDefinition,
    JobDefinition,
    MetadataValue,
    ScheduleDefinition,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
)
from dagster import definitions as lazy_definitions
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from openfuse_connectors.errors import ConfigError, ConnectorNotFoundError
from openfuse_connectors.registry import Registry, get_registry
from openfuse_connectors.spec import ConnectorRef, PipelineSpec, load_pipeline
from openfuse_dagster.assets import openfuse_assets
from openfuse_dagster.cdc import build_cdc_job, build_cdc_sensor, build_cdc_slot_check, openfuse_cdc_assets
from openfuse_dagster.freshness import build_freshness_checks, build_freshness_sensor
from openfuse_dagster.jobs import build_pipeline_job, build_pipeline_schedule
from openfuse_dagster.resources import OpenFuseConnectionResource, openfuse_resources, secret_fields
from openfuse_dagster.sensors import build_files_sensor
from openfuse_dagster.translator import OpenFuseTranslator

__all__ = [
    "BROKEN_PIPELINES_SENSOR",
    "DEFAULT_PIPELINES_DIR",
    "PIPELINES_DIR_ENV",
    "BrokenPipeline",
    "PipelineSource",
    "YamlPipelineFolder",
    "build_definitions",
    "defs",
    "pipelines_dir_path",
]

PIPELINES_DIR_ENV = "OPENFUSE_PIPELINES_DIR"
DEFAULT_PIPELINES_DIR = "./pipelines"
BROKEN_PIPELINES_SENSOR = "openfuse_broken_pipelines"

log = logging.getLogger("openfuse_dagster")


@dataclass(frozen=True)
class BrokenPipeline:
    """A pipeline that could not be defined: where it came from, which field, what is wrong."""

    origin: str
    error: str
    field: str | None = None
    pipeline: str | None = None

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        return f"{self.origin}{where}: {self.error}"


@runtime_checkable
class PipelineSource(Protocol):
    """Where pipelines come from.

    ``load()`` returns every pipeline that validates and must not raise for one bad entry:
    it records the entry in ``broken`` instead (reset on each load). ``origin(name)`` says where
    a loaded pipeline came from (a file path, a database row id) for messages.

    Secret connection settings should stay ``${VAR}`` references in the returned specs (see
    :mod:`openfuse_dagster.resources`): Dagster must be able to store the pipeline's resources
    without the secret values.
    """

    broken: list[BrokenPipeline]

    def load(self) -> list[PipelineSpec]: ...

    def origin(self, name: str) -> str: ...


class YamlPipelineFolder:
    """Every ``*.yaml`` / ``*.yml`` file directly in a folder, one pipeline each, sorted by name."""

    def __init__(self, path: str | Path, *, registry: Registry | None = None):
        self.path = Path(path)
        self.registry = registry
        self.broken: list[BrokenPipeline] = []
        self._origins: dict[str, str] = {}

    def origin(self, name: str) -> str:
        return self._origins.get(name, f"pipeline {name!r}")

    def load(self) -> list[PipelineSpec]:
        self.broken = []
        self._origins = {}
        if not self.path.is_dir():
            self.broken.append(BrokenPipeline(str(self.path), "pipelines folder does not exist"))
            return []
        out = []
        files = sorted(p for p in self.path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        for f in files:
            try:
                spec = self._keep_secret_references(load_pipeline(f), f)
            except Exception as e:  # one bad file must not hide the others
                self.broken.append(_broken(str(f), e))
                continue
            if spec.name in self._origins:
                self.broken.append(
                    BrokenPipeline(
                        str(f),
                        f"pipeline name {spec.name!r} is already used by {self._origins[spec.name]}",
                        "name",
                        spec.name,
                    )
                )
                continue
            self._origins[spec.name] = str(f)
            out.append(spec)
        return out

    def _keep_secret_references(self, spec: PipelineSpec, path: Path) -> PipelineSpec:
        """Put back the ``${VAR}`` text of secret settings that ``load_pipeline`` expanded."""
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        update: dict[str, Any] = {}
        for role in ("source", "destination"):
            ref: ConnectorRef = getattr(spec, role)
            raw_cfg = (raw.get(role) or {}).get("config") or {}
            try:
                hidden = secret_fields(ref.connector, self.registry)
            except ConnectorNotFoundError:
                continue  # reported when the pipeline is defined
            kept = {k: raw_cfg[k] for k in hidden if isinstance(raw_cfg.get(k), str) and "${" in raw_cfg[k]}
            if kept:
                update[role] = ConnectorRef(connector=ref.connector, config={**ref.config, **kept})
        return spec.model_copy(update=update) if update else spec


def _broken(origin: str, e: BaseException, pipeline: str | None = None) -> BrokenPipeline:
    msg = str(e)
    field = None
    if isinstance(e, ConfigError):
        # The message repeats field, value and file; BrokenPipeline shows them itself.
        field = e.field
        if e.source:
            msg = msg.removesuffix(f" in {e.source}")
        if field:
            msg = msg.split(f" (field={field!r}", 1)[0]
            if e.value is not None:
                msg += f" (value {e.value!r})"
    else:
        msg = f"{type(e).__name__}: {msg}"
    return BrokenPipeline(origin, msg, field, pipeline)


@dataclass
class _PipelineDefs:
    assets: AssetsDefinition
    job: JobDefinition | UnresolvedAssetJobDefinition
    schedule: ScheduleDefinition | None
    sensor: SensorDefinition | None
    resources: dict[str, OpenFuseConnectionResource]
    checks: list[AssetChecksDefinition]
    freshness: list[AssetChecksDefinition]


def _define(
    pipeline: PipelineSpec,
    *,
    translator: OpenFuseTranslator | None,
    registry: Registry,
    allow_literal_secrets: bool,
    default_schedule_status: DefaultScheduleStatus,
    default_sensor_status: DefaultSensorStatus,
) -> _PipelineDefs:
    resources = openfuse_resources(pipeline, registry=registry, allow_literal_secrets=allow_literal_secrets)
    job_def: JobDefinition | UnresolvedAssetJobDefinition
    checks: list[AssetChecksDefinition] = []
    if pipeline.is_cdc:
        assets = openfuse_cdc_assets(pipeline, translator=translator)
        checks.append(build_cdc_slot_check(pipeline, translator=translator))
        job_def = build_cdc_job(pipeline, assets)
        sensor: SensorDefinition | None = build_cdc_sensor(
            pipeline, job_def.name, default_status=default_sensor_status
        )
    else:
        assets = openfuse_assets(pipeline, translator=translator, registry=registry)
        job_def = build_pipeline_job(pipeline, translator=translator, registry=registry)
        sensor = build_files_sensor(pipeline, job_def, default_status=default_sensor_status)
    schedule = build_pipeline_schedule(pipeline, job_def, default_status=default_schedule_status)
    freshness = build_freshness_checks(pipeline, assets)
    # Whatever Dagster would refuse for this pipeline surfaces here, not for the whole location.
    Definitions.validate_loadable(
        Definitions(
            assets=[assets],
            asset_checks=[*checks, *freshness],
            jobs=[job_def],
            schedules=[schedule] if schedule else [],
            sensors=[sensor] if sensor else [],
            resources=resources,
        )
    )
    return _PipelineDefs(assets, job_def, schedule, sensor, resources, checks, freshness)


def _broken_sensor(broken: list[BrokenPipeline]) -> SensorDefinition:
    text = f"{len(broken)} OpenFuse pipeline(s) could not be loaded:\n" + "\n".join(f"- {b}" for b in broken)

    def evaluate(context: SensorEvaluationContext) -> SkipReason:
        return SkipReason(text)

    return SensorDefinition(
        name=BROKEN_PIPELINES_SENSOR,
        evaluation_fn=evaluate,
        description=text,
        minimum_interval_seconds=3600,
        default_status=DefaultSensorStatus.RUNNING,
        metadata={"broken_pipelines": MetadataValue.json([_as_json(b) for b in broken])},
    )


def _as_json(b: BrokenPipeline) -> dict[str, Any]:
    return {"origin": b.origin, "field": b.field, "error": b.error, "pipeline": b.pipeline}


def build_definitions(
    pipelines_dir: str | Path | None = None,
    *,
    source: PipelineSource | None = None,
    translator: OpenFuseTranslator | None = None,
    registry: Registry | None = None,
    allow_literal_secrets: bool = False,
    default_schedule_status: DefaultScheduleStatus = DefaultScheduleStatus.STOPPED,
    default_sensor_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    executor: ExecutorDefinition | None = None,
) -> Definitions:
    """Definitions for every pipeline of ``source`` (default: the YAML files of ``pipelines_dir``).

    Args:
        pipelines_dir: folder of pipeline YAML files (default: :func:`pipelines_dir`).
        source: any :class:`PipelineSource`; overrides ``pipelines_dir``.
        translator: customises asset keys, groups, etc. for every pipeline.
        registry: connector registry (default: the process-wide one).
        allow_literal_secrets: accept secrets written as literal values (local experiments
            only: Dagster then stores them, masked in the UI).
        default_schedule_status: schedules start stopped unless this says RUNNING.
        default_sensor_status: new-files sensors start stopped unless this says RUNNING.
        executor: for every job (default Dagster's: multiprocess when launched; the embedded
            mode passes ``in_process_executor``, the scaled one a Celery executor).
    """
    reg = registry or get_registry()
    src = (
        source
        if source is not None
        else YamlPipelineFolder(pipelines_dir or pipelines_dir_path(), registry=reg)
    )
    pipelines = src.load()
    broken = list(src.broken)
    claimed: dict[AssetKey, str] = {}
    t = translator or OpenFuseTranslator()
    assets: list[AssetsDefinition] = []
    checks: list[AssetChecksDefinition] = []
    freshness: list[AssetChecksDefinition] = []
    jobs: list[JobDefinition | UnresolvedAssetJobDefinition] = []
    schedules: list[ScheduleDefinition] = []
    sensors: list[SensorDefinition] = []
    resources: dict[str, Any] = {}
    defined: list[str] = []
    for p in pipelines:
        origin = src.origin(p.name)
        clash = next(
            ((i, s, claimed[k]) for i, s in enumerate(p.streams) if (k := t.get_asset_key(p, s)) in claimed),
            None,
        )
        if clash is not None:
            i, s, other = clash
            broken.append(
                BrokenPipeline(
                    origin,
                    f"asset {t.get_asset_key(p, s).to_user_string()!r} (table {s.table!r}) is already "
                    f"loaded by pipeline {other!r}; load a different table (destination_table) or schema",
                    f"streams[{i}:{s.name}]",
                    p.name,
                )
            )
            continue
        try:
            d = _define(
                p,
                translator=t,
                registry=reg,
                allow_literal_secrets=allow_literal_secrets,
                default_schedule_status=default_schedule_status,
                default_sensor_status=default_sensor_status,
            )
        except Exception as e:  # one bad pipeline must not break the code location
            broken.append(_broken(origin, e, p.name))
            continue
        for s in p.streams:
            claimed[t.get_asset_key(p, s)] = p.name
        assets.append(d.assets)
        checks.extend(d.checks)
        freshness.extend(d.freshness)
        jobs.append(d.job)
        if d.schedule is not None:
            schedules.append(d.schedule)
        if d.sensor is not None:
            sensors.append(d.sensor)
        resources.update(d.resources)
        defined.append(p.name)
    for b in broken:
        log.warning("OpenFuse pipeline not loaded: %s", b)
    fresh_sensor = build_freshness_sensor(freshness, default_status=default_sensor_status)
    return Definitions(
        assets=assets,
        asset_checks=[*checks, *freshness],
        jobs=jobs,
        schedules=schedules,
        sensors=sensors
        + ([fresh_sensor] if fresh_sensor else [])
        + ([_broken_sensor(broken)] if broken else []),
        resources=resources,
        executor=executor,
        metadata={
            "openfuse/pipelines": MetadataValue.json(sorted(defined)),
            "openfuse/broken_pipelines": MetadataValue.json([_as_json(b) for b in broken]),
        },
    )


def pipelines_dir_path() -> Path:
    """``$OPENFUSE_PIPELINES_DIR``, default ``./pipelines`` (relative to the working directory)."""
    return Path(os.environ.get(PIPELINES_DIR_ENV) or DEFAULT_PIPELINES_DIR)


@lazy_definitions
def defs() -> Definitions:
    """What ``dagster dev -m openfuse_dagster.definitions`` (and ``openfuse dev``) loads."""
    from openfuse_dagster.executors import build_executor
    from openfuse_dagster.settings import Settings

    return build_definitions(executor=build_executor(Settings()))
