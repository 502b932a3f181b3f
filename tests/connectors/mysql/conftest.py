"""MySQL/MariaDB fixtures. The server must be up (tests fail, never skip, when it is down);
only the Chinook tests skip, and only when ../shared/datasets is absent."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from mysql_support import CHINOOK_SQL, SERVER, Exec, connect, make_exec


@pytest.fixture(scope="session")
def mysql_server() -> dict[str, Any]:
    import MySQLdb

    try:
        connect().close()
    except MySQLdb.Error as e:
        pytest.fail(
            f"MySQL/MariaDB at {SERVER['host']}:{SERVER['port']} is not reachable ({e}); start it, e.g. "
            "`start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`",
            pytrace=False,
        )
    return SERVER


@pytest.fixture
def mysql_db(mysql_server: dict[str, Any]) -> Iterator[tuple[dict[str, Any], Exec]]:
    """A fresh database for one test, dropped afterwards: (source config, run-SQL helper)."""
    name = f"of_test_{uuid.uuid4().hex[:10]}"
    make_exec("")(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield {**mysql_server, "database": name}, make_exec(name)
    finally:
        make_exec("")(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def chinook(mysql_server: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The Chinook sample loaded once into its own database; yields the source config."""
    if not CHINOOK_SQL.is_file():
        pytest.skip(f"Chinook sample data not found at {CHINOOK_SQL} (../shared/datasets is absent)")
    script = CHINOOK_SQL.read_text(encoding="utf-8")
    # The script creates and switches to `Chinook`; load it into a database of our own instead.
    script = re.sub(r"^\s*(DROP DATABASE|CREATE DATABASE|USE)\b[^;]*;", "", script, flags=re.M | re.I)
    name = f"of_test_chinook_{uuid.uuid4().hex[:8]}"
    make_exec("")(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        conn = connect(name)
        try:
            conn.query(script)
            while True:  # one result per statement of the script
                conn.store_result()
                if conn.next_result() != 0:
                    break
        finally:
            conn.close()
        yield {**mysql_server, "database": name}
    finally:
        make_exec("")(f"DROP DATABASE IF EXISTS `{name}`")
