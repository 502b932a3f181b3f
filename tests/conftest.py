"""Shared fixtures. Tests that need PostgreSQL fail loudly (never skip) when it is down."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

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
