"""Files source and destination: CSV, JSON Lines and Parquet, local or through fsspec."""

from openfuse_connectors.builtin.files.config import FilesConfig
from openfuse_connectors.builtin.files.extractor import MODIFIED_AT, FilesExtractor
from openfuse_connectors.builtin.files.loader import FilesLoader
from openfuse_connectors.connector import Connector

CONNECTOR = Connector(
    name="files",
    config_model=FilesConfig,
    extractor=FilesExtractor,
    loader=FilesLoader,
    description="CSV, JSON Lines and Parquet files in a directory or fsspec URL (incremental by file time).",
)

__all__ = ["CONNECTOR", "MODIFIED_AT", "FilesConfig", "FilesExtractor", "FilesLoader"]
