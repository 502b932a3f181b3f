"""PipelineSpec's `retries` and `partitions` blocks, job tags, stream metadata, workspace asset keys."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import AssetKey, Backoff, Jitter

from openfuse_connectors import PipelineSpec, PipelineSpecError, parse_pipeline
from openfuse_connectors.engine import StreamResult
from openfuse_dagster import (
    OpenFuseTranslator,
    build_definitions,
    build_pipeline_job,
    build_pipeline_schedule,
    materialization_metadata,
    partitions_def,
)

DSN = "postgresql://postgres@127.0.0.1:1/never_connected"


def doc(**extra: Any) -> dict[str, Any]:
    return {
        "name": "events",
        "source": {"connector": "postgres", "config": {"dsn": "${OF_TEST_DSN}"}},
        "destination": {"connector": "postgres", "config": {"dsn": "${OF_TEST_DSN}", "schema": "raw"}},
        "streams": [{"name": "public.events", "mode": "incremental_append", "cursor_field": "at"}],
        **extra,
    }


@pytest.fixture(autouse=True)
def dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OF_TEST_DSN", DSN)


def test_the_retries_block_sets_the_step_retry_policy(caplog: pytest.LogCaptureFixture) -> None:
    spec = parse_pipeline(
        doc(retries={"max_retries": 4, "delay_seconds": 7, "backoff": "linear", "jitter": "full"})
    )
    (policy,) = {n.retry_policy for n in build_pipeline_job(spec).graph.node_defs}
    assert policy is not None
    assert (policy.max_retries, policy.delay, policy.backoff, policy.jitter) == (
        4,
        7,
        Backoff.LINEAR,
        Jitter.FULL,
    )
    off = parse_pipeline(doc(retries={"max_retries": 0}))
    assert build_pipeline_job(off).graph.node_defs[0].retry_policy is None
    with pytest.raises(PipelineSpecError) as ei:
        parse_pipeline(doc(retries={"max_retries": 99}))
    assert ei.value.field == "retries.max_retries"
    # The old tags still work, with a logged deprecation.
    with caplog.at_level(logging.WARNING, logger="openfuse_dagster"):
        tagged = parse_pipeline(doc(name="tagged_retries", tags={"retries": "1", "retry_delay_seconds": "3"}))
        old = build_pipeline_job(tagged).graph.node_defs[0].retry_policy
    assert old is not None and (old.max_retries, old.delay) == (1, 3)
    assert any("deprecated" in r.message and "retries:" in r.message for r in caplog.records)


def test_the_partitions_block_defines_time_partitions(caplog: pytest.LogCaptureFixture) -> None:
    block = {"granularity": "daily", "start": "2024-01-01", "end": "2024-01-06", "timezone": "Europe/Berlin"}
    spec = parse_pipeline(doc(partitions=block, schedule="0 * * * *"))
    pdef = partitions_def(spec)
    assert pdef is not None and pdef.get_partition_keys() == [f"2024-01-0{d}" for d in range(1, 6)]
    assert pdef.timezone == "Europe/Berlin"
    job = build_pipeline_job(spec)
    assert job.partitions_def == pdef
    schedule = build_pipeline_schedule(spec, job)
    assert schedule is not None and schedule.execution_timezone == "Europe/Berlin"
    # Same partitions as the deprecated tags gave.
    with caplog.at_level(logging.WARNING, logger="openfuse_dagster"):
        tags = {"partition": "daily", "partition_start": "2024-01-01", "partition_end": "2024-01-06"}
        tagged = parse_pipeline(doc(name="tagged_partitions", tags={**tags, "timezone": "Europe/Berlin"}))
        assert partitions_def(tagged) == pdef
    assert any("deprecated" in r.message and "partitions:" in r.message for r in caplog.records)

    six_hourly = parse_pipeline(
        doc(partitions={"cron": "0 */6 * * *", "start": "2024-01-01", "end": "2024-01-02"})
    )
    cron_def = partitions_def(six_hourly)
    assert cron_def is not None and len(cron_def.get_partition_keys()) == 4
    w = cron_def.time_window_for_partition_key(cron_def.get_partition_keys()[1])
    assert (w.start.hour, w.end.hour) == (6, 12)


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"partitions": {"start": "2024-01-01"}}, "partitions.granularity", "granularity or cron"),
        (
            {"partitions": {"granularity": "daily", "cron": "0 0 * * *", "start": "2024-01-01"}},
            "partitions.granularity",
            "exactly one",
        ),
        ({"partitions": {"granularity": "daily", "start": "soon"}}, "partitions.start", "ISO date"),
        (
            {"partitions": {"granularity": "fortnightly", "start": "2024-01-01"}},
            "partitions.granularity",
            "Input",
        ),
        (
            {
                "partitions": {"granularity": "daily", "start": "2024-01-01"},
                "streams": [{"name": "public.events"}],
            },
            "streams[0:public.events].mode",
            "must be incremental",
        ),
        (
            {"partitions": {"granularity": "daily", "start": "2024-01-01", "cursor_field": "created_at"}},
            "streams[0:public.events].cursor_field",
            "created_at",
        ),
    ],
)
def test_bad_partitions_name_the_field(extra: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(PipelineSpecError) as ei:
        parse_pipeline(doc(**extra))
    assert ei.value.field == field and message in str(ei.value)


def test_job_tags_carry_the_pipelines_openfuse_tags_and_owner() -> None:
    spec = parse_pipeline(
        doc(
            owner="ana@example.com",
            tags={"openfuse/workspace": "ws-1", "openfuse/pipeline_id": "p-1", "team": "x"},
        )
    )
    tags = build_pipeline_job(spec).tags
    assert tags["openfuse/workspace"] == "ws-1" and tags["openfuse/pipeline_id"] == "p-1"
    assert tags["openfuse/owner"] == "ana@example.com" and tags["openfuse/pipeline"] == "events"
    assert "team" not in tags and tags["openfuse/lock"] == "events"


def test_materialization_metadata_names_the_stream() -> None:
    spec = parse_pipeline(doc())
    result = StreamResult("public.events", "events", "incremental_append", rows_read=3, rows_written=3)
    meta = materialization_metadata(result, spec.streams[0], run_id="r1")
    assert meta["stream"].value == "public.events" and meta["rows_written"].value == 3


def write(folder: Path, name: str, data: dict[str, Any]) -> None:
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))


def test_pipelines_of_two_workspaces_get_their_own_asset_keys(tmp_path: Path) -> None:
    for i, ws in enumerate(["0a1b2c3d-1111-2222-3333-444444444444", "9f8e7d6c-1111-2222-3333-444444444444"]):
        write(tmp_path, f"api_events_{i}", doc(name=f"events__{ws[:8]}", tags={"openfuse/workspace": ws}))
    write(tmp_path, "local", doc(name="local_events"))
    defs = build_definitions(tmp_path)
    keys = {k for a in defs.assets or [] for k in a.keys}  # type: ignore[union-attr]
    assert keys == {
        AssetKey(["ws_0a1b2c3d", "postgres", "raw", "events"]),
        AssetKey(["ws_9f8e7d6c", "postgres", "raw", "events"]),
        AssetKey(["postgres", "raw", "events"]),
    }
    assert defs.metadata["openfuse/broken_pipelines"].value == []

    class NoPrefix(OpenFuseTranslator):
        def get_key_prefix(self, pipeline: PipelineSpec) -> Sequence[str]:
            return []

    clashing = build_definitions(tmp_path, translator=NoPrefix())
    broken = clashing.metadata["openfuse/broken_pipelines"].value
    assert len(broken) == 2 and all("is already loaded by pipeline" in b["error"] for b in broken)
