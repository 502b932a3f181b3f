"""Freshness checks per table: from the pipeline's freshness block, else from its schedule."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest
from dagster import (
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    DagsterInstance,
    Definitions,
    FreshnessPolicy,
    define_asset_job,
)

from openfuse_connectors import PipelineSpecError, parse_pipeline
from openfuse_dagster import build_definitions
from openfuse_dagster.freshness import FRESHNESS_SENSOR, default_max_lag

PIPELINE = """
name: shop
source: {connector: files, config: {path: "%(src)s", format: csv}}
destination: {connector: duckdb, config: {path: "%(dst)s"}}
%(extra)s
streams:
  - {name: orders}
"""


def _folder(tmp_path: Path, extra: str) -> Path:
    d = tmp_path / "pipelines"
    d.mkdir(exist_ok=True)
    text = PIPELINE % {"src": tmp_path / "in", "dst": tmp_path / "w.duckdb", "extra": extra}
    (d / "shop.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return d


def test_the_default_lag_is_twice_the_longest_gap_between_schedule_ticks() -> None:
    assert default_max_lag("0 * * * *") == dt.timedelta(hours=2)
    assert default_max_lag("*/15 * * * *") == dt.timedelta(minutes=30)
    # Weekdays at 06:00: Friday to Monday is the longest gap.
    assert default_max_lag("0 6 * * 1-5") == dt.timedelta(days=6)
    assert default_max_lag("0 0 1 * *") == dt.timedelta(days=62)


def test_a_bad_freshness_block_names_its_field() -> None:
    base = {
        "name": "p",
        "source": {"connector": "files", "config": {"path": "/tmp", "format": "csv"}},
        "destination": {"connector": "duckdb", "config": {"path": "/tmp/x.duckdb"}},
        "streams": [{"name": "orders"}],
    }
    with pytest.raises(PipelineSpecError) as ei:
        parse_pipeline({**base, "freshness": {"max_lag": "soon"}})
    assert ei.value.field == "freshness.max_lag" and "'soon' is not a duration" in str(ei.value)
    ok = parse_pipeline({**base, "freshness": {"max_lag": "1h30m"}})
    assert ok.freshness is not None and ok.freshness.max_lag_delta == dt.timedelta(minutes=90)


def test_unscheduled_pipelines_without_a_block_get_no_check(tmp_path: Path) -> None:
    d = build_definitions(_folder(tmp_path, ""))
    assert not list(d.asset_checks or [])
    assert FRESHNESS_SENSOR not in [s.name for s in d.sensors or []]  # the files source's sensor only
    assert [a.freshness_policy for a in d.resolve_all_asset_specs()] == [None]


def test_a_scheduled_pipeline_warns_after_twice_its_interval(tmp_path: Path) -> None:
    d = build_definitions(_folder(tmp_path, 'schedule: "0 6 * * *"'))
    [check] = [s for c in d.asset_checks or [] for s in c.check_specs]
    assert check.metadata["dagster/freshness_params"].value["lower_bound_delta_seconds"] == 2 * 86400
    [asset_spec] = d.resolve_all_asset_specs()
    assert asset_spec.freshness_policy == FreshnessPolicy.time_window(
        fail_window=dt.timedelta(days=4), warn_window=dt.timedelta(days=2)
    )


def test_a_broken_deadline_cron_breaks_only_that_pipeline(tmp_path: Path) -> None:
    d = build_definitions(_folder(tmp_path, 'freshness: {max_lag: 1h, deadline_cron: "at seven"}'))
    meta = (d.metadata or {})["openfuse/broken_pipelines"].value
    assert [b["field"] for b in meta] == ["freshness.deadline_cron"]
    assert "'at seven' is not a cron expression" in meta[0]["error"]


def test_a_table_is_stale_until_synced_within_max_lag(tmp_path: Path) -> None:
    d = build_definitions(
        _folder(tmp_path, 'schedule: "0 * * * *"\nfreshness: {max_lag: 90m, severity: error}')
    )
    [sensor] = [s for s in d.sensors or [] if s.name == FRESHNESS_SENSOR]
    checks = list(d.asset_checks or [])
    [spec] = [s for c in checks for s in c.check_specs]
    key = AssetKey(["duckdb", "main", "orders"])
    assert spec.asset_key == key
    assert spec.metadata["dagster/freshness_params"].value["lower_bound_delta_seconds"] == 90 * 60
    assert sensor.name == FRESHNESS_SENSOR
    # The same rule as Dagster's freshness policy on the asset (severity error: fail at 90 min).
    [asset_spec] = [a for a in d.resolve_all_asset_specs() if a.key == key]
    assert asset_spec.freshness_policy == FreshnessPolicy.time_window(fail_window=dt.timedelta(minutes=90))

    run_checks = define_asset_job("run_freshness", selection=AssetSelection.checks(*checks))
    job = Definitions(asset_checks=checks, jobs=[run_checks]).resolve_job_def("run_freshness")

    def evaluate(instance: DagsterInstance) -> bool:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        [evaluation] = result.get_asset_check_evaluations()
        assert evaluation.asset_key == key and evaluation.severity is AssetCheckSeverity.ERROR
        return evaluation.passed

    with DagsterInstance.ephemeral() as instance:
        assert evaluate(instance) is False  # never synced
        instance.report_runless_asset_event(AssetMaterialization(asset_key=key))
        assert evaluate(instance) is True
