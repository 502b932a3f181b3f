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
