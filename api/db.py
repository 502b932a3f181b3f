"""The metadata DB engine: SQLite for the embedded default, PostgreSQL (psycopg 3) when scaled."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlmodel import create_engine

from api.settings import Settings

__all__ = ["create_db_engine"]


def create_db_engine(settings: Settings, **kwargs: Any) -> Engine:
    """An engine for ``settings.db_url``. SQLite gets foreign keys on, WAL and a busy timeout
    (the API serves from a thread pool); PostgreSQL gets a checked pool."""
    url = settings.db_url
    if settings.is_sqlite:
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            settings.home.expanduser().resolve().mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 10, "application_name": "openfuse-api"},
        **kwargs,
    )
