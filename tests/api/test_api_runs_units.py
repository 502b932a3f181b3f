"""Launching runs without a Dagster webserver: validation, idempotency keys (in use, freed after a
failed launch, taken over when stale, forgotten when expired), and Dagster being down (503).
The launches that reach Dagster are in test_api_dagster_e2e.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from api_support import Api, TestClient, bearer, cli_key, decided, make_settings
from sqlmodel import Session, select

from api.app import create_app
from api.migrate import upgrade
from api.models.base import utcnow
from api.models.idempotency import KEY_TTL, IdempotencyKey
from api.models.pipeline import Pipeline
from api.models.principal import Principal
from api.models.run import RunCreate
from api.services.runs import _request_hash


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = make_settings(f"sqlite:///{tmp_path}/meta.db", tmp_path / "home")
    upgrade(settings.db_url)
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)


@pytest.fixture
def pipeline(api: Api) -> tuple[str, dict[str, str]]:
    h = bearer(cli_key(api.settings, "acme", "ann"))
    c = api.client
    r = c.post(
        "/api/v1/connections",
        headers=h,
        json={"name": "lite", "connector": "sqlite", "config": {"path": "/tmp/x.db"}},
    )
    assert r.status_code == 201, r.text
    body = {
        "name": "p",
        "source": {"connection": "lite"},
        "destination": {"connection": "lite"},
        "streams": [{"name": "t"}],
    }
    r = c.post("/api/v1/pipelines", headers=h, json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"]), h


def _launch(api: Api, pid: str, h: dict[str, str], key: str | None = None, body: Any = None) -> Any:
    headers = {**h, **({"Idempotency-Key": key} if key is not None else {})}
    return api.client.post(f"/api/v1/pipelines/{pid}/runs", headers=headers, json=body)


def _keys(api: Api) -> list[IdempotencyKey]:
    with Session(api.client.app.state.openfuse.engine) as s:  # type: ignore[attr-defined]
        return list(s.exec(select(IdempotencyKey)).all())


def test_bad_launch_requests_name_the_field(api: Api, pipeline: tuple[str, dict[str, str]]) -> None:
    pid, h = pipeline
    r = _launch(api, pid, h, body={"streams": ["t", "nope"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "streams[1]"
    r = _launch(api, pid, h, body={"streams": []})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "streams"
    r = _launch(api, pid, h, key="has space")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "Idempotency-Key"
    r = _launch(api, pid, h, body={"full_refresh": True, "surprise": 1})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "surprise"
    other = bearer(cli_key(api.settings, "globex", "bob"))
    assert _launch(api, pid, other).status_code == 404
    assert _launch(api, str(uuid.uuid4()), h).status_code == 404


def test_dagster_down_is_503_and_frees_the_idempotency_key(
    api: Api, pipeline: tuple[str, dict[str, str]]
) -> None:
    pid, h = pipeline
    for _ in range(2):  # the same key again: launched again (not "in use"), since nothing was
        r = _launch(api, pid, h, key="k1")
        assert r.status_code == 503 and r.json()["type"].endswith("/dagster-unavailable"), r.text
        assert "127.0.0.1:9" in r.json()["detail"]
    assert _keys(api) == []
    audit = api.client.get("/api/v1/audit", headers=h, params={"action": "pipeline:run"}).json()["items"]
    assert [(e["outcome"], decided(e["detail"])) for e in audit] == [
        ("failure", {"status": 503, "type": "dagster-unavailable"})
    ] * 2
    # The runs routes say so too; readiness names Dagster.
    assert api.client.get("/api/v1/runs", headers=h).status_code == 503
    assert api.client.get("/readyz").json()["checks"]["dagster"] == "unreachable"


def test_a_key_in_use_is_409_a_stale_one_is_taken_over_an_expired_one_forgotten(
    api: Api, pipeline: tuple[str, dict[str, str]]
) -> None:
    pid, h = pipeline
    engine = api.client.app.state.openfuse.engine  # type: ignore[attr-defined]
    with Session(engine) as s:
        ann = s.exec(select(Principal).where(Principal.name == "ann")).one().id
        s.add(IdempotencyKey(principal_id=ann, key="busy", request_hash="x" * 64, pipeline_id=uuid.UUID(pid)))
        s.commit()
    r = _launch(api, pid, h, key="busy")  # another body's key: reused
    assert r.status_code == 409 and r.json()["type"].endswith("/idempotency-key-reused")
    with Session(engine) as s:
        row = s.exec(select(IdempotencyKey).where(IdempotencyKey.key == "busy")).one()
        p = s.get(Pipeline, uuid.UUID(pid))
        assert p is not None
        row.request_hash = _request_hash(p, RunCreate())
        s.add(row)
        s.commit()
    r = _launch(api, pid, h, key="busy")  # the same request, still launching elsewhere
    assert r.status_code == 409 and r.json()["type"].endswith("/idempotency-key-in-use")
    with Session(engine) as s:
        row = s.exec(select(IdempotencyKey).where(IdempotencyKey.key == "busy")).one()
        row.created_at = utcnow() - timedelta(minutes=10)  # its request died
        s.add(row)
        s.commit()
    r = _launch(api, pid, h, key="busy")  # taken over: launched (and Dagster is down here)
    assert r.status_code == 503
    with Session(engine) as s:
        s.add(
            IdempotencyKey(
                principal_id=ann,
                key="old",
                request_hash="y" * 64,
                pipeline_id=uuid.UUID(pid),
                run_id="gone",
                created_at=utcnow() - KEY_TTL - timedelta(minutes=1),
            )
        )
        s.commit()
    r = _launch(api, pid, h, key="old")  # expired: a new request, not a conflict
    assert r.status_code == 503
    assert _keys(api) == []
