"""Liveness, readiness (the DB reachable and migrated, Dagster answering) and Prometheus metrics.

Readiness with a live Dagster webserver is checked in test_api_dagster_e2e.py.
"""

from __future__ import annotations

from pathlib import Path

from api_support import TestClient

from api.app import create_app
from api.migrate import upgrade
from api.settings import Settings


def test_health_readiness_and_metrics(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with TestClient(create_app(settings)) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        r = c.get("/readyz")  # not migrated yet
        assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == "https://openfuse.dev/problems/not-ready"
        assert "openfuse admin migrate" in r.json()["checks"]["database"]
        upgrade(settings.db_url)
        r = c.get("/readyz")  # migrated, but no Dagster webserver (the tests' URL has none)
        assert r.status_code == 503
        assert r.json()["checks"] == {"database": "ok", "dagster": "unreachable"}
        assert r.json()["detail"] == "dagster: unreachable"
        c.get("/api/v1/connections/8d0c8a4e-0000-0000-0000-000000000000")  # 401
        c.get("/no/such/path")
        assert c.get("/docs").status_code == 200
        r = c.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert 'openfuse_api_requests_total{method="GET",route="/readyz",status="503"} 2' in text
    # Route templates, not concrete ids; unmatched paths share one label.
    assert 'route="/api/v1/connections/{connection_id}",status="401"' in text
    assert 'route="unmatched",status="404"' in text
    assert "8d0c8a4e" not in text and "/no/such/path" not in text
    assert 'openfuse_api_request_duration_seconds_count{method="GET",route="/healthz",status="200"} 1' in text
