"""OpenFuse connector SDK: base classes, contracts, registry and the sync engine."""

from openfuse_connectors.catalog import StreamInfo
from openfuse_connectors.config import ConnectorConfig
from openfuse_connectors.connector import Connector
from openfuse_connectors.errors import (
    ConfigError,
    ConnectorNotFoundError,
    FatalError,
    OpenFuseError,
    PipelineSpecError,
    PluginError,
    RetriableError,
    SchemaDriftError,
    SkippableRecordError,
    SourceUnreachableError,
)
from openfuse_connectors.extractor import Extractor
from openfuse_connectors.loader import Disposition, Loader, LoadTransaction, QuarantinedRow, WriteJob
from openfuse_connectors.registry import Registry, get_registry
from openfuse_connectors.spec import (
    ConnectorRef,
    PipelineSpec,
    SchemaDrift,
    StreamSpec,
    SyncMode,
    load_pipeline,
    parse_pipeline,
)
from openfuse_connectors.state import Cursor, StreamState
from openfuse_connectors.transformer import Transformer

__all__ = [
    "ConfigError",
    "Connector",
    "ConnectorConfig",
    "ConnectorNotFoundError",
    "ConnectorRef",
    "Cursor",
    "Disposition",
    "Extractor",
    "FatalError",
    "LoadTransaction",
    "Loader",
    "OpenFuseError",
    "PipelineSpec",
    "PipelineSpecError",
    "PluginError",
    "QuarantinedRow",
    "Registry",
    "RetriableError",
    "SchemaDrift",
    "SchemaDriftError",
    "SkippableRecordError",
    "SourceUnreachableError",
    "StreamInfo",
    "StreamSpec",
    "StreamState",
    "SyncMode",
    "Transformer",
    "WriteJob",
    "get_registry",
    "load_pipeline",
    "parse_pipeline",
]
