"""The source conformance kit on the MySQL connector (MariaDB here)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from mysql_support import Exec

from openfuse_connectors.testing import SourceConformance, sample_rows


class TestMySQLSource(SourceConformance):
    connector = "mysql"

    @pytest.fixture
    def source(self, mysql_db: tuple[dict[str, Any], Exec]) -> tuple[dict[str, Any], str]:
        config, run = mysql_db
        run(
            "CREATE TABLE items (id bigint PRIMARY KEY, name varchar(100), amount decimal(12,2), "
            "updated_at timestamp(6) NULL, active bool)"
        )
        rows = [
            (
                r["id"],
                r["name"],
                r["amount"],
                r["updated_at"].astimezone(dt.UTC).replace(tzinfo=None),
                r["active"],
            )
            for r in sample_rows(range(1, 11))
        ]
        run("INSERT INTO items VALUES (%s, %s, %s, %s, %s)", rows, many=True)
        return config, "items"
