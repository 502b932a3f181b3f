"""A PostgreSQL -> PostgreSQL pipeline as Dagster assets, materialized in process on a real server."""

from __future__ import annotations

from typing import Any

import pytest
from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    EnvVar,
    materialize,
)
from dagster._serdes import serialize_value
from support import pg_exec, pg_rows

from openfuse_connectors import ConfigError, ConnectorRef, PipelineSpec
from openfuse_dagster import (
    QUARANTINE_CHECK,
    ROW_COUNT_CHECK,
    OpenFuseConnectionResource,
    openfuse_assets,
    openfuse_resources,
)

pytestmark = pytest.mark.postgres

CUSTOMERS = AssetKey(["postgres", "analytics", "customers"])
ORDERS = AssetKey(["postgres", "analytics", "orders"])


@pytest.fixture
def shop(pg_pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    src, dst = pg_pair
    pg_exec(
        src,
        "CREATE TABLE customers (id int PRIMARY KEY, name text)",
        "INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 3) g",
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(10,2), updated_at timestamptz NOT NULL)",
        "INSERT INTO orders SELECT g, g * 1.5, '2024-01-01'::timestamptz + g * interval '1 hour' "
        "FROM generate_series(1, 4) g",
    )
    # Secrets stay ${VAR} references in the spec; the resources resolve them in the step.
    monkeypatch.setenv("OF_TEST_SRC_DSN", src)
    monkeypatch.setenv("OF_TEST_DST_DSN", dst)
    return src, dst


def shop_pipeline(*streams: dict[str, Any], **extra: Any) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "name": "shop",
            "source": {"connector": "postgres", "config": {"dsn": "${OF_TEST_SRC_DSN}"}},
            "destination": {
                "connector": "postgres",
                "config": {"dsn": "${OF_TEST_DST_DSN}", "schema": "analytics"},
            },
            "streams": list(streams),
            **extra,
        }
    )


CUSTOMERS_STREAM = {"name": "public.customers", "primary_key": ["id"]}
ORDERS_STREAM = {
    "name": "public.orders",
    "mode": "incremental_dedupe",
    "cursor_field": "updated_at",
    "primary_key": ["id"],
}


def metadata_of(result: Any) -> dict[AssetKey, dict[str, Any]]:
    return {
        e.asset_key: {k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }


def checks_of(result: Any) -> dict[tuple[AssetKey, str], Any]:
    return {(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()}


def test_assets_report_engine_numbers_schema_cursor_and_checks(shop: tuple[str, str]) -> None:
    src, dst = shop
    spec = shop_pipeline(CUSTOMERS_STREAM, ORDERS_STREAM)
    assets = openfuse_assets(spec)
    assert set(assets.keys) == {CUSTOMERS, ORDERS}
    assert set(assets.check_keys) == {
        AssetCheckKey(CUSTOMERS, ROW_COUNT_CHECK),  # full refresh: parity checked
        AssetCheckKey(CUSTOMERS, QUARANTINE_CHECK),
        AssetCheckKey(ORDERS, QUARANTINE_CHECK),
    }
    resources = openfuse_resources(spec)

    with DagsterInstance.ephemeral() as instance:
        first = materialize([assets], resources=resources, instance=instance)
        assert first.success
        meta = metadata_of(first)
        c, o = meta[CUSTOMERS], meta[ORDERS]
        assert (c["rows_read"], c["rows_written"], c["rows_quarantined"], c["dagster/row_count"]) == (
            3,
            3,
            0,
            3,
        )
        assert c["passthrough"] is True and c["disposition"] == "overwrite"
        assert c["bytes_written"] > 0 and c["duration_seconds"] > 0
        assert [(col.name, col.type) for col in c["dagster/column_schema"].columns] == [
            ("id", "int32"),
            ("name", "string"),
        ]
        assert (o["rows_read"], o["rows_written"], o["mode"]) == (4, 4, "incremental_dedupe")
        assert [(col.name, col.type) for col in o["dagster/column_schema"].columns] == [
            ("id", "int64"),
            ("amount", "decimal128(10, 2)"),
            ("updated_at", "timestamp[us, tz=UTC]"),
        ]
        assert o["cursor_before"] is None
        assert o["cursor_after"].startswith("2024-01-01 04:00:00")
        assert o["openfuse_run_id"] == first.run_id
        checks = checks_of(first)
        assert len(checks) == 3 and all(e.passed for e in checks.values())
        assert checks[(CUSTOMERS, ROW_COUNT_CHECK)].metadata["destination_rows"].value == 3

        # Dagster stores the resources' config in the run's job snapshot: only the references.
        run = instance.get_run_by_id(first.run_id)
        assert run is not None and run.job_snapshot_id is not None
        stored = serialize_value(instance.get_job_snapshot(run.job_snapshot_id))
        stored += "".join(str(r.event_log_entry) for r in instance.get_records_for_run(first.run_id).records)
        assert "OF_TEST_DST_DSN" in stored
        assert dst not in stored and src not in stored

        # Only the selected stream syncs; the cursor moves on from the stored one.
        pg_exec(
            src,
            "ALTER TABLE orders ADD COLUMN note text",
            "INSERT INTO orders VALUES (5, 7.5, '2024-01-02', 'new')",
            "UPDATE orders SET amount = 99, updated_at = '2024-01-03' WHERE id = 2",
        )
        second = materialize([assets], selection=[ORDERS], resources=resources, instance=instance)
        assert second.success
        meta2 = metadata_of(second)
        assert set(meta2) == {ORDERS}
        # New and updated rows (plus, as the schema changed, the row at the cursor boundary).
        assert meta2[ORDERS]["rows_written"] in (2, 3)
        assert meta2[ORDERS]["cursor_before"] == o["cursor_after"]
        assert meta2[ORDERS]["cursor_after"].startswith("2024-01-03")
        assert meta2[ORDERS]["schema_changes"] == ["+ note: string (new column in source)"]
        assert meta2[ORDERS]["dagster/column_schema"].columns[-1].name == "note"
        assert pg_rows(dst, "SELECT id, amount, note FROM analytics.orders ORDER BY id") == pg_rows(
            src, "SELECT id, amount, note FROM orders ORDER BY id"
        )

        # A row deleted behind OpenFuse's back: the parity check, run on its own, fails.
        pg_exec(dst, "DELETE FROM analytics.customers WHERE id = 1")
        checked = materialize(
            [assets],
            selection=AssetSelection.checks(AssetCheckKey(CUSTOMERS, ROW_COUNT_CHECK)),
            resources=resources,
            instance=instance,
        )
        assert not metadata_of(checked)  # nothing re-synced
        [parity] = checks_of(checked).values()
        assert not parity.passed and parity.severity is AssetCheckSeverity.ERROR
        assert parity.metadata["destination_rows"].value == 2
        assert parity.metadata["source_rows"].value == 3
        assert "difference -1" in (parity.description or "")


def test_a_failing_stream_fails_the_step_by_name_after_the_others_land(shop: tuple[str, str]) -> None:
    _, dst = shop
    spec = shop_pipeline(
        {"name": "public.missing"}, CUSTOMERS_STREAM, tags={"retries": "2", "retry_delay_seconds": "0"}
    )
    result = materialize([openfuse_assets(spec)], resources=openfuse_resources(spec), raise_on_error=False)
    assert not result.success
    # The stream after the failing one still ran, committed and reported.
    assert set(metadata_of(result)) == {CUSTOMERS}
    assert pg_rows(dst, "SELECT count(*) FROM analytics.customers") == [(3,)]
    [failure] = [e for e in result.all_events if e.event_type is DagsterEventType.STEP_FAILURE]
    assert failure.step_failure_data is not None and failure.step_failure_data.user_failure_data
    text = failure.step_failure_data.user_failure_data.description or ""
    assert "1 of 2 stream(s) of pipeline 'shop' failed: 'public.missing'" in text
    assert "not found" in text
    meta = failure.step_failure_data.user_failure_data.metadata
    assert meta["failed_streams"].value == ["public.missing"]
    # A missing table is a fatal error: retrying cannot help, so the step was not retried.
    assert not [e for e in result.all_events if e.event_type is DagsterEventType.STEP_UP_FOR_RETRY]


def test_quarantined_rows_warn_without_failing_the_run(shop: tuple[str, str]) -> None:
    src, dst = shop
    pg_exec(
        src,
        "CREATE TABLE events (id bigint, kind text, extra text)",
        "INSERT INTO events VALUES (1, 'a', NULL), (2, 'b', 'x'), (3, 'c', NULL), (4, 'd', 'y')",
    )
    pg_exec(dst, "CREATE SCHEMA analytics", "CREATE TABLE analytics.events (id bigint, kind text)")
    spec = shop_pipeline({"name": "public.events", "mode": "full_refresh_append"}, schema_drift="quarantine")
    result = materialize([openfuse_assets(spec)], resources=openfuse_resources(spec))
    assert result.success
    key = AssetKey(["postgres", "analytics", "events"])
    meta = metadata_of(result)[key]
    assert (meta["rows_read"], meta["rows_written"], meta["rows_quarantined"]) == (4, 2, 2)
    [check] = checks_of(result).values()  # append mode: no parity check, only the quarantine one
    assert check.check_name == QUARANTINE_CHECK
    assert not check.passed and check.severity is AssetCheckSeverity.WARN
    assert check.metadata["rows_quarantined"].value == 2
    assert pg_rows(dst, "SELECT count(*) FROM analytics._openfuse_quarantine") == [(2,)]


def test_secret_settings_become_references_and_literals_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OF_TEST_DB", "shop")
    ref = ConnectorRef(connector="postgres", config={"dsn": "${OF_TEST_DST}", "schema": "analytics"})
    monkeypatch.setenv("OF_TEST_DST", "postgresql://u:hunter2@db/shop")
    res = OpenFuseConnectionResource.from_connector_ref(ref, role="destination")
    assert res.config == {"schema": "analytics"}
    assert res.secrets == {"dsn": EnvVar("OF_TEST_DST")}
    assert isinstance(res.secrets["dsn"], EnvVar)

    templ = ConnectorRef(
        connector="postgres", config={"dsn": "postgresql://u:${OF_TEST_PW:-x}@db/${OF_TEST_DB}"}
    )
    res = OpenFuseConnectionResource.from_connector_ref(templ, role="source")
    assert res.config == {"dsn": "postgresql://u:${OF_TEST_PW:-x}@db/${OF_TEST_DB}"} and not res.secrets
    assert res.connector_config() == {"dsn": "postgresql://u:x@db/shop"}

    literal = ConnectorRef(connector="postgres", config={"dsn": "postgresql://u:hunter2@db/shop"})
    with pytest.raises(ConfigError) as ei:
        OpenFuseConnectionResource.from_connector_ref(literal, role="source")
    assert ei.value.field == "source.config.dsn"
    assert "hunter2" not in str(ei.value)
    allowed = OpenFuseConnectionResource.from_connector_ref(
        literal, role="source", allow_literal_secrets=True
    )
    assert allowed.secrets == {"dsn": "postgresql://u:hunter2@db/shop"}

    with pytest.raises(ConfigError) as ei:
        OpenFuseConnectionResource.from_connector_ref(
            ConnectorRef(connector="postgres", config={"dsn": "${OF_TEST_DST}", "shema": "x"}), role="source"
        )
    assert ei.value.field == "source.config.shema"


def test_a_secret_inside_a_setting_must_be_a_reference_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """A REST source's ``auth.token``: a literal is refused naming the nested field (Dagster would
    store it); a ``${VAR}`` reference is kept as the reference and resolved only in the run."""
    base = {
        "base_url": "https://api.example.com",
        "resources": [{"name": "items", "path": "/items", "record_selector": "$.data[*]"}],
    }
    literal = ConnectorRef(
        connector="rest", config={**base, "auth": {"type": "bearer", "token": "s3cr3t-literal"}}
    )
    with pytest.raises(ConfigError) as ei:
        OpenFuseConnectionResource.from_connector_ref(literal, role="source")
    assert ei.value.field == "source.config.auth.token" and "s3cr3t-literal" not in str(ei.value)

    monkeypatch.setenv("OF_TEST_TOKEN", "s3cr3t-from-env")
    ref = ConnectorRef(
        connector="rest", config={**base, "auth": {"type": "bearer", "token": "${OF_TEST_TOKEN}"}}
    )
    res = OpenFuseConnectionResource.from_connector_ref(ref, role="source")
    assert "s3cr3t-from-env" not in serialize_value(res.config)  # what Dagster would store
    assert res.connector_config()["auth"]["token"] == "s3cr3t-from-env"
