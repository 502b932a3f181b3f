"""Operating a CDC pipeline: server checks, slot health, idle heartbeats, refusing a slot that is
ahead of the committed position (and the two ways out), dropping, and a graceful SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cdc_support import pg, rows

from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.cdc import (
    CdcSettings,
    PostgresChangeSink,
    SlotPositionError,
    SourceNotReadyError,
    drop_pipeline,
    parse_lsn,
    reset_position,
    run_cdc,
    slot_health,
)

CHILD = Path(__file__).with_name("cdc_child.py")
REPO = Path(__file__).resolve().parents[2]


def settings(url: str, pipeline: str = "ops", **kw: Any) -> CdcSettings:
    return CdcSettings(pipeline=pipeline, source=PostgresConfig(dsn=url), tables=("public.t",), **kw)


def sink(dest: str, pipeline: str = "ops") -> PostgresChangeSink:
    return PostgresChangeSink(PostgresConfig(dsn=dest, schema="mirror"), pipeline=pipeline)


def committed(dest: str, pipeline: str = "ops") -> int:
    [(state,)] = rows(
        dest, f"SELECT state FROM mirror._openfuse_state WHERE pipeline = '{pipeline}' AND stream = '@cdc'"
    )
    return parse_lsn(state["extra"]["cdc"]["lsn"])


def confirmed(source: str) -> int:
    [(lsn,)] = rows(source, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots")
    return parse_lsn(lsn)


def test_a_server_without_logical_decoding_is_refused_with_the_fix(pg_db: str) -> None:
    # The shared server runs wal_level=replica; nothing is created on it.
    with pytest.raises(SourceNotReadyError, match="wal_level = logical"):
        run_cdc(settings(pg_db), [sink(pg_db)], handle_signals=False)


def test_slot_health_heartbeats_and_drop(source_db: str, pg_db: str) -> None:
    pg(source_db, "CREATE TABLE t (id int PRIMARY KEY)", "CREATE TABLE other (x text)")
    s = settings(
        source_db,
        heartbeat_interval_s=0.2,
        lag_threshold_bytes=64 << 10,
        retained_wal_threshold_bytes=64 << 20,
    )
    before = slot_health(s)
    assert not before.exists and not before.ok and "does not exist" in before.message

    run_cdc(s, [sink(pg_db)], until_caught_up=True, handle_signals=False)
    health = slot_health(s)
    assert health.exists and not health.active and health.ok, health
    assert health.lag_bytes is not None and health.lag_bytes < 64 << 10

    # Writes to tables the pipeline does not capture still hold WAL until the slot moves.
    pg(source_db, "INSERT INTO other SELECT repeat('x', 200) FROM generate_series(1, 2000)")
    lagging = slot_health(s)
    assert not lagging.ok and "above the threshold" in lagging.message, lagging
    assert lagging.to_dict()["lag_bytes"] > 64 << 10
    pg(source_db, "CHECKPOINT")  # logs the running transactions: restart_lsn may move past them
    [(end,)] = rows(source_db, "SELECT pg_current_wal_lsn()::text")
    run_cdc(s, [sink(pg_db)], max_seconds=1.5, handle_signals=False)
    # Idle heartbeats stored and confirmed the server's position: the WAL can go.
    assert committed(pg_db) == confirmed(source_db) >= parse_lsn(end)
    after = slot_health(s)
    assert after.ok and after.lag_bytes == 0, after
    assert after.retained_wal_bytes is not None and after.retained_wal_bytes < lagging.retained_wal_bytes

    drop_pipeline(s, [sink(pg_db)])
    assert rows(source_db, "SELECT count(*) FROM pg_replication_slots") == [(0,)]
    assert rows(source_db, "SELECT count(*) FROM pg_publication") == [(0,)]
    assert rows(pg_db, "SELECT count(*) FROM mirror._openfuse_state WHERE stream = '@cdc'") == [(0,)]
    pg(source_db, "INSERT INTO t VALUES (1)")
    again = run_cdc(s, [sink(pg_db)], until_caught_up=True, handle_signals=False)
    assert again.snapshot_rows == 1  # dropped: the next start takes a new snapshot


def test_a_slot_ahead_of_the_committed_position_is_refused(source_db: str, pg_db: str) -> None:
    pg(source_db, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (1)")
    s = settings(source_db)
    run_cdc(s, [sink(pg_db)], until_caught_up=True, handle_signals=False)
    pg(source_db, "INSERT INTO t VALUES (2)")
    # Someone moves the slot past a change the destination never received.
    pg(source_db, "SELECT pg_replication_slot_advance('openfuse_ops', pg_current_wal_insert_lsn())")
    with pytest.raises(SlotPositionError) as e:
        run_cdc(s, [sink(pg_db)], handle_signals=False)
    msg = str(e.value)
    assert (
        "ahead of the committed position" in msg and "re-snapshot" in msg and "--accept-slot-position" in msg
    )
    assert e.value.slot_lsn == confirmed(source_db) and e.value.committed_lsn == committed(pg_db)

    # Way out 1: accept the gap.
    reset_position(s, [sink(pg_db)])
    pg(source_db, "INSERT INTO t VALUES (3)")
    run_cdc(s, [sink(pg_db)], until_caught_up=True, handle_signals=False)
    assert rows(pg_db, "SELECT id FROM mirror.t ORDER BY id") == [(1,), (3,)]  # 2 is the accepted gap

    # Way out 2: the slot is gone (dropped by someone): refused, then re-snapshot after a drop.
    pg(source_db, "SELECT pg_drop_replication_slot('openfuse_ops')")
    with pytest.raises(SlotPositionError, match="does not exist"):
        run_cdc(s, [sink(pg_db)], handle_signals=False)
    drop_pipeline(s, [sink(pg_db)])
    run_cdc(s, [sink(pg_db)], until_caught_up=True, handle_signals=False)
    assert rows(pg_db, "SELECT id FROM mirror.t ORDER BY id") == [(1,), (2,), (3,)]


def test_sigterm_stops_at_a_transaction_boundary_and_commits_the_position(source_db: str, pg_db: str) -> None:
    pg(source_db, "CREATE TABLE t (id int PRIMARY KEY, v int)")
    run_cdc(settings(source_db), [sink(pg_db)], until_caught_up=True, handle_signals=False)
    args = {
        "source": source_db,
        "dest": pg_db,
        "pipeline": "ops",
        "tables": ["public.t"],
        "options": {"max_batch_delay_ms": 50},
    }
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps(args)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not rows(source_db, "SELECT count(*) FROM pg_replication_slots WHERE active")[0][0]:
            assert time.monotonic() < deadline and proc.poll() is None, (
                proc.stderr.read() if proc.stderr else ""
            )
            time.sleep(0.05)
        for i in range(20):
            pg(source_db, f"INSERT INTO t VALUES ({i}, {i})")
        while rows(pg_db, "SELECT count(*) FROM mirror.t")[0][0] < 20:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pg(source_db, "UPDATE t SET v = -1")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert json.loads(out.strip().splitlines()[-1])["stopped_by"] == "stop"
    # The last acknowledged position is committed and confirmed to the slot.
    assert committed(pg_db) == confirmed(source_db)
    run_cdc(settings(source_db), [sink(pg_db)], until_caught_up=True, handle_signals=False)
    assert rows(pg_db, "SELECT id, v FROM mirror.t ORDER BY id") == rows(
        source_db, "SELECT id, v FROM t ORDER BY id"
    )


def test_a_stop_during_the_snapshot_commits_nothing_and_leaves_no_slot(source_db: str, pg_db: str) -> None:
    from openfuse_connectors.cdc import CdcRunner

    pg(source_db, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 1000)")
    runner: CdcRunner | None = None

    def stop_at_first_chunk(point: str) -> None:
        if point == "snapshot_chunk" and runner is not None:
            runner.request_stop()

    runner = CdcRunner(settings(source_db, snapshot_chunk_rows=100), [sink(pg_db)], hook=stop_at_first_chunk)
    summary = runner.run()
    assert summary.stopped_by == "stop" and summary.position is None
    assert rows(source_db, "SELECT count(*) FROM pg_replication_slots") == [(0,)]
    assert rows(pg_db, "SELECT count(*) FROM mirror._openfuse_state WHERE stream = '@cdc'") == [(0,)]
    again = run_cdc(settings(source_db), [sink(pg_db)], until_caught_up=True, handle_signals=False)
    assert again.snapshot_rows == 1000
