"""The new-files sensor of pipelines reading from the files connector."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from dagster import DagsterInstance, build_sensor_context

from openfuse_dagster import build_definitions

FILES_PIPELINE = """
name: drops
source: {connector: files, config: {path: "${OF_DROP_DIR}"}}
destination: {connector: duckdb, config: {path: "${OF_DROP_DB}"}}
tags: {sensor_interval_seconds: "15"}
streams:
  - {name: orders, mode: incremental_append, cursor_field: _modified_at}
"""
PARTITIONED = """
name: daily_drops
source: {connector: files, config: {path: "${OF_DROP_DIR}"}}
destination: {connector: duckdb, config: {path: "${OF_DROP_DB}"}}
tags: {partition: daily, partition_start: "2024-01-01", partition_end: "2024-02-01"}
streams:
  - {name: orders, mode: incremental_append, cursor_field: _modified_at, destination_table: daily}
"""
OTHER_SOURCE = """
name: not_files
source: {connector: postgres, config: {dsn: "${OF_DROP_DSN}"}}
destination: {connector: duckdb, config: {path: "${OF_DROP_DB}"}}
streams: [{name: public.x, destination_table: other}]
"""


def _file(folder: Path, name: str, when: str) -> None:
    import datetime as dt

    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("id,v\n1,a\n", encoding="utf-8")
    t = dt.datetime.fromisoformat(when).timestamp()
    os.utime(p, (t, t))


def test_files_sensor_requests_one_run_per_change_keyed_by_the_newest_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    pipes = tmp_path / "pipelines"
    pipes.mkdir()
    for name, text in {"a.yaml": FILES_PIPELINE, "b.yaml": PARTITIONED, "c.yaml": OTHER_SOURCE}.items():
        (pipes / name).write_text(textwrap.dedent(text), encoding="utf-8")
    monkeypatch.setenv("OF_DROP_DIR", str(drop))
    monkeypatch.setenv("OF_DROP_DB", str(tmp_path / "w.duckdb"))
    monkeypatch.setenv("OF_DROP_DSN", "postgresql://postgres@127.0.0.1/not_connected")
    defs = build_definitions(pipes)
    repo = defs.get_repository_def()
    assert {s.name for s in repo.sensor_defs} == {"drops_new_files", "daily_drops_new_files"}
    sensor = defs.resolve_sensor_def("drops_new_files")
    assert sensor.minimum_interval_seconds == 15 and sensor.job_name == "drops"

    def tick(
        cursor: str | None, name: str = "drops_new_files"
    ) -> tuple[list[str | None], str | None, str | None]:
        with DagsterInstance.ephemeral() as instance:
            ctx = build_sensor_context(instance=instance, cursor=cursor, repository_def=repo)
            data = defs.resolve_sensor_def(name).evaluate_tick(ctx)
        keys = [r.run_key if name == "drops_new_files" else r.partition_key for r in data.run_requests or []]
        return keys, data.cursor, data.skip_message

    keys, cursor, skip = tick(None)
    assert keys == [] and cursor is None and skip and "no data files" in skip

    _file(drop, "orders.csv", "2024-01-03T10:00:00+00:00")
    _file(drop, "sub/more.csv", "2024-01-02T10:00:00+00:00")
    keys, cursor, _ = tick(None)
    newest = str(int(1704276000 * 1e6))
    assert keys == [newest] and cursor == newest

    # Nothing changed since the cursor: no run, however often it looks.
    keys, cursor2, skip = tick(cursor)
    assert keys == [] and cursor2 == cursor and skip and "no file changed" in skip
    # Bookkeeping files (_staging, .tmp) are never data.
    _file(drop, "_staging/x.csv", "2024-01-09T00:00:00+00:00")
    _file(drop, ".orders.csv.swp", "2024-01-09T00:00:00+00:00")
    assert tick(cursor)[0] == []
    # A new file: one run, keyed by its time.
    _file(drop, "orders_2.csv", "2024-01-05T08:00:00+00:00")
    keys, cursor3, _ = tick(cursor)
    assert keys == [str(int(1704441600 * 1e6))] and cursor3 == keys[0]

    # A partitioned pipeline on the file time: the partitions the new files fall in.
    keys, _, _ = tick(cursor, "daily_drops_new_files")
    assert keys == ["2024-01-05"]
    keys, _, _ = tick(None, "daily_drops_new_files")
    assert keys == ["2024-01-02", "2024-01-03", "2024-01-05"]
