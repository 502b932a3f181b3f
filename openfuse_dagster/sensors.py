"""A sensor per pipeline reading from the ``files`` connector: sync when files change.

The sensor lists every data file under the source's ``path`` (recursively; names starting with
``_`` or ``.`` are bookkeeping, never data, as for the connector) and compares the newest
modification time with its cursor. When a file is newer, it requests a run of the pipeline's
job with ``run_key = <newest mtime>``, so one change triggers one run however often the sensor
looks, and stores that time as the new cursor. The first evaluation (no cursor yet) requests a
run too. The run itself reads only what is new (incremental streams keep their own cursor in the
destination), so a spurious trigger costs a listing, never a duplicate.

For a time-partitioned pipeline whose streams all use the file time (``cursor_field:
_modified_at``) the sensor requests the partitions the new files fall in; other partitioned
pipelines get no sensor (a file's time says nothing about which partition its rows belong to).

Limit: a file copied in with an old modification time (``cp -p``, ``rsync -t``) is not seen as
new; touch it, or run the job.

Sensors start stopped, like schedules. The interval is the pipeline's
``sensor_interval_seconds`` tag (default 30).
"""

from __future__ import annotations

import datetime as dt
import posixpath
from dataclasses import dataclass

from dagster import (
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
)

from openfuse_connectors.errors import ConfigError
from openfuse_connectors.spec import PipelineSpec, expand_env
from openfuse_dagster.jobs import LOCK_TAG, PIPELINE_TAG
from openfuse_dagster.partitions import partitions_def

__all__ = ["FILES_CONNECTOR", "SENSOR_INTERVAL_TAG", "FileScan", "build_files_sensor", "scan_files"]

FILES_CONNECTOR = "files"
SENSOR_INTERVAL_TAG = "sensor_interval_seconds"
_FILE_TIME = "_modified_at"


@dataclass(frozen=True)
class FileScan:
    """What a listing found: every data file's modification time (microseconds, UTC)."""

    mtimes_us: tuple[int, ...]

    @property
    def newest_us(self) -> int | None:
        return max(self.mtimes_us) if self.mtimes_us else None

    def newer_than(self, cursor_us: int | None) -> list[int]:
        return [m for m in self.mtimes_us if cursor_us is None or m > cursor_us]


def scan_files(path: str, file_format: str | None = None) -> FileScan:
    """List the data files under ``path`` (a local folder or an fsspec URL), recursively."""
    from openfuse_connectors.builtin.files.fs import Storage, is_hidden, split_name

    st = Storage(path)
    if not st.isdir(st.root):
        raise ConfigError(
            "files source: path does not exist or is not a directory", field="source.config.path", value=path
        )
    found = st.fs.find(st.root, detail=True, withdirs=False)
    mtimes = []
    for name, info in found.items():
        rel = st.relative(str(name))
        if any(is_hidden(part) for part in rel.split("/")):
            continue
        if file_format is None and split_name(posixpath.basename(rel))[1] is None:
            continue
        mtimes.append(st.mtime_us(str(name), info))
    return FileScan(tuple(sorted(mtimes)))


def _interval(pipeline: PipelineSpec) -> int:
    raw = pipeline.tags.get(SENSOR_INTERVAL_TAG, "30")
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(
            "must be a whole number of seconds >= 1", field=f"tags.{SENSOR_INTERVAL_TAG}", value=raw
        )
    return int(raw)


def _iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).isoformat()


def build_files_sensor(
    pipeline: PipelineSpec,
    job_def: JobDefinition,
    *,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> SensorDefinition | None:
    """The new-files sensor of a ``files``-source pipeline (None for other sources)."""
    if pipeline.source.connector != FILES_CONNECTOR:
        return None
    pdef = partitions_def(pipeline)
    if pdef is not None and any(s.cursor_field != _FILE_TIME for s in pipeline.streams):
        return None
    interval = _interval(pipeline)
    raw_path = pipeline.source.config.get("path")
    file_format = pipeline.source.config.get("format")

    def evaluate(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        path = expand_env(raw_path, where="source.config.path")
        scan = scan_files(str(path), file_format)
        cursor = int(context.cursor) if context.cursor else None
        new = scan.newer_than(cursor)
        newest = scan.newest_us
        if newest is None:
            return SkipReason(f"no data files under {path}")
        if not new:
            return SkipReason(f"no file changed since {_iso(cursor or 0)} ({len(scan.mtimes_us)} files)")
        tags = {
            PIPELINE_TAG: pipeline.name,
            "openfuse/trigger": "new_files",
            "openfuse/new_files": str(len(new)),
        }
        if pdef is None:
            requests = [RunRequest(run_key=str(newest), tags={**tags, LOCK_TAG: pipeline.name})]
        else:
            keys = sorted({pdef.get_partition_key_for_timestamp(m / 1e6) for m in new})
            requests = [
                RunRequest(
                    run_key=f"{k}@{newest}",
                    partition_key=k,
                    tags={**tags, LOCK_TAG: f"{pipeline.name}@{k}"},
                )
                for k in keys
                if pdef.has_partition_key(k)
            ]
        context.log.info(f"{len(new)} new or changed file(s), newest {_iso(newest)}")
        return SensorResult(run_requests=requests, cursor=str(newest))

    return SensorDefinition(
        name=f"{pipeline.name}_new_files",
        evaluation_fn=evaluate,
        # By name: a job object would be copied with the resources attached, which trips a Dagster
        # beta warning (SensorDefinition.with_attributes passes `owners`) - errors under -W error.
        job_name=job_def.name,
        minimum_interval_seconds=interval,
        default_status=default_status,
        description=f"Runs OpenFuse pipeline `{pipeline.name}` when files under its source path change.",
    )
