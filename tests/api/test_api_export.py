"""Pipelines handed to Dagster as files: names, secret references, renames and deletes, which
pipeline a Dagster run belongs to, and the operator commands (``openfuse admin secrets-env``,
``openfuse admin export-pipelines``). SQLite metadata DB, no Dagster (runs are in
test_api_dagster_e2e.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from api_support import SECRET_KEY, Api, TestClient, bearer, cli_key, make_settings
from sqlmodel import Session, select
from typer.testing import CliRunner

from api.app import create_app
from api.cli import register
from api.migrate import upgrade
from api.models.pipeline import Pipeline
from api.models.run import RunCreate
from api.pipeline_export import (
    job_name,
    owning_pipeline,
    parse_job_name,
    secret_env_name,
    secret_environment,
    step_key,
)
from api.services.runs import _request_hash
from openfuse_connectors.spec import PipelineSpec, StreamSpec

SECRET = f"tok-{uuid.uuid4().hex}"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = make_settings(f"sqlite:///{tmp_path}/meta.db", tmp_path / "home")
    upgrade(settings.db_url)
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)


def _conn(api: Api, h: dict[str, str], name: str, connector: str, config: dict[str, Any]) -> str:
    r = api.client.post(
        "/api/v1/connections", headers=h, json={"name": name, "connector": connector, "config": config}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _pipeline(api: Api, h: dict[str, str], name: str, src: str, dst: str, **extra: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "source": {"connection": src},
        "destination": {"connection": dst},
        "streams": [{"name": "public.orders"}],
    }
    r = api.client.post("/api/v1/pipelines", headers=h, json={**body, **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_names_of_jobs_steps_and_secret_variables() -> None:
    ws = uuid.UUID("1a2b3c4d-0000-0000-0000-000000000000")
    p = Pipeline(name="orders_sync", workspace_id=ws, source_connection_id=ws, destination_connection_id=ws)
    assert job_name(p) == "orders_sync__1a2b3c4d"
    assert parse_job_name("orders_sync__1a2b3c4d") == ("orders_sync", "1a2b3c4d")
    assert parse_job_name("a__b__1a2b3c4d") == ("a__b", "1a2b3c4d")
    for foreign in ("orders", "orders__", "orders__XYZ", "x__1a2b3c4"):
        assert parse_job_name(foreign) is None
    assert step_key("j__1a2b3c4d", StreamSpec(name="public.Orders-2024")) == "j__1a2b3c4d__orders_2024"
    assert secret_env_name(ws, "dsn") == "OPENFUSE_SECRET_1A2B3C4D000000000000000000000000_DSN"


def test_exported_files_carry_references_not_secrets_and_follow_renames_and_deletes(api: Api) -> None:
    h = bearer(cli_key(api.settings, "acme", "ann"))
    src = _conn(api, h, "src", "postgres", {"dsn": f"postgresql://u:{SECRET}@db/src"})
    dst = _conn(api, h, "dst", "postgres", {"dsn": f"postgresql://u:{SECRET}@db/dst", "schema": "wh"})
    p = _pipeline(api, h, "orders", "src", "dst", tags={"team": "data"}, schedule="0 * * * *")
    folder = api.settings.pipelines_dir
    (path,) = folder.glob("api_orders__*.yaml")
    text = path.read_text()
    assert SECRET not in text and "$encrypted" not in text
    doc = yaml.safe_load(text)
    assert doc["source"] == {
        "connector": "postgres",
        "config": {"dsn": f"${{{secret_env_name(uuid.UUID(src), 'dsn')}}}"},
    }
    assert doc["destination"]["config"]["schema"] == "wh"
    assert doc["tags"]["openfuse/pipeline_id"] == p["id"] and doc["tags"]["team"] == "data"
    assert doc["schedule"] == "0 * * * *" and doc["name"] == path.stem.removeprefix("api_")
    PipelineSpec.model_validate(doc)  # what the code location does, before expanding ${VAR}
    assert uuid.UUID(dst)

    # A rename moves the file; a change rewrites it; a delete removes it.
    c = api.client
    assert c.patch(f"/api/v1/pipelines/{p['id']}", headers=h, json={"name": "orders_v2"}).status_code == 200
    assert [f.name for f in folder.glob("api_*.yaml")] == [
        path.name.replace("api_orders__", "api_orders_v2__")
    ]
    before = next(folder.glob("api_*.yaml")).read_text()
    assert c.patch(f"/api/v1/pipelines/{p['id']}", headers=h, json={"batch_size": 10}).status_code == 200
    after = next(folder.glob("api_*.yaml")).read_text()
    assert "batch_size: 10" in after and after != before
    # Changing a connection rewrites the pipelines that use it.
    assert (
        c.patch(f"/api/v1/connections/{dst}", headers=h, json={"config": {"schema": "wh2"}}).status_code
        == 200
    )
    assert "schema: wh2" in next(folder.glob("api_*.yaml")).read_text()
    (folder / "hand_written.yaml").write_text("name: mine\n")
    assert c.delete(f"/api/v1/pipelines/{p['id']}", headers=h).status_code == 204
    # The workspace's governance bundle (principals' attributes, custom policies) stays for the
    # sync steps; it never holds a secret.
    assert sorted(f.name for f in folder.iterdir()) == ["_governance", "hand_written.yaml"]
    (bundle,) = (folder / "_governance").iterdir()
    assert [f.name for f in bundle.iterdir()] == ["principals.yaml"]
    assert "roles" in (bundle / "principals.yaml").read_text()
    assert SECRET not in (bundle / "principals.yaml").read_text()


def test_a_nested_secret_is_exported_as_a_reference_and_resolves(api: Api) -> None:
    """A REST source's ``auth.token`` (a secret inside a setting) becomes ``${..._AUTH_TOKEN}`` in
    the file, the secret environment holds its value, and the file then loads as the connector's
    config with the token in place."""
    h = bearer(cli_key(api.settings, "acme", "ann"))
    rest = {
        "base_url": "https://api.example.com",
        "auth": {"type": "bearer", "token": SECRET},
        "resources": [{"name": "items", "path": "/items", "record_selector": "$.data[*]"}],
    }
    cid = _conn(api, h, "rest", "rest", rest)
    _conn(api, h, "out", "sqlite", {"path": "/tmp/out.db"})
    _pipeline(api, h, "from_rest", "rest", "out")
    (path,) = api.settings.pipelines_dir.glob("api_from_rest__*.yaml")
    text = path.read_text()
    ref = secret_env_name(uuid.UUID(cid), "auth.token")
    assert ref.endswith("_AUTH_TOKEN") and f"${{{ref}}}" in text and SECRET not in text
    state = api.client.app.state.openfuse  # type: ignore[attr-defined]
    with Session(state.engine) as session:
        env = secret_environment(session, state.secret_box)
    assert env[ref] == SECRET
    # What the code location does with the file: expand the references, validate the config.
    import os
    from unittest import mock

    from openfuse_connectors.builtin.rest.config import RestConfig
    from openfuse_connectors.config import validate_config
    from openfuse_connectors.spec import load_pipeline

    with mock.patch.dict(os.environ, env):
        spec = load_pipeline(path)
    cfg = validate_config(RestConfig, spec.source.config, connector="rest", role="source")
    assert cfg.auth.token.get_secret_value() == SECRET  # type: ignore[union-attr]


def test_which_pipeline_a_dagster_run_belongs_to(api: Api) -> None:
    h = bearer(cli_key(api.settings, "acme", "ann"))
    hb = bearer(cli_key(api.settings, "globex", "bob"))
    _conn(api, h, "lite", "sqlite", {"path": "/tmp/a.db"})
    _conn(api, hb, "lite", "sqlite", {"path": "/tmp/b.db"})
    a = _pipeline(api, h, "same", "lite", "lite")
    b = _pipeline(api, hb, "same", "lite", "lite")  # the same name in another workspace
    with Session(api.client.app.state.openfuse.engine) as session:  # type: ignore[attr-defined]
        pa, pb = (session.get(Pipeline, uuid.UUID(x["id"])) for x in (a, b))
        assert pa is not None and pb is not None
        assert job_name(pa) != job_name(pb)
        assert owning_pipeline(session, job_name(pa), {}) == pa  # started in the Dagster UI: no tags
        assert owning_pipeline(session, job_name(pb), {}) == pb
        # A renamed pipeline's old runs: by their tag.
        assert (
            owning_pipeline(
                session, "old_name__" + pa.workspace_id.hex[:8], {"openfuse/pipeline_id": str(pa.id)}
            )
            == pa
        )
        # A tag naming a pipeline of another workspace than the job's is not believed.
        assert owning_pipeline(session, job_name(pa), {"openfuse/pipeline_id": str(pb.id)}) == pa
        assert owning_pipeline(session, "yaml_pipeline", {}) is None
        assert (
            owning_pipeline(session, "nope__" + pa.workspace_id.hex[:8], {"openfuse/pipeline_id": "x"})
            is None
        )
        assert session.exec(select(Pipeline)).all()


def test_idempotency_hashes_tell_requests_apart() -> None:
    ws = uuid.uuid4()
    p = Pipeline(
        id=uuid.uuid4(), name="p", workspace_id=ws, source_connection_id=ws, destination_connection_id=ws
    )
    q = Pipeline(
        id=uuid.uuid4(), name="p", workspace_id=ws, source_connection_id=ws, destination_connection_id=ws
    )
    base = _request_hash(p, RunCreate())
    assert base == _request_hash(p, RunCreate.model_validate({}))  # no body = the empty body
    assert base != _request_hash(p, RunCreate(full_refresh=True))
    assert base != _request_hash(p, RunCreate(streams=["a"]))
    assert base != _request_hash(q, RunCreate())


def test_operator_commands_write_the_secret_env_file_and_reconcile_the_folder(
    api: Api, tmp_path: Path
) -> None:
    h = bearer(cli_key(api.settings, "acme", "ann"))
    src = _conn(api, h, "src", "postgres", {"dsn": f"postgresql://u:{SECRET}@db/src"})
    _conn(api, h, "out", "sqlite", {"path": "/tmp/out.db"})
    _pipeline(api, h, "kept", "src", "out")
    folder = api.settings.pipelines_dir
    (folder / "api_gone__00000000.yaml").write_text("name: gone__00000000\n")  # a pipeline deleted meanwhile
    (folder / "mine.yaml").write_text("name: mine\n")
    next(folder.glob("api_kept__*.yaml")).unlink()  # lost

    cli = typer.Typer()
    register(cli)
    env = {
        "OPENFUSE_DATABASE_URL": api.settings.database_url,
        "OPENFUSE_SECRET_KEY": SECRET_KEY,
        "OPENFUSE_HOME": str(api.settings.home),
        "OPENFUSE_PIPELINES_DIR": str(folder),
    }
    out = tmp_path / "dagster.env"
    result = CliRunner().invoke(cli, ["admin", "secrets-env", "--output", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o600
    assert out.read_text() == f"{secret_env_name(uuid.UUID(src), 'dsn')}=postgresql://u:{SECRET}@db/src\n"
    assert SECRET not in result.output

    result = CliRunner().invoke(cli, ["admin", "export-pipelines"], env=env)
    assert result.exit_code == 0, result.output
    assert "1 written, 1 removed, 0 failed" in result.output
    assert "Dagster was not reloaded" in result.output  # no webserver in this test
    assert sorted(f.name for f in folder.iterdir() if not f.name.startswith("api_kept__")) == [
        "_governance",
        "mine.yaml",
    ]
    assert len(list(folder.glob("api_kept__*.yaml"))) == 1


def test_lists_show_every_change_at_once(api: Api) -> None:
    """The list answers from validated views cached by pipeline version: a change of the pipeline
    or of a connection's name is a new version, never a stale answer."""
    h = bearer(cli_key(api.settings, "acme", "ann"))
    c = api.client
    _conn(api, h, "lite", "sqlite", {"path": "/tmp/a.db"})
    p = _pipeline(api, h, "cached", "lite", "lite", tags={"v": "1"})

    def listed() -> dict[str, Any]:
        (item,) = c.get("/api/v1/pipelines", headers=h).json()["items"]
        return dict(item)

    assert listed() == c.get(f"/api/v1/pipelines/{p['id']}", headers=h).json()
    assert c.patch(f"/api/v1/pipelines/{p['id']}", headers=h, json={"tags": {"v": "2"}}).status_code == 200
    assert listed()["tags"] == {"v": "2"}
    conn_id = listed()["source"]["connection_id"]
    assert c.patch(f"/api/v1/connections/{conn_id}", headers=h, json={"name": "renamed"}).status_code == 200
    assert listed()["source"]["connection_name"] == "renamed" == listed()["destination"]["connection_name"]
    assert c.get("/api/v1/pipelines", headers=h, params={"tag": "v=2"}).json()["items"][0]["id"] == p["id"]
    assert c.get("/api/v1/pipelines", headers=h, params={"tag": "v=1"}).json()["items"] == []
