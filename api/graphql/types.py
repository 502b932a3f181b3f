"""GraphQL types: the REST response models, converted; the REST request bodies, mirrored.

Output types are generated from the same pydantic models the REST API answers with
(``strawberry.experimental.pydantic``), so a field added to a response appears in both. Input
types are written out, one per request body, with every optional field defaulting to ``UNSET``:
:func:`plain` turns an input into exactly the JSON body REST would have received (a field not
given is a key not sent), and the operation validates it with the same pydantic model - same
defaults, same rules, same field paths in errors. A test checks each input names the fields of
its model.
"""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from typing import Any, NewType

import strawberry
from pydantic_core import to_jsonable_python
from strawberry.experimental.pydantic import type as pydantic_type
from strawberry.types.scalar import ScalarDefinition

from api.models.audit_log import AuditLogPage, AuditLogPublic, Outcome
from api.models.connection import (
    CheckResult,
    ConnectionCreate,
    ConnectionPage,
    ConnectionPublic,
    ConnectionUpdate,
    DiscoveredColumn,
    DiscoveredStream,
    DiscoverResult,
)
from api.models.connector import BrokenConnector, ConnectorPage, ConnectorPublic
from api.models.pipeline import (
    ConnectionRef,
    PipelineCreate,
    PipelineEndpoint,
    PipelinePage,
    PipelinePublic,
    PipelineStatus,
    PipelineUpdate,
)
from api.models.policy import (
    FeaturesPublic,
    LicensePublic,
    PolicyExplainRequest,
    PolicyExplanation,
    PolicyUpdate,
    PolicyVersionPage,
    PolicyVersionPublic,
)
from api.models.principal import PrincipalPublic
from api.models.run import (
    Materialization,
    RunCreate,
    RunEvent,
    RunEventPage,
    RunPage,
    RunPublic,
    RunStatus,
    RunSummary,
    StepResult,
    StepStatus,
)
from api.models.stream_state import (
    CurrentStreamState,
    StateCommit,
    StateEntryKind,
    StateReset,
    StateRollback,
    StreamStatePage,
    StreamStatePublic,
)
from api.models.workspace import WorkspacePublic
from api.services.audit import AuditExport
from openfuse_connectors.spec import SchemaDrift, StreamSpec, SyncMode, TransformSpec

__all__ = ["INPUTS", "JSON", "SCALARS", "Long", "plain"]


def _parse_json(value: object) -> object:
    return value


def _parse_long(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"a 64-bit integer expected, got {type(value).__name__}")
    n = int(value)
    if not -(2**63) <= n < 2**63:
        raise ValueError("out of the 64-bit range")
    return n


JSON = NewType("JSON", object)
Long = NewType("Long", int)

#: The custom scalars, for the schema's ``StrawberryConfig(scalar_map=...)``.
SCALARS: dict[object, ScalarDefinition] = {
    JSON: strawberry.scalar(
        name="JSON",
        description="Any JSON value (configs, tags, metadata - as in the REST API).",
        serialize=to_jsonable_python,
        parse_value=_parse_json,
    ),
    Long: strawberry.scalar(
        name="Long",
        description="A 64-bit integer (row and byte counts, entry ids).",
        serialize=int,
        parse_value=_parse_long,
    ),
}

# Enums shared with the REST models (GraphQL names are the members' names: `FULL_REFRESH_OVERWRITE`).
for _e in (SyncMode, SchemaDrift, Outcome, RunStatus, StepStatus, StateEntryKind):
    strawberry.enum(_e)


# -- outputs (from the REST response models)


@pydantic_type(model=WorkspacePublic, all_fields=True, name="Workspace")
class Workspace:
    pass


@pydantic_type(model=PrincipalPublic, all_fields=True, name="Principal")
class Principal:
    attributes: JSON


@pydantic_type(model=ConnectorPublic, all_fields=True, name="Connector")
class Connector:
    config_schema: JSON | None


@pydantic_type(model=BrokenConnector, all_fields=True, name="BrokenConnector")
class BrokenConnectorType:
    pass


@pydantic_type(model=ConnectorPage, all_fields=True, name="ConnectorPage")
class ConnectorPageType:
    pass


@pydantic_type(model=ConnectionPublic, all_fields=True, name="Connection")
class Connection:
    config: JSON


@pydantic_type(model=ConnectionPage, all_fields=True, name="ConnectionPage")
class ConnectionPageType:
    pass


@pydantic_type(model=CheckResult, all_fields=True, name="CheckResult")
class CheckResultType:
    pass


@pydantic_type(model=DiscoveredColumn, all_fields=True, name="DiscoveredColumn")
class DiscoveredColumnType:
    pass


@pydantic_type(model=DiscoveredStream, all_fields=True, name="DiscoveredStream")
class DiscoveredStreamType:
    pass


@pydantic_type(model=DiscoverResult, all_fields=True, name="DiscoverResult")
class DiscoverResultType:
    pass


@pydantic_type(model=TransformSpec, all_fields=True, name="Transform")
class Transform:
    options: JSON


@pydantic_type(model=StreamSpec, all_fields=True, name="Stream")
class Stream:
    column_tags: JSON


@pydantic_type(model=PipelineEndpoint, all_fields=True, name="PipelineEndpoint")
class PipelineEndpointType:
    pass


@pydantic_type(model=PipelinePublic, all_fields=True, name="Pipeline")
class Pipeline:
    tags: JSON
    cdc: JSON | None


@pydantic_type(model=PipelineStatus, all_fields=True, name="PipelineStatus")
class PipelineStatusType:
    slot: JSON | None


@pydantic_type(model=PipelinePage, all_fields=True, name="PipelinePage")
class PipelinePageType:
    pass


@pydantic_type(model=StreamStatePublic, all_fields=True, name="StreamStateEntry")
class StreamStateEntry:
    id: Long
    state: JSON | None
    rolled_back_to: Long | None


@pydantic_type(model=CurrentStreamState, all_fields=True, name="CurrentStreamState")
class CurrentStreamStateType:
    pass


@pydantic_type(model=StreamStatePage, all_fields=True, name="StreamStatePage")
class StreamStatePageType:
    pass


@pydantic_type(model=AuditLogPublic, all_fields=True, name="AuditEntry")
class AuditEntry:
    id: Long
    detail: JSON


@pydantic_type(model=AuditLogPage, all_fields=True, name="AuditLogPage")
class AuditLogPageType:
    pass


@pydantic_type(model=AuditExport, all_fields=True, name="AuditExport")
class AuditExportType:
    pass


@pydantic_type(model=LicensePublic, all_fields=True, name="License")
class License:
    pass


@pydantic_type(model=FeaturesPublic, all_fields=True, name="Features")
class Features:
    features: JSON
    descriptions: JSON


@pydantic_type(model=PolicyVersionPublic, all_fields=True, name="PolicyVersion")
class PolicyVersion:
    pass


@pydantic_type(model=PolicyVersionPage, all_fields=True, name="PolicyVersionPage")
class PolicyVersionPageType:
    pass


@pydantic_type(model=PolicyExplanation, all_fields=True, name="PolicyExplanation")
class PolicyExplanationType:
    pass


@pydantic_type(model=Materialization, all_fields=True, name="Materialization")
class MaterializationType:
    metadata: JSON


@pydantic_type(model=StepResult, all_fields=True, name="StepResult")
class StepResultType:
    rows_read: Long | None
    rows_written: Long | None
    rows_quarantined: Long | None
    bytes_written: Long | None


@pydantic_type(model=RunSummary, all_fields=True, name="RunSummary")
class RunSummaryType:
    tags: JSON


@pydantic_type(model=RunPublic, all_fields=True, name="Run")
class Run:
    tags: JSON
    rows_written: Long | None


@pydantic_type(model=RunPage, all_fields=True, name="RunPage")
class RunPageType:
    pass


@pydantic_type(model=RunEvent, all_fields=True, name="RunEvent")
class RunEventType:
    pass


@pydantic_type(model=RunEventPage, all_fields=True, name="RunEventPage")
class RunEventPageType:
    pass


# -- inputs (mirroring the REST request bodies; UNSET = not sent)

UNSET: Any = strawberry.UNSET


@strawberry.input(description="The body of `POST /api/v1/connections`.")
class ConnectionCreateInput:
    name: str
    connector: str
    config: JSON | None = UNSET


@strawberry.input(description="The body of `PATCH /api/v1/connections/{id}` (config merged key by key).")
class ConnectionUpdateInput:
    name: str | None = UNSET
    config: JSON | None = UNSET


@strawberry.input(description="A connection of this workspace, by name or id.")
class ConnectionRefInput:
    connection: str


@strawberry.input(description="A transform: a registered transformer and its options.")
class TransformInput:
    type: str
    options: JSON | None = UNSET


@strawberry.input(description="One stream of a pipeline.")
class StreamInput:
    name: str
    mode: SyncMode | None = UNSET
    cursor_field: str | None = UNSET
    primary_key: list[str] | None = UNSET
    columns: list[str] | None = UNSET
    destination_table: str | None = UNSET
    transforms: list[TransformInput] | None = UNSET
    passthrough: bool | None = UNSET
    column_tags: JSON | None = UNSET


@strawberry.input(description="The body of `POST /api/v1/pipelines`.")
class PipelineCreateInput:
    name: str
    source: ConnectionRefInput
    destination: ConnectionRefInput
    streams: list[StreamInput]
    schema_drift: SchemaDrift | None = UNSET
    schedule: str | None = UNSET
    tags: JSON | None = UNSET
    batch_size: int | None = UNSET
    cdc: JSON | None = UNSET


@strawberry.input(
    description="The body of `PATCH /api/v1/pipelines/{id}`: the fields given replace the stored ones."
)
class PipelineUpdateInput:
    name: str | None = UNSET
    source: ConnectionRefInput | None = UNSET
    destination: ConnectionRefInput | None = UNSET
    streams: list[StreamInput] | None = UNSET
    schema_drift: SchemaDrift | None = UNSET
    schedule: str | None = UNSET
    tags: JSON | None = UNSET
    batch_size: int | None = UNSET
    cdc: JSON | None = UNSET


@strawberry.input(description="The body of `POST /api/v1/pipelines/{id}/state`.")
class StateCommitInput:
    stream: str
    state: JSON
    run_id: str | None = UNSET


@strawberry.input(description="The body of `POST /api/v1/pipelines/{id}/state/reset`.")
class StateResetInput:
    streams: list[str] | None = UNSET


@strawberry.input(description="The body of `POST /api/v1/pipelines/{id}/state/rollback`.")
class StateRollbackInput:
    entry_id: Long


@strawberry.input(description="The body of `POST /api/v1/pipelines/{id}/runs`.")
class RunInput:
    streams: list[str] | None = UNSET
    full_refresh: bool | None = UNSET
    partition_key: str | None = UNSET


@strawberry.input(description="The body of `PUT /api/v1/policies`.")
class PolicyUpdateInput:
    text: str
    comment: str | None = UNSET


@strawberry.input(description="The body of `POST /api/v1/policies/explain`.")
class PolicyExplainInput:
    principal: JSON
    action: str
    resource: JSON


#: Each input type and the REST body model it mirrors (a test compares their fields).
INPUTS: dict[type, type] = {
    ConnectionCreateInput: ConnectionCreate,
    ConnectionUpdateInput: ConnectionUpdate,
    ConnectionRefInput: ConnectionRef,
    TransformInput: TransformSpec,
    StreamInput: StreamSpec,
    PipelineCreateInput: PipelineCreate,
    PipelineUpdateInput: PipelineUpdate,
    StateCommitInput: StateCommit,
    StateResetInput: StateReset,
    StateRollbackInput: StateRollback,
    RunInput: RunCreate,
    PolicyUpdateInput: PolicyUpdate,
    PolicyExplainInput: PolicyExplainRequest,
}


def plain(value: Any) -> Any:
    """An input as the JSON body REST would get: fields left ``UNSET`` are absent."""
    if value is UNSET:
        return UNSET
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(v) for f in dataclasses.fields(value) if (v := getattr(value, f.name)) is not UNSET
        }
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value
