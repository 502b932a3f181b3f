"""Time-partitioned incremental pipelines: a partition is a cursor range with its own state."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pyarrow as pa
import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DailyPartitionsDefinition,
    Definitions,
    build_schedule_context,
    materialize,
)
from support import pg_exec, pg_rows

from openfuse_connectors import ConfigError, PipelineSpec
from openfuse_dagster import (
    build_pipeline_job,
    build_pipeline_schedule,
    openfuse_assets,
    openfuse_resources,
    partitions_def,
)
from openfuse_dagster.partitions import cursor_bounds, partition_stream

UTC = dt.UTC


def pipeline(mode: str = "incremental_dedupe", *, slow: bool = False, **tags: str) -> PipelineSpec:
    stream: dict[str, Any] = {"name": "public.events", "mode": mode, "cursor_field": "ts"}
    if mode == "incremental_dedupe":
        stream["primary_key"] = ["id"]
    if slow:  # each load holds its transaction open for 1.5 s: parallel loads overlap for sure
        stream["transforms"] = [{"type": "python", "callable": "stack_helpers:pause"}]
    return PipelineSpec.model_validate(
        {
            "name": "ev",
            "source": {"connector": "postgres", "config": {"dsn": "${OF_PART_SRC}"}},
            "destination": {"connector": "postgres", "config": {"dsn": "${OF_PART_DST}", "schema": "p"}},
            "tags": {
                "partition": "daily",
                "partition_start": "2024-01-01",
                "partition_end": "2024-01-06",
                "retries": "0",
                **tags,
            },
            "streams": [stream],
        }
    )


def test_partitioning_is_validated_and_maps_to_dagster_partitions() -> None:
    pdef = partitions_def(pipeline(timezone="Europe/Berlin"))
    assert isinstance(pdef, DailyPartitionsDefinition)
    assert pdef.timezone == "Europe/Berlin"
    assert pdef.get_partition_keys()[:2] == ["2024-01-01", "2024-01-02"]
    assert pdef.get_last_partition_key() == "2024-01-05"  # partition_end is exclusive
    job = build_pipeline_job(pipeline())
    assert job.partitions_def == partitions_def(pipeline())
    assert "openfuse/lock" not in job.tags  # per partition, see the backfill test
    assets = openfuse_assets(pipeline())
    assert assets.partitions_def == job.partitions_def

    cases = {
        ("partition", "fortnightly"): "tags.partition",
        ("partition_start", "soon"): "tags.partition_start",
        ("partition_end_offset", "-1"): "tags.partition_end_offset",
    }
    for (tag, value), field in cases.items():
        with pytest.raises(ConfigError) as ei:
            partitions_def(pipeline(**{tag: value}))
        assert ei.value.field == field
    full = PipelineSpec.model_validate(
        {**pipeline().model_dump(), "streams": [{"name": "public.events", "mode": "full_refresh_overwrite"}]}
    )
    with pytest.raises(ConfigError) as ei:
        partitions_def(full)
    assert ei.value.field == "streams[0:public.events].mode"

    # A partition's bounds in the cursor column's type; its state key is its own.
    start, end = dt.datetime(2024, 1, 2, tzinfo=UTC), dt.datetime(2024, 1, 3, tzinfo=UTC)
    lo, hi = cursor_bounds(pa.field("ts", pa.timestamp("us", tz="UTC")), start, end)
    assert (lo.as_py(), hi.as_py()) == (start, end)
    lo, _ = cursor_bounds(pa.field("d", pa.date32()), start, end)
    assert lo.as_py() == dt.date(2024, 1, 2)
    with pytest.raises(ConfigError):
        cursor_bounds(pa.field("n", pa.int64()), start, end)
    s = partition_stream(pipeline().streams[0], "2024-01-02")
    assert s.state_key == "public.events#2024-01-02" and s.table == "events"


def test_the_schedule_of_a_partitioned_pipeline_asks_for_the_current_and_previous_partition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OF_PART_SRC", "postgresql://postgres@127.0.0.1/not_connected")
    monkeypatch.setenv("OF_PART_DST", "postgresql://postgres@127.0.0.1/not_connected")
    spec = pipeline(partition_end_offset="1").model_copy(update={"schedule": "0 * * * *"})
    job = build_pipeline_job(spec)
    schedule = build_pipeline_schedule(spec, job)
    assert schedule is not None
    repo = Definitions(
        jobs=[job], schedules=[schedule], resources=openfuse_resources(spec)
    ).get_repository_def()
    tick = dt.datetime(2024, 1, 3, 5, 0, tzinfo=UTC)
    with DagsterInstance.ephemeral() as instance:
        ctx = build_schedule_context(instance=instance, scheduled_execution_time=tick, repository_def=repo)
        requests = list(schedule.evaluate_tick(ctx).run_requests or [])
    assert [(r.partition_key, r.tags["openfuse/lock"]) for r in requests] == [
        ("2024-01-02", "ev@2024-01-02"),
        ("2024-01-03", "ev@2024-01-03"),
    ]


@pytest.fixture
def events(pg_pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    src, dst = pg_pair
    # 24 rows a day, 2024-01-01 .. 2024-01-05, one an hour; some rows exactly at midnight.
    pg_exec(
        src,
        "CREATE TABLE events (id int PRIMARY KEY, ts timestamptz NOT NULL, v text)",
        "INSERT INTO events SELECT g, '2024-01-01'::timestamptz + (g - 1) * interval '1 hour', 'v' || g "
        "FROM generate_series(1, 120) g",
    )
    monkeypatch.setenv("OF_PART_SRC", src)
    monkeypatch.setenv("OF_PART_DST", dst)
    return src, dst


def _day(src: str, day: str) -> list[tuple[Any, ...]]:
    return pg_rows(
        src,
        f"SELECT id, ts, v FROM events WHERE ts >= '{day}'::timestamptz "
        f"AND ts < '{day}'::timestamptz + interval '1 day' ORDER BY id",
    )


def _written(result: Any, key: str = "rows_written") -> dict[str | None, int]:
    return {
        e.event_specific_data.materialization.partition: e.event_specific_data.materialization.metadata[
            key
        ].value
        for e in result.all_events
        if e.event_type is DagsterEventType.ASSET_MATERIALIZATION
    }


@pytest.mark.postgres
def test_each_partition_loads_its_range_once_in_any_order_and_reruns_add_only_late_rows(
    events: tuple[str, str],
) -> None:
    src, dst = events
    spec = pipeline()
    job = build_pipeline_job(spec)
    res = openfuse_resources(spec)
    q = "SELECT id, ts, v FROM p.events ORDER BY id"
    with DagsterInstance.ephemeral() as instance:
        # Out of order: a later partition first.
        r3 = job.execute_in_process(partition_key="2024-01-03", resources=res, instance=instance)
        assert _written(r3) == {"2024-01-03": 24}
        r1 = job.execute_in_process(partition_key="2024-01-01", resources=res, instance=instance)
        assert _written(r1) == {"2024-01-01": 24}
        assert pg_rows(dst, q) == _day(src, "2024-01-01") + _day(src, "2024-01-03")

        # A rerun finds nothing new; a late row and an update inside the range are picked up.
        again = job.execute_in_process(partition_key="2024-01-03", resources=res, instance=instance)
        assert _written(again) == {"2024-01-03": 0}
        pg_exec(
            src,
            "INSERT INTO events VALUES (500, '2024-01-03 23:30+00', 'late')",
            "UPDATE events SET v = 'changed', ts = '2024-01-03 23:45+00' WHERE id = 50",
            "INSERT INTO events VALUES (501, '2024-01-04 00:00+00', 'next day')",
        )
        late = job.execute_in_process(partition_key="2024-01-03", resources=res, instance=instance)
        assert _written(late) == {"2024-01-03": 2}
        assert pg_rows(dst, q) == _day(src, "2024-01-01") + _day(src, "2024-01-03")

        # A partition's full refresh re-reads its range and merges: same rows, none doubled.
        refreshed = job.execute_in_process(
            partition_key="2024-01-01",
            resources=res,
            instance=instance,
            run_config={"ops": {"ev__events": {"config": {"full_refresh": True}}}},
        )
        assert _written(refreshed, "rows_read") == {"2024-01-01": 24}
        assert pg_rows(dst, q) == _day(src, "2024-01-01") + _day(src, "2024-01-03")
    states = pg_rows(dst, "SELECT stream FROM p._openfuse_state ORDER BY 1")
    assert states == [("public.events#2024-01-01",), ("public.events#2024-01-03",)]


@pytest.mark.postgres
def test_a_partition_reads_only_its_range_from_a_bounded_source(events: tuple[str, str]) -> None:
    """The range's upper bound goes to the source (PostgreSQL declares ``bounded_reads``): the
    first day's partition reads its 24 rows, not the 96 after them. A source without the
    capability gives the same rows, read to the end and filtered."""
    from openfuse_connectors.builtin.postgres.extractor import PostgresExtractor
    from openfuse_connectors.registry import get_registry
    from openfuse_connectors.spec import StreamSpec
    from openfuse_dagster.partitions import CursorRangeExtractor

    class Unbounded(PostgresExtractor):
        bounded_reads = False

        def read(self, stream, state, *, batch_size=100_000):  # type: ignore[no-untyped-def, override]
            return super().read(stream, state, batch_size=batch_size)

    src, _ = events
    bounded = get_registry().extractor("postgres", {"dsn": src})
    assert bounded.bounded_reads
    stream = StreamSpec(name="public.events", mode="incremental_append", cursor_field="ts")
    start, end = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 2, tzinfo=UTC)
    got = {}
    for inner in (bounded, Unbounded(bounded.config)):
        ranged = CursorRangeExtractor(inner, "ts", start, end)
        rows = [r for b in ranged.read(stream, None, batch_size=10) for r in b.to_pylist()]
        got[inner.bounded_reads] = ([(r["id"], r["ts"], r["v"]) for r in rows], ranged.rows_from_source)
    assert got[True][0] == got[False][0] == _day(src, "2024-01-01")
    assert got[True][1] == 24 and got[False][1] == 120


@pytest.mark.postgres
def test_partitions_load_in_parallel_into_a_new_table_and_an_append_refresh_replaces_its_range(
    events: tuple[str, str],
) -> None:
    src, dst = events
    spec = pipeline("incremental_append", slow=True)
    job = build_pipeline_job(spec)
    res = openfuse_resources(spec)
    days = ["2024-01-02", "2024-01-04", "2024-01-05"]
    results: dict[str, Any] = {}
    logs: list[str] = []

    def run(day: str) -> None:
        with DagsterInstance.ephemeral() as instance:
            results[day] = job.execute_in_process(
                partition_key=day, resources=res, instance=instance, raise_on_error=False
            )
            logs.extend(e.user_message for e in instance.all_logs(results[day].run_id))

    threads = [threading.Thread(target=run, args=(d,)) for d in days]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(results[d].success for d in days), {d: r.success for d, r in results.items()}
    assert {d: _written(results[d])[d] for d in days} == dict.fromkeys(days, 24)
    # All three created the table in their own transaction; the two that lost loaded again.
    assert sum("was created by a parallel load" in m for m in logs) == 2
    loaded = pg_rows(dst, "SELECT id, ts, v FROM p.events ORDER BY id")
    assert loaded == [row for d in days for row in _day(src, d)]

    # At the source, inside 2024-01-02: one row deleted, one changed without moving its cursor.
    pg_exec(src, "DELETE FROM events WHERE id = 30", "UPDATE events SET v = 'fixed' WHERE id = 31")
    refreshed = job.execute_in_process(
        partition_key="2024-01-02",
        resources=res,
        run_config={"ops": {"ev__events": {"config": {"full_refresh": True}}}},
    )
    assert _written(refreshed) == {"2024-01-02": 23}
    [m] = [e for e in refreshed.all_events if e.event_type is DagsterEventType.ASSET_MATERIALIZATION]
    assert m.event_specific_data.materialization.metadata["disposition"].value == "replace_range"
    loaded = pg_rows(dst, "SELECT id, ts, v FROM p.events ORDER BY id")
    assert loaded == [row for d in days for row in _day(src, d)]  # the other days untouched
    assert [r[2] for r in loaded if r[0] in (30, 31)] == ["fixed"] and len(loaded) == 71
    # The partition's state is its own again: a plain rerun finds nothing new.
    again = job.execute_in_process(partition_key="2024-01-02", resources=res)
    assert _written(again) == {"2024-01-02": 0}


@pytest.mark.postgres
def test_partitioned_assets_sync_a_range_of_partitions_in_one_run(events: tuple[str, str]) -> None:
    src, dst = events
    spec = pipeline()
    # A single-run backfill of a range (what BackfillPolicy.single_run() launches).
    result = materialize(
        [openfuse_assets(spec)],
        resources=openfuse_resources(spec),
        tags={
            "dagster/asset_partition_range_start": "2024-01-02",
            "dagster/asset_partition_range_end": "2024-01-03",
        },
    )
    assert result.success
    # Dagster records the run's materialization once per partition of the range; the numbers are
    # the run's (both partitions), and say so.
    mats = result.get_asset_materialization_events()
    assert sorted(m.materialization.partition for m in mats) == ["2024-01-02", "2024-01-03"]
    meta = mats[0].materialization.metadata
    assert meta["partitions"].value == ["2024-01-02", "2024-01-03"]
    assert meta["rows_written"].value == 48
    assert pg_rows(dst, "SELECT id, ts, v FROM p.events ORDER BY id") == _day(src, "2024-01-02") + _day(
        src, "2024-01-03"
    )
