"""The Dagster instance configs: the deployment's PostgreSQL one and the embedded SQLite one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dagster import DagsterRunStatus, job, op
from dagster._core.run_coordinator import QueuedRunCoordinator
from support import pg_rows

from openfuse_connectors import ConfigError
from openfuse_dagster import (
    ensure_embedded_dagster_home,
    load_instance,
    postgres_env,
    render_instance_yaml,
    write_instance_yaml,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deployments" / "dagster"


@op
def hello() -> int:
    return 1


@job
def tiny() -> None:
    hello()


@pytest.mark.postgres
def test_deployment_yaml_stores_runs_in_postgres(
    pg_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in postgres_env(pg_db).items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    with load_instance(home) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 10
        url = instance.run_storage.postgres_url  # type: ignore[attr-defined]
        assert url.startswith("postgresql+psycopg2://")
        result = tiny.execute_in_process(instance=instance)
        assert result.success
    assert pg_rows(pg_db, f"SELECT status FROM runs WHERE run_id = '{result.run_id}'") == [("SUCCESS",)]
    [(events,)] = pg_rows(pg_db, f"SELECT count(*) FROM event_logs WHERE run_id = '{result.run_id}'")
    assert events > 5

    # The template renders to the same storage, with limits from the environment.
    monkeypatch.setenv("OPENFUSE_DAGSTER_MAX_CONCURRENT_RUNS", "3")
    rendered = write_instance_yaml(DEPLOY / "dagster.yaml.template", tmp_path / "rendered")
    assert "{env: OPENFUSE_DAGSTER_PG_PASSWORD}" in rendered.read_text()
    with load_instance(rendered.parent) as instance:
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 3  # type: ignore[attr-defined]
        [run] = instance.get_runs()
        assert run.run_id == result.run_id and run.status is DagsterRunStatus.SUCCESS


def test_embedded_instance_keeps_sqlite_storage_under_openfuse_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENFUSE_HOME", str(tmp_path / "of"))
    home = ensure_embedded_dagster_home()
    assert home == tmp_path / "of" / "dagster"
    with load_instance(home) as instance:
        result = tiny.execute_in_process(instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id) is not None
    assert (home / "history" / "runs.db").exists()
    # A second call keeps a hand-edited dagster.yaml.
    (home / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    ensure_embedded_dagster_home()
    assert (home / "dagster.yaml").read_text() == "telemetry: {enabled: false}\n"


def test_template_rendering() -> None:
    assert render_instance_yaml("a: ${X:-1} b: ${Y} c: $${Z}", {"Y": "2"}) == "a: 1 b: 2 c: ${Z}"
    with pytest.raises(ConfigError) as ei:
        render_instance_yaml("a: ${MISSING_VAR}", {})
    assert ei.value.field == "MISSING_VAR"
    assert postgres_env("postgresql://u:p%40ss@h:5433/db")["OPENFUSE_DAGSTER_PG_PASSWORD"] == "p@ss"
