"""A pipeline as a job with one op per stream, its retry policy and its schedule."""

from __future__ import annotations

from typing import Any

import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    Backoff,
    DagsterEventType,
    DagsterInstance,
    DefaultScheduleStatus,
)
from support import pg_exec, pg_rows

from openfuse_connectors import ConfigError, PipelineSpec
from openfuse_dagster import (
    QUARANTINE_CHECK,
    ROW_COUNT_CHECK,
    build_pipeline_job,
    build_pipeline_schedule,
    openfuse_resources,
)


def pipeline(streams: list[dict[str, Any]], **extra: Any) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "name": "shop",
            "source": {"connector": "postgres", "config": {"dsn": "${OF_TEST_SRC_DSN}"}},
            "destination": {
                "connector": "postgres",
                "config": {"dsn": "${OF_TEST_DST_DSN}", "schema": "raw"},
            },
            "streams": streams,
            **extra,
        }
    )


def test_one_op_per_stream_with_the_pipeline_retry_policy_and_schedule() -> None:
    spec = pipeline(
        [{"name": "public.customers"}, {"name": "public.orders", "destination_table": "orders_copy"}],
        schedule="15 3 * * *",
        tags={"retries": "3", "retry_delay_seconds": "5", "timezone": "Europe/Berlin"},
    )
    job = build_pipeline_job(spec)
    assert job.name == "shop"
    assert sorted(job.graph.node_dict) == ["shop__customers", "shop__orders_copy"]
    assert not any(job.graph.dependencies.values())  # independent: executors run them in parallel
    op_defs = {n.name: n for n in job.graph.node_defs}
    for op_def in op_defs.values():
        assert op_def.retry_policy is not None
        assert (op_def.retry_policy.max_retries, op_def.retry_policy.delay) == (3, 5)
        assert op_def.retry_policy.backoff is Backoff.EXPONENTIAL
        assert op_def.required_resource_keys == {"openfuse_shop_source", "openfuse_shop_destination"}
    assert build_pipeline_job(spec, retries=0).graph.node_defs[0].retry_policy is None
    default = build_pipeline_job(spec.model_copy(update={"tags": {}})).graph.node_defs[0].retry_policy
    assert default is not None and (default.max_retries, default.delay) == (2, 30)

    schedule = build_pipeline_schedule(spec, job)
    assert schedule is not None
    assert (schedule.name, schedule.cron_schedule, schedule.job_name) == (
        "shop_schedule",
        "15 3 * * *",
        "shop",
    )
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.default_status is DefaultScheduleStatus.STOPPED
    assert build_pipeline_schedule(pipeline([{"name": "public.x"}]), job) is None

    with pytest.raises(ConfigError) as ei:
        build_pipeline_schedule(spec.model_copy(update={"schedule": "every day"}), job)
    assert ei.value.field == "schedule"
    with pytest.raises(ConfigError) as ei:
        build_pipeline_job(spec.model_copy(update={"tags": {"retries": "many"}}))
    assert ei.value.field == "tags.retries"


@pytest.mark.postgres
def test_streams_run_as_independent_ops_and_only_transient_errors_retry(
    pg_pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = pg_pair
    pg_exec(
        src,
        "CREATE TABLE customers (id int PRIMARY KEY, name text)",
        "INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 5) g",
    )
    monkeypatch.setenv("OF_TEST_SRC_DSN", src)
    monkeypatch.setenv("OF_TEST_DST_DSN", dst)
    spec = pipeline(
        [{"name": "public.customers"}, {"name": "public.missing"}],
        tags={"retries": "1", "retry_delay_seconds": "0"},
    )
    with DagsterInstance.ephemeral() as instance:
        result = build_pipeline_job(spec).execute_in_process(
            resources=openfuse_resources(spec), instance=instance, raise_on_error=False
        )
        assert not result.success
        by_type: dict[DagsterEventType, list[str | None]] = {}
        for e in result.all_events:
            by_type.setdefault(e.event_type, []).append(e.step_key)
        assert by_type[DagsterEventType.STEP_SUCCESS] == ["shop__customers"]
        assert by_type[DagsterEventType.STEP_FAILURE] == ["shop__missing"]
        assert DagsterEventType.STEP_UP_FOR_RETRY not in by_type  # fatal: not retried
        key = AssetKey(["postgres", "raw", "customers"])
        [mat] = result.get_asset_materialization_events()
        assert mat.asset_key == key and mat.materialization.metadata["rows_written"].value == 5
        assert pg_rows(dst, "SELECT count(*) FROM raw.customers") == [(5,)]
        evaluations = {(e.check_name, e.passed) for e in result.get_asset_check_evaluations()}
        assert evaluations == {(ROW_COUNT_CHECK, True), (QUARANTINE_CHECK, True)}
        # The check results of op runs are stored like the asset step's.
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [AssetCheckKey(key, ROW_COUNT_CHECK)]
        )[AssetCheckKey(key, ROW_COUNT_CHECK)]
        assert record.run_id == result.run_id

        # An unreachable source is transient: the op retries (once, per the tag).
        monkeypatch.setenv("OF_TEST_SRC_DSN", "postgresql://postgres@127.0.0.1:1/nowhere")
        down = pipeline([{"name": "public.customers"}], tags={"retries": "1", "retry_delay_seconds": "0"})
        result = build_pipeline_job(down).execute_in_process(
            resources=openfuse_resources(down), instance=instance, raise_on_error=False
        )
        assert not result.success
        retries = [e for e in result.all_events if e.event_type is DagsterEventType.STEP_UP_FOR_RETRY]
        assert len(retries) == 1
        [failure] = [e for e in result.all_events if e.event_type is DagsterEventType.STEP_FAILURE]
        assert "SourceUnreachableError" in str(failure.step_failure_data)
