"""Small helpers shared by tests (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations


def pg_exec(url: str, *sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for s in sql:
            conn.execute(s)


def pg_rows(url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()
