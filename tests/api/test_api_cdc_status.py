"""A CDC pipeline through the API: created with `mode: cdc` and a `cdc:` block, exported for
Dagster with it, and `GET /pipelines/{id}/status` reports its replication slot's lag and retained
WAL against the thresholds, asked of a real logical-decoding PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest
import yaml
from api_support import Api, bearer, cli_key

pytestmark = pytest.mark.postgres


def test_cdc_pipeline_status_reports_the_slot(pg_api: Api, cdc_source_db: str, pg_db: str) -> None:
    c, h = pg_api.client, bearer(cli_key(pg_api.settings, "acme", "ann"))
    with psycopg.connect(cdc_source_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
    for name, dsn in (("src", cdc_source_db), ("dst", pg_db)):
        r = c.post(
            "/api/v1/connections",
            headers=h,
            json={"name": name, "connector": "postgres", "config": {"dsn": dsn}},
        )
        assert r.status_code == 201, r.text
    body = {
        "name": "orders_cdc",
        "source": {"connection": "src"},
        "destination": {"connection": "dst"},
        "streams": [{"name": "public.orders", "mode": "cdc"}],
        "cdc": {"deletes": "soft", "lag_threshold_bytes": 4096},
    }
    r = c.post("/api/v1/pipelines", headers=h, json=body)
    assert r.status_code == 201, r.text
    pipeline = r.json()
    assert pipeline["cdc"]["deletes"] == "soft" and pipeline["cdc"]["lag_threshold_bytes"] == 4096
    # The exported pipeline file carries the cdc block (the Dagster code location reads it).
    (exported,) = pg_api.settings.pipelines_dir.glob("api_*.yaml")
    assert yaml.safe_load(exported.read_text())["cdc"] == {"deletes": "soft", "lag_threshold_bytes": 4096}

    status = c.get(f"/api/v1/pipelines/{pipeline['id']}/status", headers=h).json()
    assert status["mode"] == "cdc"
    slot = status["slot"]
    assert (slot["exists"], slot["ok"]) == (False, False) and "does not exist" in slot["message"]
    assert slot["threshold_bytes"] == 4096
    assert cdc_source_db.split("@")[-1] not in str(status)  # no DSN, no host in the answer

    # A slot that falls behind: WAL written after its position counts as lag.
    with psycopg.connect(cdc_source_db, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot["slot"],))
        ok = c.get(f"/api/v1/pipelines/{pipeline['id']}/status", headers=h).json()["slot"]
        assert ok["exists"] and ok["lag_bytes"] is not None and ok["lag_bytes"] < 4096, ok
        conn.execute("INSERT INTO orders SELECT g, repeat('x', 200) FROM generate_series(1, 200) g")
        behind = c.get(f"/api/v1/pipelines/{pipeline['id']}/status", headers=h).json()["slot"]
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot["slot"],))
    assert behind["ok"] is False and behind["lag_bytes"] > 4096
    assert "above the threshold 4096" in behind["message"]

    # A batch pipeline has nothing to report on its source.
    r = c.post("/api/v1/pipelines", headers=h, json={**body, "name": "orders_batch", "cdc": None,
                                                       "streams": [{"name": "public.orders"}]})  # fmt: skip
    assert r.status_code == 201, r.text
    assert c.get(f"/api/v1/pipelines/{r.json()['id']}/status", headers=h).json() == {
        "pipeline_id": r.json()["id"], "mode": "batch", "slot": None,
    }  # fmt: skip


def test_a_cdc_block_without_cdc_streams_names_the_field(pg_api: Api, pg_db: str) -> None:
    c, h = pg_api.client, bearer(cli_key(pg_api.settings, "acme", "ann"))
    c.post(
        "/api/v1/connections",
        headers=h,
        json={"name": "pg", "connector": "postgres", "config": {"dsn": pg_db}},
    )
    r = c.post("/api/v1/pipelines", headers=h, json={
        "name": "p", "source": {"connection": "pg"}, "destination": {"connection": "pg"},
        "streams": [{"name": "public.orders"}], "cdc": {"deletes": "soft"},
    })  # fmt: skip
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["cdc"]
