"""Helpers for the MySQL source tests: where the test server is, connecting, running SQL."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from openfuse_connectors.builtin.mysql import CONNECTOR
from openfuse_connectors.registry import Registry

REPO = Path(__file__).resolve().parents[3]
CHINOOK_SQL = REPO.parent / "shared" / "datasets" / "chinook" / "Chinook_MySql.sql"
_URL = urlsplit(os.environ.get("OPENFUSE_TEST_MYSQL", "mysql://root@127.0.0.1:3306"))
SERVER: dict[str, Any] = {
    "host": _URL.hostname or "127.0.0.1",
    "port": _URL.port or 3306,
    "user": unquote(_URL.username or "root"),
    "password": unquote(_URL.password or ""),
}

Exec = Callable[..., list[tuple[Any, ...]]]


def mysql_registry() -> Registry:
    """The installed registry, plus the mysql connector until its entry point is declared."""
    reg = Registry.from_entry_points()
    if "mysql" not in reg.connectors:
        reg.add(CONNECTOR, origin="tests/connectors/mysql")
    return reg


def connect(database: str | None = None) -> Any:
    """A plain driver connection for arranging data (UTC session, utf8mb4, autocommit)."""
    import MySQLdb

    conn = MySQLdb.connect(
        host=SERVER["host"],
        port=SERVER["port"],
        user=SERVER["user"],
        password=SERVER["password"],
        database=database or "",
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=5,
        init_command="SET time_zone = '+00:00'",
    )
    return conn


def make_exec(database: str) -> Exec:
    def run(
        sql: str, params: Any = None, *, many: bool = False, sql_mode: str | None = None
    ) -> list[tuple[Any, ...]]:
        conn = connect(database)
        try:
            cur = conn.cursor()
            if sql_mode is not None:  # e.g. "" to store zero dates
                cur.execute("SET SESSION sql_mode = %s", (sql_mode,))
            if many:
                cur.executemany(sql, params)
            else:
                cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    return run
