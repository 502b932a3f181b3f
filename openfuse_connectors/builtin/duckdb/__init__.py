"""DuckDB destination (and source): the embedded analytics default."""

from openfuse_connectors.builtin.duckdb.config import DuckDBConfig
from openfuse_connectors.builtin.duckdb.extractor import DuckDBExtractor
from openfuse_connectors.builtin.duckdb.loader import DuckDBLoader
from openfuse_connectors.connector import Connector

CONNECTOR = Connector(
    name="duckdb",
    config_model=DuckDBConfig,
    extractor=DuckDBExtractor,
    loader=DuckDBLoader,
    description="DuckDB database files (Arrow in and out, one transaction per load).",
)

__all__ = ["CONNECTOR", "DuckDBConfig", "DuckDBExtractor", "DuckDBLoader"]
