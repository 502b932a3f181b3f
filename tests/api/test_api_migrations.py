"""The Alembic migrations: upgrade and downgrade on PostgreSQL and SQLite, the result matching
the models exactly, and the audit log append-only at the database."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import SQLModel

import api.models  # noqa: F401 - registers the tables
from api.migrate import VERSION_TABLE, current_revision, downgrade, head_revision, upgrade
from api.settings import Settings

TABLES = {
    "workspace",
    "principal",
    "api_key",
    "connection",
    "pipeline",
    "stream_state",
    "audit_log",
    "idempotency_key",
    "policy_version",
}
INSERT_AUDIT = (
    "INSERT INTO audit_log (at, actor_name, action, resource_type, outcome, detail) "
    "VALUES (CURRENT_TIMESTAMP, 'ann', 'connection:create', 'connection', 'success', '{}')"
)


def _check_round_trip(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        upgrade(url)
        assert TABLES | {VERSION_TABLE} == set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            diff = compare_metadata(ctx, SQLModel.metadata)
        assert diff == [], f"the migrations and the models disagree: {diff}"
        upgrade(url)  # at head already: a no-op
        downgrade(url)
        engine.dispose()
        assert set(sa.inspect(engine).get_table_names()) == {VERSION_TABLE}
        with engine.connect() as conn:
            assert current_revision(conn) is None
        upgrade(url)  # and back up from nothing
        assert set(sa.inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_upgrade_and_downgrade_on_postgresql(pg_db: str) -> None:
    import psycopg

    url = Settings(database_url=pg_db).db_url
    _check_round_trip(url)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(INSERT_AUDIT)
        for sql in (
            "UPDATE audit_log SET outcome = 'failure'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(sql)
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (1,)
    downgrade(url)  # the trigger function goes with the table
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'openfuse_%'").fetchone() == (0,)


def test_upgrade_and_downgrade_on_sqlite(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)  # the embedded default: $OPENFUSE_HOME/openfuse.db
    assert settings.db_url == f"sqlite:///{tmp_path.resolve()}/openfuse.db"
    _check_round_trip(settings.db_url)
    with sqlite3.connect(tmp_path / "openfuse.db") as conn:
        conn.execute(INSERT_AUDIT)
        for sql in ("UPDATE audit_log SET outcome = 'failure'", "DELETE FROM audit_log"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_0003_keeps_what_principals_could_do(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Before 0003 every principal could do everything in its workspace; afterwards roles decide,
    so a principal without roles becomes an admin and one with roles keeps them."""
    if backend == "sqlite":
        url = Settings(home=tmp_path).db_url
    else:
        url = Settings(database_url=request.getfixturevalue("pg_db")).db_url
    upgrade(url, "0002")
    engine = sa.create_engine(url)
    try:
        ws = sa.table("workspace", sa.column("id", sa.Uuid()), sa.column("name"), sa.column("created_at"))
        principal = sa.table(
            "principal", *(sa.column(c) for c in ("name", "attributes", "created_at")),
            sa.column("id", sa.Uuid()), sa.column("workspace_id", sa.Uuid()),
        )  # fmt: skip
        wid, now = uuid.uuid4(), sa.func.current_timestamp()
        with engine.begin() as conn:
            conn.execute(ws.insert().values(id=wid, name="acme", created_at=now))
            for name, attrs in (("old", '{"team": "data"}'), ("viewer", '{"roles": ["viewer"]}')):
                conn.execute(
                    principal.insert().values(
                        id=uuid.uuid4(), workspace_id=wid, name=name, created_at=now,
                        attributes=sa.cast(attrs, JSONB) if backend == "postgresql" else attrs,
                    )
                )  # fmt: skip
        upgrade(url)
        with engine.connect() as conn:
            rows = dict(conn.execute(sa.text("SELECT name, attributes FROM principal")).all())
        decode = lambda v: v if isinstance(v, dict) else json.loads(v)  # noqa: E731
        assert decode(rows["old"]) == {"team": "data", "roles": ["admin"]}
        assert decode(rows["viewer"]) == {"roles": ["viewer"]}
    finally:
        engine.dispose()
