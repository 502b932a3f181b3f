"""SQLite destination (and source): a single-file database from the standard library."""

from openfuse_connectors.builtin.sqlite.config import SQLiteConfig
from openfuse_connectors.builtin.sqlite.extractor import SQLiteExtractor
from openfuse_connectors.builtin.sqlite.loader import SQLiteLoader
from openfuse_connectors.connector import Connector

CONNECTOR = Connector(
    name="sqlite",
    config_model=SQLiteConfig,
    extractor=SQLiteExtractor,
    loader=SQLiteLoader,
    description="SQLite database files (one transaction per load, exact types recorded beside the tables).",
)

__all__ = ["CONNECTOR", "SQLiteConfig", "SQLiteExtractor", "SQLiteLoader"]
