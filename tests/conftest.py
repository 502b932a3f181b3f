"""Shared fixtures. Tests that need PostgreSQL fail loudly (never skip) when it is down."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cdc.cdc_support import Cluster

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("OPENFUSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_url(db: str) -> str:
    base, _, _ = PG_ADMIN.rpartition("/")
    return f"{base}/{db}"


@pytest.fixture(scope="session")
def pg_server() -> str:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as e:
        pytest.fail(f"PostgreSQL at {PG_ADMIN} is not reachable ({e}); run `make services`", pytrace=False)
    return PG_ADMIN


@pytest.fixture
def pg_db(pg_server: str) -> Iterator[str]:
    """A fresh database for one test, dropped afterwards. Yields its URL."""
    import psycopg

    name = f"of_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_pair(pg_server: str) -> Iterator[tuple[str, str]]:
    """Two fresh databases: (source URL, destination URL)."""
    import psycopg

    names = [f"of_test_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for n in names:
            conn.execute(f'CREATE DATABASE "{n}"')
    try:
        yield _pg_url(names[0]), _pg_url(names[1])
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            for n in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)')


@pytest.fixture(scope="session")
def cdc_cluster() -> Iterator[Cluster]:
    """A private PostgreSQL cluster with wal_level=logical (initdb on a free loopback port), started
    on first use and shared by the CDC, Dagster and API tests; the shared server is left alone."""
    from cdc.cdc_support import start_cluster, stop_cluster

    cluster = start_cluster()
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


@pytest.fixture
def cdc_source_db(cdc_cluster: Cluster) -> Iterator[str]:
    from cdc.cdc_support import pg

    """A fresh database of the private cluster (wal_level=logical); its slots are dropped after."""
    name = f"cdc_{uuid.uuid4().hex[:10]}"
    admin = cdc_cluster.url()
    pg(admin, f'CREATE DATABASE "{name}"')
    try:
        yield cdc_cluster.url(name)
    finally:
        pg(
            admin,
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
            f"WHERE database = '{name}' AND active_pid IS NOT NULL",
        )
        for _ in range(50):
            try:
                pg(
                    admin,
                    f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{name}'",
                )
                break
            except Exception:  # the terminated walsender may still hold its slot for a moment
                time.sleep(0.1)
        pg(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
