"""The conformance kit on the embedded connectors: DuckDB, SQLite and files (each format)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from openfuse_connectors.engine import run_pipeline
from openfuse_connectors.spec import parse_pipeline
from openfuse_connectors.testing import (
    DestinationConformance,
    MemorySource,
    SourceConformance,
    _registry,
    sample_rows,
)


def seed_through(connector: str, config: dict[str, Any], table: str = "items") -> None:
    """Load the kit's sample rows into a destination with the engine, so its source can read them."""
    dataset = uuid.uuid4().hex
    MemorySource.put(dataset, "items", sample_rows(range(1, 11)))
    spec = parse_pipeline(
        {
            "name": "seed",
            "source": {"connector": "memory", "config": {"dataset": dataset}},
            "destination": {"connector": connector, "config": config},
            "streams": [{"name": "items", "destination_table": table}],
        }
    )
    [r] = run_pipeline(spec, registry=_registry())
    assert r.ok, r.error


class TestDuckDBDestination(DestinationConformance):
    connector = "duckdb"

    @pytest.fixture
    def destination_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "w.duckdb")}


class TestSQLiteDestination(DestinationConformance):
    connector = "sqlite"

    @pytest.fixture
    def destination_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "w.sqlite")}


class TestFilesDestination(DestinationConformance):
    connector = "files"

    @pytest.fixture(params=["parquet", "csv", "jsonl"])
    def fmt(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def destination_config(self, tmp_path: Path, fmt: str) -> dict[str, Any]:
        return {"path": str(tmp_path / "out"), "format": fmt}


class TestDuckDBSource(SourceConformance):
    connector = "duckdb"

    @pytest.fixture
    def source(self, tmp_path: Path) -> tuple[dict[str, Any], str]:
        cfg = {"path": str(tmp_path / "s.duckdb")}
        seed_through("duckdb", cfg)
        return cfg, "items"


class TestSQLiteSource(SourceConformance):
    connector = "sqlite"

    @pytest.fixture
    def source(self, tmp_path: Path) -> tuple[dict[str, Any], str]:
        cfg = {"path": str(tmp_path / "s.sqlite")}
        seed_through("sqlite", cfg)
        return cfg, "items"


class TestFilesSource(SourceConformance):
    connector = "files"

    @pytest.fixture(params=["parquet", "csv", "jsonl"])
    def fmt(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def source(self, tmp_path: Path, fmt: str) -> tuple[dict[str, Any], str]:
        seed_through("files", {"path": str(tmp_path / "in"), "format": fmt})
        return {"path": str(tmp_path / "in")}, "items"


def test_a_replaced_range_is_refused_for_dedupe_streams_and_for_a_cursor_dropped_on_the_way(
    tmp_path: Path,
) -> None:
    """Only append streams load a replaced range (a dedupe stream merges on keys that may lie
    outside it), and only when the cursor column reaches the destination."""
    import datetime as dt

    import pyarrow as pa

    from openfuse_connectors import ConfigError
    from openfuse_connectors.engine import run_stream
    from openfuse_connectors.loader import CursorRange
    from openfuse_connectors.state import Cursor

    reg = _registry()
    dataset = uuid.uuid4().hex
    MemorySource.put(dataset, "items", sample_rows(range(1, 4)))
    t0 = pa.scalar(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), pa.timestamp("us", tz="UTC"))
    span = CursorRange(
        "updated_at", Cursor.from_scalar("updated_at", t0), Cursor.from_scalar("updated_at", t0)
    )
    cases = {
        "mode": {"mode": "incremental_dedupe", "cursor_field": "updated_at", "primary_key": ["id"]},
        "cursor_field": {
            "mode": "incremental_append",
            "cursor_field": "updated_at",
            "transforms": [{"type": "drop", "options": {"columns": ["updated_at"]}}],
        },
    }
    for field, stream in cases.items():
        spec = parse_pipeline(
            {
                "name": "ranges",
                "source": {"connector": "memory", "config": {"dataset": dataset}},
                "destination": {"connector": "duckdb", "config": {"path": str(tmp_path / "w.duckdb")}},
                "streams": [{"name": "items", **stream}],
            }
        )
        ex = reg.extractor("memory", {"dataset": dataset})
        loader = reg.loader("duckdb", {"path": str(tmp_path / "w.duckdb")})
        with pytest.raises(ConfigError) as ei:
            run_stream(spec, spec.streams[0], ex, loader, registry=reg, replace_range=span)
        loader.close()
        assert ei.value.field == field, ei.value
        assert ("only incremental_append" if field == "mode" else "does not reach the destination") in str(
            ei.value
        )
