"""Freshness checks: each table of a pipeline is checked for staleness, and a sensor runs them.

A pipeline's ``freshness`` block (:class:`~openfuse_connectors.spec.FreshnessSpec`) says how old
the last successful sync of a table may be (``max_lag``), optionally against deadlines
(``deadline_cron``: by each tick the tables must have synced within ``max_lag`` before it), and
the severity of a failed check (``warn`` by default). Without the block, a scheduled pipeline
still gets a ``warn`` check with ``max_lag`` twice the longest interval between two of its
schedule ticks: a run may be late once, not twice. An unscheduled pipeline without the block
gets none (nothing says when it should run).

Time-partitioned pipelines get Dagster's partition freshness check instead: at each tick of
``deadline_cron`` (else the schedule) the latest complete partition must have been materialized.

Two Dagster mechanisms carry the same rule, on purpose:

* **Asset checks** (``build_last_update_freshness_checks`` / ``build_time_partition_freshness_checks``):
  evaluated by :func:`build_freshness_sensor` every minute (stopped unless the definitions'
  sensor status says otherwise, like the other sensors), or on demand with "Execute checks";
  their results sit in the check history like the row-count and quarantine checks.
* **A freshness policy on each asset** (:func:`freshness_policy`, ``AssetSpec.freshness_policy``):
  what Dagster now recommends instead of freshness checks (it marks the builders "superseded"),
  evaluated by the daemon's freshness loop and shown as the asset's freshness state. A
  ``severity: warn`` rule warns after ``max_lag`` and fails after twice that; ``error`` fails
  after ``max_lag``. Time-partitioned pipelines get the checks only.
"""

from __future__ import annotations

import datetime as dt
import itertools
import warnings
from collections.abc import Sequence

from dagster import (
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetsDefinition,
    DefaultSensorStatus,
    FreshnessPolicy,
    SensorDefinition,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
    build_time_partition_freshness_checks,
)

from openfuse_connectors.errors import ConfigError
from openfuse_connectors.spec import PipelineSpec
from openfuse_dagster.jobs import pipeline_timezone
from openfuse_dagster.partitions import partitions_def

__all__ = [
    "FRESHNESS_SENSOR",
    "build_freshness_checks",
    "build_freshness_sensor",
    "default_max_lag",
    "freshness_policy",
]

FRESHNESS_SENSOR = "openfuse_freshness_checks"
#: From a fixed reference (deterministic), enough ticks to see weekday/weekend gaps of hourly
#: schedules, and a month's worth of span for slower ones.
_REFERENCE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_MAX_TICKS = 400
_SPAN = dt.timedelta(days=35)


def _valid_cron(cron: str, field: str) -> None:
    from dagster._utils.schedules import is_valid_cron_string

    if not is_valid_cron_string(cron):
        raise ConfigError(f"{cron!r} is not a cron expression", field=field, value=cron)


def default_max_lag(schedule: str, timezone: str | None = None) -> dt.timedelta:
    """Twice the longest interval between consecutive ticks of ``schedule``."""
    from dagster._utils.schedules import cron_string_iterator

    _valid_cron(schedule, "schedule")
    ticks = cron_string_iterator(_REFERENCE.timestamp(), schedule, timezone or "UTC")
    longest = dt.timedelta(0)
    prev = None
    for tick in itertools.islice(ticks, _MAX_TICKS):
        if prev is not None:
            longest = max(longest, tick - prev)
            if tick - _REFERENCE > _SPAN:
                break
        prev = tick
    return 2 * longest


def build_freshness_checks(pipeline: PipelineSpec, assets: AssetsDefinition) -> list[AssetChecksDefinition]:
    """The freshness checks of ``assets`` (one per table) per the module docstring; maybe none."""
    f = pipeline.freshness
    if f is None and not pipeline.schedule:
        return []
    tz = pipeline_timezone(pipeline) or "UTC"
    severity = (
        AssetCheckSeverity.ERROR if f is not None and f.severity == "error" else AssetCheckSeverity.WARN
    )
    deadline = f.deadline_cron if f is not None else None
    if deadline is not None:
        _valid_cron(deadline, "freshness.deadline_cron")
    with warnings.catch_warnings():
        # "Superseded" by freshness policies, which we attach as well (module docstring).
        warnings.filterwarnings("ignore", message=".*is superseded.*")
        return _checks(pipeline, assets, tz, severity, deadline)


def _checks(
    pipeline: PipelineSpec,
    assets: AssetsDefinition,
    tz: str,
    severity: AssetCheckSeverity,
    deadline: str | None,
) -> list[AssetChecksDefinition]:
    f = pipeline.freshness
    if partitions_def(pipeline) is not None:
        cron = deadline or pipeline.schedule
        if cron is None:
            raise ConfigError(
                f"pipeline {pipeline.name!r} is time-partitioned: its freshness is about partitions, which "
                "needs freshness.deadline_cron (or a schedule) saying by when the latest one is due",
                field="freshness.deadline_cron",
            )
        _valid_cron(cron, "schedule")
        return list(
            build_time_partition_freshness_checks(
                assets=[assets], deadline_cron=cron, timezone=tz, severity=severity
            )
        )
    lag = f.max_lag_delta if f is not None else default_max_lag(pipeline.schedule or "", tz)
    return list(
        build_last_update_freshness_checks(
            assets=[assets], lower_bound_delta=lag, deadline_cron=deadline, timezone=tz, severity=severity
        )
    )


def freshness_policy(pipeline: PipelineSpec) -> FreshnessPolicy | None:
    """The freshness policy of the pipeline's assets (module docstring), or None."""
    f = pipeline.freshness
    if (f is None and not pipeline.schedule) or partitions_def(pipeline) is not None:
        return None
    tz = pipeline_timezone(pipeline) or "UTC"
    lag = f.max_lag_delta if f is not None else default_max_lag(pipeline.schedule or "", tz)
    if f is not None and f.deadline_cron is not None:
        _valid_cron(f.deadline_cron, "freshness.deadline_cron")
        return FreshnessPolicy.cron(deadline_cron=f.deadline_cron, lower_bound_delta=lag, timezone=tz)
    if f is not None and f.severity == "error":
        return FreshnessPolicy.time_window(fail_window=lag)
    return FreshnessPolicy.time_window(fail_window=2 * lag, warn_window=lag)


def build_freshness_sensor(
    checks: Sequence[AssetChecksDefinition],
    *,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> SensorDefinition | None:
    """One sensor evaluating every freshness check (each when it can next change), or None."""
    if not checks:
        return None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is superseded.*")  # see the module docstring
        return build_sensor_for_freshness_checks(
            freshness_checks=list(checks),
            name=FRESHNESS_SENSOR,
            minimum_interval_seconds=60,
            default_status=default_status,
        )
