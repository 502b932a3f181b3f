"""PostgreSQL source and destination."""

from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.builtin.postgres.extractor import PostgresExtractor
from openfuse_connectors.builtin.postgres.loader import PostgresLoader
from openfuse_connectors.connector import Connector

CONNECTOR = Connector(
    name="postgres",
    config_model=PostgresConfig,
    extractor=PostgresExtractor,
    loader=PostgresLoader,
    description="PostgreSQL tables and views (binary COPY both ways, pass-through when possible).",
)

__all__ = ["CONNECTOR", "PostgresConfig", "PostgresExtractor", "PostgresLoader"]
