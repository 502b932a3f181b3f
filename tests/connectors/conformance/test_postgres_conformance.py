"""The conformance kit on the PostgreSQL connector (source and destination)."""

from __future__ import annotations

from typing import Any

import pytest
from support import pg_exec

from openfuse_connectors.testing import DestinationConformance, SourceConformance, sample_rows

pytestmark = pytest.mark.postgres


class TestPostgresDestination(DestinationConformance):
    connector = "postgres"

    @pytest.fixture
    def destination_config(self, pg_db: str) -> dict[str, Any]:
        return {"dsn": pg_db, "schema": "conformance"}


class TestPostgresSource(SourceConformance):
    connector = "postgres"

    @pytest.fixture
    def source(self, pg_db: str) -> tuple[dict[str, Any], str]:
        import psycopg

        pg_exec(
            pg_db,
            "CREATE TABLE public.items (id bigint PRIMARY KEY, name text, amount numeric(12,2), "
            "updated_at timestamptz, active boolean)",
        )
        with psycopg.connect(pg_db) as conn:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO public.items VALUES (%(id)s, %(name)s, %(amount)s, %(updated_at)s, %(active)s)",
                    sample_rows(range(1, 11)),
                )
            conn.commit()
        return {"dsn": pg_db}, "public.items"
