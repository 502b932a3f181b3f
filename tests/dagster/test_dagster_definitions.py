"""Definitions from a folder of pipeline files: good ones load, broken ones are reported."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dagster import AssetKey, Definitions, EnvVar, SkipReason, build_sensor_context

from openfuse_dagster import BROKEN_PIPELINES_SENSOR, build_definitions
from openfuse_dagster.definitions import defs
from openfuse_dagster.freshness import FRESHNESS_SENSOR

REPO = Path(__file__).resolve().parents[2]
DSN_ENV = {"OF_TEST_DSN": "postgresql://postgres@127.0.0.1:5432/not_connected_at_load"}

GOOD_ORDERS = """
name: orders_sync
source: {connector: postgres, config: {dsn: "${OF_TEST_DSN}"}}
destination: {connector: postgres, config: {dsn: "${OF_TEST_DSN}", schema: "${OF_TEST_SCHEMA:-analytics}"}}
schedule: "0 * * * *"
owner: team:data
streams:
  - {name: public.orders, mode: incremental_append, cursor_field: updated_at}
  - {name: public.customers}
"""
GOOD_EVENTS = """
name: events_sync
source: {connector: postgres, config: {dsn: "postgresql://postgres:${OF_TEST_PW:-}@127.0.0.1/app"}}
destination: {connector: postgres, config: {dsn: "${OF_TEST_DSN}", schema: raw}}
streams:
  - {name: public.events}
"""
BROKEN_FIELD = """
name: broken_mode
source: {connector: postgres, config: {dsn: "${OF_TEST_DSN}"}}
destination: {connector: postgres, config: {dsn: "${OF_TEST_DSN}"}}
streams:
  - {name: public.items, mode: incremental_dedupe, cursor_field: updated_at}
"""
LITERAL_SECRET = """
name: literal_secret
source: {connector: postgres, config: {dsn: "${OF_TEST_DSN}"}}
destination: {connector: postgres, config: {dsn: "postgresql://app:hunter2@db/dw"}}
streams:
  - {name: public.items}
"""
SAME_TABLE = """
name: same_table
source: {connector: postgres, config: {dsn: "${OF_TEST_DSN}"}}
destination: {connector: postgres, config: {dsn: "${OF_TEST_DSN}", schema: raw}}
streams:
  - {name: other.events}
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for k, v in DSN_ENV.items():
        monkeypatch.setenv(k, v)
    d = tmp_path / "pipelines"
    d.mkdir()
    for name, text in {
        "orders.yaml": GOOD_ORDERS,
        "events.yml": GOOD_EVENTS,
        "broken.yaml": BROKEN_FIELD,
        "literal.yaml": LITERAL_SECRET,
        "zz_same_table.yaml": SAME_TABLE,
        "not_yaml.yaml": "name: [unclosed\n",
        "README.md": "not a pipeline",
    }.items():
        (d / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return d


def test_good_pipelines_load_and_broken_ones_are_reported_by_file_and_field(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="openfuse_dagster"):
        d = build_definitions(folder)
    Definitions.validate_loadable(d)
    graph = d.resolve_asset_graph()
    assert graph.get_all_asset_keys() == {
        AssetKey(["postgres", "analytics", "orders"]),
        AssetKey(["postgres", "analytics", "customers"]),
        AssetKey(["postgres", "raw", "events"]),
    }
    assert {d.resolve_job_def("orders_sync").name, d.resolve_job_def("events_sync").name} == {
        "orders_sync",
        "events_sync",
    }
    assert d.resolve_schedule_def("orders_sync_schedule").cron_schedule == "0 * * * *"
    # Secret settings reach Dagster as references only.
    res = d.resources or {}
    assert res["openfuse_orders_sync_source"].secrets == {"dsn": EnvVar("OF_TEST_DSN")}
    assert res["openfuse_events_sync_source"].config == {
        "dsn": "postgresql://postgres:${OF_TEST_PW:-}@127.0.0.1/app"
    }
    assert res["openfuse_orders_sync_destination"].config == {"schema": "analytics"}

    expected = {
        "broken.yaml": ("streams[0:public.items]", "incremental_dedupe needs primary_key"),
        "literal.yaml": ("destination.config.dsn", "secret written as a literal"),
        "not_yaml.yaml": (None, "invalid YAML at line 2"),
        "zz_same_table.yaml": ("streams[0:other.events]", "already loaded by pipeline 'events_sync'"),
    }
    sensor = d.resolve_sensor_def(BROKEN_PIPELINES_SENSOR)
    skip = sensor(build_sensor_context())
    assert isinstance(skip, SkipReason)
    reported = (sensor.description or "", skip.skip_message or "", caplog.text)
    for file, (field, words) in expected.items():
        for text in reported:
            line = next(ln for ln in text.splitlines() if str(folder / file) in ln)
            assert words in line, (file, line)
            if field:
                assert f"(field {field})" in line, (file, line)
    for text in reported:
        assert "hunter2" not in text
    assert sum("OpenFuse pipeline not loaded" in r.getMessage() for r in caplog.records) == 4
    meta = (d.metadata or {})["openfuse/broken_pipelines"].value
    assert {Path(b["origin"]).name for b in meta} == set(expected)


def test_no_sensor_when_nothing_is_broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OF_TEST_DSN", DSN_ENV["OF_TEST_DSN"])
    (tmp_path / "orders.yaml").write_text(textwrap.dedent(GOOD_ORDERS), encoding="utf-8")
    d = build_definitions(tmp_path)
    # Only the freshness checks' sensor (the pipeline is scheduled); no broken-pipelines sensor.
    assert [s.name for s in d.sensors or []] == [FRESHNESS_SENSOR]
    assert d.resolve_job_def("orders_sync").name == "orders_sync"


def test_module_defs_are_lazy_and_read_the_folder_from_the_environment(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENFUSE_PIPELINES_DIR", str(folder))
    d = defs()
    assert d.resolve_job_def("events_sync").name == "events_sync"

    # The same module through Dagster's own loader, as `dagster dev -m` / `dagster api grpc -m` do.
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(DSN_ENV, OPENFUSE_PIPELINES_DIR=str(folder))
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "definitions",
            "validate",
            "-m",
            "openfuse_dagster.definitions",
        ],
        cwd=folder.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "Validation successful for code location openfuse_dagster.definitions" in text
    assert "OpenFuse pipeline not loaded" in text
