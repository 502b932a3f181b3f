"""A CDC pipeline on Dagster: assets per captured table, bounded runs, slot health check, sensor.

The source is the CDC tests' private PostgreSQL cluster (wal_level=logical, see conftest.py);
the destination is the shared PostgreSQL server.
"""

from __future__ import annotations

import _thread
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    RunRequest,
    SkipReason,
    build_sensor_context,
    define_asset_job,
)
from dagster._core.storage.dagster_run import DagsterRun
from support import pg_exec, pg_rows

from openfuse_connectors import ConfigError, PipelineSpec, PipelineSpecError, parse_pipeline
from openfuse_connectors.cdc.lsn import parse_lsn
from openfuse_connectors.cdc.pipeline import build
from openfuse_connectors.cdc.runner import CdcRunner
from openfuse_connectors.engine import run_pipeline
from openfuse_dagster import (
    SLOT_HEALTH_CHECK,
    build_cdc_slot_check,
    build_definitions,
    build_pipeline_job,
    openfuse_assets,
    openfuse_cdc_assets,
    openfuse_resources,
)
from openfuse_dagster.cdc import _run_in_thread

pytestmark = pytest.mark.postgres

ORDERS = AssetKey(["postgres", "mirror", "orders"])
CUSTOMERS = AssetKey(["postgres", "mirror", "clients"])


def cdc_doc(name: str, **cdc: Any) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"connector": "postgres", "config": {"dsn": "${OF_CDC_SRC}"}},
        "destination": {"connector": "postgres", "config": {"dsn": "${OF_CDC_DST}", "schema": "mirror"}},
        "owner": "team:data",
        "tags": {"openfuse/team": "data", "openfuse/workspace": "1a2b3c4d-0000-0000-0000-000000000000"},
        "cdc": {"max_run_seconds": 30, **cdc},
        "streams": [
            {"name": "public.orders", "mode": "cdc"},
            {"name": "public.customers", "mode": "cdc", "destination_table": "clients"},
        ],
    }


@pytest.fixture
def shop(cdc_source_db: str, pg_db: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    pg_exec(
        cdc_source_db,
        "CREATE TABLE orders (id int PRIMARY KEY, amount int)",
        "CREATE TABLE customers (id int PRIMARY KEY, name text)",
        "CREATE TABLE noise (id serial PRIMARY KEY, pad text)",  # not captured: WAL only
        "INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 3) g",
        "INSERT INTO customers VALUES (1, 'ann'), (2, 'bob')",
    )
    monkeypatch.setenv("OF_CDC_SRC", cdc_source_db)
    monkeypatch.setenv("OF_CDC_DST", pg_db)
    return cdc_source_db, pg_db


def write(folder: Path, doc: dict[str, Any]) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def ws_key(key: AssetKey) -> AssetKey:
    return AssetKey(["ws_1a2b3c4d", *key.path])


def run(defs: Definitions, job: str, instance: DagsterInstance, **config: Any) -> Any:
    op = f"openfuse_{job}_cdc"
    result = defs.resolve_job_def(job).execute_in_process(
        run_config={"ops": {op: {"config": config}}}, instance=instance
    )
    assert result.success
    mats = {
        m.asset_key: {k: v.value for k, v in m.metadata.items()}
        for m in result.asset_materializations_for_node(op)
    }
    checks = {(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()}
    return mats, checks


def test_cdc_specs_are_validated_and_the_batch_paths_refuse_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OF_CDC_SRC", "postgresql://postgres@127.0.0.1:1/never_connected")
    monkeypatch.setenv("OF_CDC_DST", "postgresql://postgres@127.0.0.1:1/never_connected")
    doc = cdc_doc("shop")
    spec = parse_pipeline(doc)
    assert spec.is_cdc and spec.cdc is not None and spec.cdc.max_run_seconds == 30
    mixed = {**doc, "streams": [*doc["streams"], {"name": "public.noise"}]}
    with pytest.raises(PipelineSpecError) as ei:
        parse_pipeline(mixed)
    assert ei.value.field == "streams[2:public.noise].mode" and "must use mode cdc" in str(ei.value)
    with pytest.raises(PipelineSpecError) as ei:
        parse_pipeline({**doc, "source": {"connector": "mysql", "config": {}}})
    assert ei.value.field == "source.connector" and "postgres source" in str(ei.value)
    with pytest.raises(PipelineSpecError) as ei:
        parse_pipeline({**doc, "streams": [{"name": "public.orders"}]})
    assert ei.value.field == "cdc" and "mode cdc" in str(ei.value)
    with pytest.raises(PipelineSpecError) as ei:
        parse_pipeline({**doc, "cdc": {"deletes": "sometimes"}})
    assert ei.value.field == "cdc.deletes"
    # The batch engine and the batch Dagster builders point to the CDC runner.
    with pytest.raises(ConfigError, match="openfuse cdc run"):
        run_pipeline(spec)
    with pytest.raises(ConfigError, match="cdc pipeline"):
        openfuse_assets(spec)
    with pytest.raises(ConfigError, match="cdc pipeline"):
        build_pipeline_job(spec)
    plain = parse_pipeline({**doc, "cdc": None, "streams": [{"name": "public.orders"}]})
    with pytest.raises(ConfigError, match="not a cdc pipeline"):
        openfuse_cdc_assets(plain)


def test_a_cdc_pipeline_file_becomes_assets_a_job_a_slot_check_and_a_sensor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OF_CDC_SRC", "postgresql://postgres@127.0.0.1:1/not_connected_at_load")
    monkeypatch.setenv("OF_CDC_DST", "postgresql://postgres@127.0.0.1:1/not_connected_at_load")
    write(tmp_path, cdc_doc("shop"))
    mixed = cdc_doc("mixed")
    mixed["streams"] = [*mixed["streams"], {"name": "public.noise"}]
    write(tmp_path, mixed)
    defs = build_definitions(tmp_path)
    job = defs.resolve_job_def("shop")
    assert job.tags["openfuse/lock"] == "shop" and job.tags["openfuse/owner"] == "team:data"
    assert job.tags["openfuse/team"] == "data" and job.tags["openfuse/pipeline"] == "shop"
    keys = {ws_key(ORDERS), ws_key(CUSTOMERS)}
    assert set(job.asset_layer.selected_asset_keys) == keys
    graph = defs.resolve_asset_graph()
    assert {k for k in graph.asset_check_keys if k.name == SLOT_HEALTH_CHECK} == {
        AssetCheckKey(k, SLOT_HEALTH_CHECK) for k in keys
    }
    sensor = defs.resolve_sensor_def("shop_cdc")
    assert sensor.job_name == "shop" and sensor.minimum_interval_seconds == 30
    broken = defs.metadata["openfuse/broken_pipelines"].value
    assert [(b["pipeline"], b["field"]) for b in broken] == [(None, "streams[2:public.noise].mode")]


def test_the_cdc_job_applies_changes_and_reports_counts_and_positions(
    shop: tuple[str, str], tmp_path: Path
) -> None:
    src, dst = shop
    name = f"shop_{uuid.uuid4().hex[:6]}"
    # The server moves a slot's restart_lsn (retained WAL) lazily: give that threshold room.
    write(
        tmp_path,
        cdc_doc(
            name, lag_threshold_bytes=1 << 20, retained_wal_threshold_bytes=64 << 20, heartbeat_interval_s=0.2
        ),
    )
    defs = build_definitions(tmp_path)
    orders, customers = ws_key(ORDERS), ws_key(CUSTOMERS)
    with DagsterInstance.ephemeral() as instance:
        # First run: the initial snapshot, consistent with the slot's start.
        mats, checks = run(defs, name, instance, until_caught_up=True)
        assert mats[orders]["snapshot_rows"] == 3 and mats[customers]["snapshot_rows"] == 2
        assert mats[orders]["changes_applied"] == 0 and mats[orders]["lsn_before"] is None
        assert mats[orders]["stream"] == "public.orders" and mats[customers]["table"] == "clients"
        first = mats[orders]["lsn_after"]
        assert first and mats[customers]["lsn_after"] == first
        assert checks[(orders, SLOT_HEALTH_CHECK)].passed and checks[(customers, SLOT_HEALTH_CHECK)].passed
        assert pg_rows(dst, "SELECT id, amount FROM mirror.orders ORDER BY id") == [(1, 10), (2, 20), (3, 30)]

        # Changes in several transactions, one of them touching both tables.
        pg_exec(
            src,
            "INSERT INTO orders VALUES (4, 40), (5, 50)",
            "UPDATE orders SET amount = 11 WHERE id = 1",
            "BEGIN; DELETE FROM orders WHERE id = 2; UPDATE customers SET name = 'bea' WHERE id = 2; "
            "INSERT INTO customers VALUES (3, 'cy'); COMMIT",
        )
        mats, checks = run(defs, name, instance, until_caught_up=True)
        assert {k: mats[orders][k] for k in ("inserts", "updates", "deletes", "changes_applied")} == {
            "inserts": 2,
            "updates": 1,
            "deletes": 1,
            "changes_applied": 4,
        }
        assert {k: mats[customers][k] for k in ("inserts", "updates", "deletes", "snapshot_rows")} == {
            "inserts": 1,
            "updates": 1,
            "deletes": 0,
            "snapshot_rows": 0,
        }
        assert mats[orders]["lsn_before"] == first and parse_lsn(mats[orders]["lsn_after"]) > parse_lsn(first)
        assert mats[orders]["stopped_by"] == "caught_up"
        assert pg_rows(dst, "SELECT id, amount FROM mirror.orders ORDER BY id") == [
            (1, 11),
            (3, 30),
            (4, 40),
            (5, 50),
        ]
        assert pg_rows(dst, "SELECT id, name FROM mirror.clients ORDER BY id") == [
            (1, "ann"),
            (2, "bea"),
            (3, "cy"),
        ]

        # WAL the pipeline has not read yet (another table's) puts the slot over the threshold.
        pg_exec(src, "INSERT INTO noise (pad) SELECT repeat('x', 200) FROM generate_series(1, 20000)")
        spec = PipelineSpec.model_validate(cdc_doc(name, lag_threshold_bytes=1 << 20))
        check_only = Definitions(
            assets=[openfuse_cdc_assets(spec)],
            asset_checks=[build_cdc_slot_check(spec)],
            jobs=[define_asset_job("slot_check", selection=AssetSelection.all_asset_checks())],
            resources=openfuse_resources(spec),
        )
        result = check_only.resolve_job_def("slot_check").execute_in_process(instance=instance)
        (ev,) = [e for e in result.get_asset_check_evaluations() if e.asset_key == orders]
        assert not ev.passed and "lag" in (ev.description or "") and "retained WAL" in (ev.description or "")
        assert ev.metadata["lag_bytes"].value > ev.metadata["lag_threshold_bytes"].value == 1 << 20

        # A bounded run (no changes of ours) confirms the idle position: healthy again.
        mats, checks = run(defs, name, instance, max_seconds=1.5)
        assert mats[orders]["stopped_by"] == "max_seconds" and mats[orders]["changes_applied"] == 0
        assert checks[(orders, SLOT_HEALTH_CHECK)].passed, checks[(orders, SLOT_HEALTH_CHECK)].description


def test_the_sensor_keeps_exactly_one_run_in_flight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OF_CDC_SRC", "postgresql://postgres@127.0.0.1:1/x")
    monkeypatch.setenv("OF_CDC_DST", "postgresql://postgres@127.0.0.1:1/x")
    write(tmp_path, cdc_doc("shop"))
    sensor = build_definitions(tmp_path).resolve_sensor_def("shop_cdc")
    with DagsterInstance.ephemeral() as instance:
        first = sensor(build_sensor_context(instance=instance))
        assert isinstance(first, RunRequest) and first.tags["openfuse/lock"] == "shop"
        instance.add_run(
            DagsterRun(job_name="shop", run_id=uuid.uuid4().hex, status=DagsterRunStatus.STARTED)
        )
        busy = sensor(build_sensor_context(instance=instance))
        assert isinstance(busy, SkipReason) and "STARTED" in (busy.skip_message or "")


def test_an_interrupted_step_stops_the_runner_gracefully_and_commits(shop: tuple[str, str]) -> None:
    src, dst = shop
    spec = PipelineSpec.model_validate(cdc_doc(f"stop_{uuid.uuid4().hex[:6]}"))
    spec = spec.model_copy(
        update={
            "source": spec.source.model_copy(update={"config": {"dsn": src}}),
            "destination": spec.destination.model_copy(update={"config": {"dsn": dst, "schema": "mirror"}}),
        }
    )
    settings, sinks = build(spec)
    assert CdcRunner(settings, sinks).run(until_caught_up=True).stopped_by == "caught_up"
    pg_exec(src, "INSERT INTO orders VALUES (7, 70)", "INSERT INTO orders VALUES (8, 80)")
    settings, sinks = build(spec)
    runner = CdcRunner(settings, sinks)
    seen = threading.Event()
    runner.hook = lambda point: seen.set() if point == "committed" else None
    # The main thread is what Dagster interrupts when a run is terminated.
    threading.Thread(target=lambda: (seen.wait(30), _thread.interrupt_main()), daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        _run_in_thread(runner, until_caught_up=False, max_seconds=None)
    assert runner.summary.stopped_by == "stop"
    assert pg_rows(dst, "SELECT id FROM mirror.orders WHERE id > 6 ORDER BY id") == [(7,), (8,)]
    (active,) = pg_rows(src, f"SELECT active FROM pg_replication_slots WHERE slot_name = '{settings.slot}'")[
        0
    ]
    assert active is False


CHILD = """
import sys
from dagster import DagsterInstance
from openfuse_dagster import build_definitions

folder, job = sys.argv[1], sys.argv[2]
with DagsterInstance.ephemeral() as instance:
    result = build_definitions(folder).resolve_job_def(job).execute_in_process(
        run_config={"ops": {f"openfuse_{job}_cdc": {"config": {"endless": True}}}},
        instance=instance,
        raise_on_error=False,
    )
    print("RUN SUCCESS" if result.success else "RUN FAILED", flush=True)
"""


def test_terminating_a_dagster_run_commits_the_changes_already_received(
    shop: tuple[str, str], tmp_path: Path
) -> None:
    src, dst = shop
    name = f"term_{uuid.uuid4().hex[:6]}"
    # A long batch delay: the change below is received but not yet committed when the run stops.
    write(tmp_path, cdc_doc(name, max_run_seconds=None, max_batch_delay_ms=60_000))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), name],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: _count(dst, "mirror.orders") == 3, "the initial snapshot")
        pg_exec(src, "INSERT INTO orders VALUES (9, 90)")
        slot = f"openfuse_{name}"
        wait_for(
            lambda: (
                pg_rows(
                    src,
                    f"SELECT pg_current_wal_lsn() <= sent_lsn FROM pg_stat_replication "
                    f"WHERE application_name IS NOT NULL AND pid = (SELECT active_pid FROM "
                    f"pg_replication_slots WHERE slot_name = '{slot}')",
                )
                == [(True,)]
            ),
            "the change to reach the runner",
        )
        time.sleep(0.5)
        assert _count(dst, "mirror.orders") == 3  # received, not committed yet
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert "RUN FAILED" in out, out  # a terminated run is not a success...
    assert pg_rows(dst, "SELECT id FROM mirror.orders ORDER BY id") == [(1,), (2,), (3,), (9,)], out
    # ...but what it had received is committed, and confirmed to the slot.
    state = pg_rows(
        dst, f"SELECT state FROM mirror._openfuse_state WHERE pipeline = '{name}' AND stream = '@cdc'"
    )
    committed = parse_lsn(state[0][0]["extra"]["cdc"]["lsn"])
    ((active, confirmed),) = pg_rows(
        src, f"SELECT active, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{slot}'"
    )
    assert active is False and parse_lsn(confirmed) == committed


def _count(url: str, table: str) -> int | None:
    try:
        return int(pg_rows(url, f"SELECT count(*) FROM {table}")[0][0])
    except Exception:  # the table does not exist yet
        return None


def wait_for(cond: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
