"""The metadata store's tables (importing this registers them all on ``SQLModel.metadata``)."""

from api.models.api_key import ApiKey
from api.models.audit_log import AuditLog
from api.models.connection import Connection
from api.models.idempotency import IdempotencyKey
from api.models.pipeline import Pipeline
from api.models.policy import PolicyVersion
from api.models.principal import Principal
from api.models.stream_state import StreamStateEntry
from api.models.workspace import Workspace

__all__ = [
    "ApiKey",
    "AuditLog",
    "Connection",
    "IdempotencyKey",
    "Pipeline",
    "PolicyVersion",
    "Principal",
    "StreamStateEntry",
    "Workspace",
]
