"""MySQL and MariaDB source (type mapping: :mod:`openfuse_connectors.builtin.mysql.sql`)."""

from openfuse_connectors.builtin.mysql.config import MySQLConfig, MySQLSSL
from openfuse_connectors.builtin.mysql.extractor import MySQLExtractor
from openfuse_connectors.connector import Connector

CONNECTOR = Connector(
    name="mysql",
    config_model=MySQLConfig,
    extractor=MySQLExtractor,
    description="MySQL and MariaDB tables and views (streamed, unbuffered, into Arrow batches).",
)

__all__ = ["CONNECTOR", "MySQLConfig", "MySQLExtractor", "MySQLSSL"]
