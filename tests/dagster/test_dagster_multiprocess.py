"""A pipeline job launched like production: code location by module, one process per stream."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterRunStatus
from support import pg_exec, pg_rows

from openfuse_dagster import load_instance

PIPELINE = """
name: mp
source: {connector: postgres, config: {dsn: "${OF_MP_SRC}"}}
destination: {connector: postgres, config: {dsn: "${OF_MP_DST}", schema: landing}}
tags: {retries: "2", retry_delay_seconds: "0"}
streams:
  - {name: public.a}
  - {name: public.b, mode: incremental_append, cursor_field: ts}
"""


@pytest.mark.postgres
@pytest.mark.slow
def test_streams_run_in_their_own_processes_from_the_module_code_location(
    pg_pair: tuple[str, str], tmp_path: Path
) -> None:
    src, dst = pg_pair
    pg_exec(
        src,
        "CREATE TABLE a (id int PRIMARY KEY, v text)",
        "INSERT INTO a SELECT g, 'v' || g FROM generate_series(1, 1000) g",
        "CREATE TABLE b (id int PRIMARY KEY, ts timestamptz NOT NULL)",
        "INSERT INTO b SELECT g, '2024-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 500) g",
    )
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "mp.yaml").write_text(textwrap.dedent(PIPELINE), encoding="utf-8")
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "OPENFUSE_PIPELINES_DIR": str(tmp_path / "pipelines"),
        # Embedded deployments default to the in-process executor; this test is about the other.
        "OPENFUSE_EXECUTOR": "multiprocess",
        "OF_MP_SRC": src,
        "OF_MP_DST": dst,
    }
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "job",
            "execute",
            "-m",
            "openfuse_dagster.definitions",
            "-j",
            "mp",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert pg_rows(dst, "SELECT count(*) FROM landing.a") == [(1000,)]
    assert pg_rows(dst, "SELECT count(*) FROM landing.b") == [(500,)]

    with load_instance(home) as instance:
        [run] = instance.get_runs()
        assert run.status is DagsterRunStatus.SUCCESS
        events = [e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event]
        # Each stream's op ran in a process of its own (the multiprocess executor's children).
        starts = {e.step_key: e.pid for e in events if e.event_type is DagsterEventType.STEP_START}
        assert set(starts) == {"mp__a", "mp__b"}
        run_pid = next(e.pid for e in events if e.event_type is DagsterEventType.RUN_START)
        assert run_pid not in starts.values()
        for table in ("a", "b"):
            mat = instance.get_latest_materialization_event(AssetKey(["postgres", "landing", table]))
            assert mat is not None and mat.asset_materialization is not None
            assert mat.asset_materialization.metadata["rows_written"].value == (1000 if table == "a" else 500)
