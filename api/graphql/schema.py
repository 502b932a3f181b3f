"""The GraphQL schema at ``/graphql``: the REST API's operations, one field each.

Every root field names its operation in its metadata (``{"operation": <op>}``) and resolves
through :func:`api.graphql.resolve.call`, which authorizes exactly as the REST route does; a test
pairs every REST route with its field. Queries are the reads, mutations the writes (``check``
and ``discover`` too: they are audited). Poll a run with ``run(id) { status steps { key status
rowsWritten } }``.

Root fields are nullable: a field that fails is null with an error whose ``extensions`` carry
the problem document (``status``, ``type``, ...), and the other fields still answer.
"""

from __future__ import annotations

import functools
import logging
import uuid
from datetime import datetime
from typing import Any, TypeVar, cast

import strawberry
from graphql import GraphQLError
from pydantic import BaseModel
from strawberry.extensions import MaskErrors
from strawberry.fastapi import GraphQLRouter
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, Info

from api.graphql import types as t
from api.graphql.resolve import GraphQLContext, ProblemError, call, get_context
from api.models.audit_log import Outcome
from api.models.connection import ConnectionCreate, ConnectionUpdate
from api.models.pipeline import PipelineCreate, PipelineUpdate
from api.models.policy import PolicyExplainRequest, PolicyUpdate
from api.models.run import RunCreate, RunStatus
from api.models.stream_state import StateCommit, StateReset, StateRollback
from api.services import audit as audit_ops
from api.services import connections as connection_ops
from api.services import connectors as connector_ops
from api.services import governance as gov_ops
from api.services import pipelines as pipeline_ops
from api.services import principals as principal_ops
from api.services import runs as run_ops
from api.services import stream_state as state_ops
from api.services.base import Operation

__all__ = ["build_schema", "graphql_router"]

log = logging.getLogger(__name__)

Ctx = Info[GraphQLContext, None]
T = TypeVar("T")


def _to(cls: type[T], value: BaseModel) -> T:
    """The GraphQL object of a REST response model (strawberry's pydantic conversion)."""
    return cast(T, cast(Any, cls).from_pydantic(value))


def _op(op: Operation[..., Any]) -> dict[str, Any]:
    doc = (op.fn.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    return {"metadata": {"operation": op}, "description": doc or None}


@strawberry.type(description="Reads. Each field is the twin of a REST `GET` route.")
class Query:
    @strawberry.field(**_op(principal_ops.me))
    async def me(self, info: Ctx) -> t.Principal | None:
        return _to(t.Principal, await call(info, principal_ops.me))

    @strawberry.field(**_op(connector_ops.list_connectors))
    async def connectors(
        self, info: Ctx, cursor: str | None = None, limit: int = 50
    ) -> t.ConnectorPageType | None:
        page = await call(info, connector_ops.list_connectors, cursor=cursor, limit=limit)
        return _to(t.ConnectorPageType, page)

    @strawberry.field(**_op(connector_ops.get_connector))
    async def connector(self, info: Ctx, name: str) -> t.Connector | None:
        return _to(t.Connector, await call(info, connector_ops.get_connector, name))

    @strawberry.field(**_op(connection_ops.list_connections))
    async def connections(
        self, info: Ctx, connector: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> t.ConnectionPageType | None:
        page = await call(
            info, connection_ops.list_connections, connector=connector, cursor=cursor, limit=limit
        )
        return _to(t.ConnectionPageType, page)

    @strawberry.field(**_op(connection_ops.get_connection))
    async def connection(self, info: Ctx, id: uuid.UUID) -> t.Connection | None:
        return _to(t.Connection, await call(info, connection_ops.get_connection, target=id))

    @strawberry.field(**_op(pipeline_ops.list_pipelines))
    async def pipelines(
        self, info: Ctx, tag: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> t.PipelinePageType | None:
        page = await call(info, pipeline_ops.list_pipelines, tag=tag, cursor=cursor, limit=limit)
        return _to(t.PipelinePageType, page)

    @strawberry.field(**_op(pipeline_ops.get_pipeline))
    async def pipeline(self, info: Ctx, id: uuid.UUID) -> t.Pipeline | None:
        return _to(t.Pipeline, await call(info, pipeline_ops.get_pipeline, target=id))

    @strawberry.field(**_op(state_ops.current_state))
    async def stream_states(self, info: Ctx, pipeline_id: uuid.UUID) -> list[t.CurrentStreamStateType] | None:
        states = await call(info, state_ops.current_state, target=pipeline_id)
        return [_to(t.CurrentStreamStateType, s) for s in states]

    @strawberry.field(**_op(state_ops.state_history))
    async def state_history(
        self,
        info: Ctx,
        pipeline_id: uuid.UUID,
        stream: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> t.StreamStatePageType | None:
        page = await call(
            info, state_ops.state_history, target=pipeline_id, stream=stream, cursor=cursor, limit=limit
        )
        return _to(t.StreamStatePageType, page)

    @strawberry.field(**_op(audit_ops.list_audit))
    async def audit_log(
        self,
        info: Ctx,
        actor: str | None = None,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        outcome: Outcome | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> t.AuditLogPageType | None:
        page = await call(
            info,
            audit_ops.list_audit,
            actor=actor,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            outcome=outcome,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
        )
        return _to(t.AuditLogPageType, page)

    @strawberry.field(**_op(pipeline_ops.pipeline_status))
    async def pipeline_status(self, info: Ctx, id: uuid.UUID) -> t.PipelineStatusType | None:
        return _to(t.PipelineStatusType, await call(info, pipeline_ops.pipeline_status, target=id))

    @strawberry.field(**_op(audit_ops.export_audit))
    async def audit_export(
        self, info: Ctx, since: datetime | None = None, until: datetime | None = None
    ) -> t.AuditExportType | None:
        return _to(t.AuditExportType, await call(info, audit_ops.export_audit, since=since, until=until))

    @strawberry.field(**_op(gov_ops.get_license))
    async def license(self, info: Ctx) -> t.License | None:
        return _to(t.License, await call(info, gov_ops.get_license))

    @strawberry.field(**_op(gov_ops.get_features))
    async def features(self, info: Ctx) -> t.Features | None:
        return _to(t.Features, await call(info, gov_ops.get_features))

    @strawberry.field(**_op(gov_ops.get_policies))
    async def policies(self, info: Ctx) -> t.PolicyVersion | None:
        return _to(t.PolicyVersion, await call(info, gov_ops.get_policies))

    @strawberry.field(**_op(gov_ops.list_policy_versions))
    async def policy_versions(
        self, info: Ctx, cursor: str | None = None, limit: int = 50
    ) -> t.PolicyVersionPageType | None:
        page = await call(info, gov_ops.list_policy_versions, cursor=cursor, limit=limit)
        return _to(t.PolicyVersionPageType, page)

    @strawberry.field(**_op(gov_ops.explain_decision))
    async def explain_decision(
        self, info: Ctx, input: t.PolicyExplainInput
    ) -> t.PolicyExplanationType | None:
        got = await call(info, gov_ops.explain_decision, body=(PolicyExplainRequest, input))
        return _to(t.PolicyExplanationType, got)

    @strawberry.field(**_op(run_ops.list_runs))
    async def runs(
        self,
        info: Ctx,
        pipeline_id: uuid.UUID | None = None,
        status: RunStatus | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> t.RunPageType | None:
        page = await call(
            info, run_ops.list_runs, pipeline_id=pipeline_id, status=status, cursor=cursor, limit=limit
        )
        return _to(t.RunPageType, page)

    @strawberry.field(**_op(run_ops.get_run))
    async def run(self, info: Ctx, id: uuid.UUID) -> t.Run | None:
        return _to(t.Run, await call(info, run_ops.get_run, target=id))

    @strawberry.field(**_op(run_ops.list_run_events))
    async def run_events(
        self, info: Ctx, id: uuid.UUID, cursor: str | None = None, limit: int = 100
    ) -> t.RunEventPageType | None:
        page = await call(info, run_ops.list_run_events, target=id, cursor=cursor, limit=limit)
        return _to(t.RunEventPageType, page)


@strawberry.type(
    description="Writes (audited). Each field is the twin of a REST `POST`/`PATCH`/`DELETE` route."
)
class Mutation:
    @strawberry.mutation(**_op(connection_ops.create_connection))
    async def create_connection(self, info: Ctx, input: t.ConnectionCreateInput) -> t.Connection | None:
        conn = await call(info, connection_ops.create_connection, body=(ConnectionCreate, input))
        return _to(t.Connection, conn)

    @strawberry.mutation(**_op(connection_ops.update_connection))
    async def update_connection(
        self, info: Ctx, id: uuid.UUID, input: t.ConnectionUpdateInput
    ) -> t.Connection | None:
        conn = await call(info, connection_ops.update_connection, target=id, body=(ConnectionUpdate, input))
        return _to(t.Connection, conn)

    @strawberry.mutation(**_op(connection_ops.delete_connection))
    async def delete_connection(self, info: Ctx, id: uuid.UUID) -> bool | None:
        await call(info, connection_ops.delete_connection, target=id)
        return True

    @strawberry.mutation(**_op(connection_ops.check_connection))
    async def check_connection(
        self, info: Ctx, id: uuid.UUID, role: str | None = None
    ) -> t.CheckResultType | None:
        result = await call(info, connection_ops.check_connection, target=id, role=role)
        return _to(t.CheckResultType, result)

    @strawberry.mutation(**_op(connection_ops.discover_connection))
    async def discover_connection(self, info: Ctx, id: uuid.UUID) -> t.DiscoverResultType | None:
        return _to(t.DiscoverResultType, await call(info, connection_ops.discover_connection, target=id))

    @strawberry.mutation(**_op(pipeline_ops.create_pipeline))
    async def create_pipeline(self, info: Ctx, input: t.PipelineCreateInput) -> t.Pipeline | None:
        p = await call(info, pipeline_ops.create_pipeline, body=(PipelineCreate, input))
        return _to(t.Pipeline, p)

    @strawberry.mutation(**_op(pipeline_ops.update_pipeline))
    async def update_pipeline(
        self, info: Ctx, id: uuid.UUID, input: t.PipelineUpdateInput
    ) -> t.Pipeline | None:
        p = await call(info, pipeline_ops.update_pipeline, target=id, body=(PipelineUpdate, input))
        return _to(t.Pipeline, p)

    @strawberry.mutation(**_op(pipeline_ops.delete_pipeline))
    async def delete_pipeline(self, info: Ctx, id: uuid.UUID) -> bool | None:
        await call(info, pipeline_ops.delete_pipeline, target=id)
        return True

    @strawberry.mutation(**_op(state_ops.record_state))
    async def record_state(
        self, info: Ctx, pipeline_id: uuid.UUID, input: t.StateCommitInput
    ) -> t.StreamStateEntry | None:
        entry = await call(info, state_ops.record_state, target=pipeline_id, body=(StateCommit, input))
        return _to(t.StreamStateEntry, entry)

    @strawberry.mutation(**_op(state_ops.reset_state))
    async def reset_state(
        self, info: Ctx, pipeline_id: uuid.UUID, input: t.StateResetInput | None = None
    ) -> list[t.StreamStateEntry] | None:
        entries = await call(info, state_ops.reset_state, target=pipeline_id, body=(StateReset, input))
        return [_to(t.StreamStateEntry, e) for e in entries]

    @strawberry.mutation(**_op(state_ops.rollback_state))
    async def rollback_state(
        self, info: Ctx, pipeline_id: uuid.UUID, input: t.StateRollbackInput
    ) -> t.StreamStateEntry | None:
        entry = await call(info, state_ops.rollback_state, target=pipeline_id, body=(StateRollback, input))
        return _to(t.StreamStateEntry, entry)

    @strawberry.mutation(**_op(gov_ops.update_policies))
    async def update_policies(self, info: Ctx, input: t.PolicyUpdateInput) -> t.PolicyVersion | None:
        return _to(t.PolicyVersion, await call(info, gov_ops.update_policies, body=(PolicyUpdate, input)))

    @strawberry.mutation(**_op(run_ops.launch_run))
    async def launch_run(
        self,
        info: Ctx,
        pipeline_id: uuid.UUID,
        input: t.RunInput | None = None,
        idempotency_key: str | None = None,
    ) -> t.Run | None:
        launched = await call(
            info,
            run_ops.launch_run,
            target=pipeline_id,
            body=(RunCreate, input),
            idempotency_key=idempotency_key,
        )
        return _to(t.Run, launched.run)

    @strawberry.mutation(**_op(run_ops.cancel_run))
    async def cancel_run(self, info: Ctx, id: uuid.UUID) -> t.Run | None:
        return _to(t.Run, await call(info, run_ops.cancel_run, target=id))


def _mask(error: GraphQLError) -> bool:
    """Hide the message of errors that are not problems (a bug's text may quote anything)."""
    return error.original_error is not None and not isinstance(error.original_error, ProblemError)


class _Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Problems are answers, not faults (and a 500 was logged where it happened).
        unexpected = [
            e
            for e in errors
            if e.original_error is not None and not isinstance(e.original_error, ProblemError)
        ]
        super().process_errors(unexpected, execution_context)


@functools.cache
def build_schema() -> strawberry.Schema:
    return _Schema(
        query=Query,
        mutation=Mutation,
        extensions=[lambda: MaskErrors(should_mask_error=_mask)],
        config=StrawberryConfig(scalar_map=t.SCALARS),
    )


def graphql_router() -> GraphQLRouter[GraphQLContext, None]:
    """``/graphql``: POST queries (GET shows GraphiQL)."""
    return GraphQLRouter(
        build_schema(),
        path="/graphql",
        context_getter=get_context,
        allow_queries_via_get=False,
        graphql_ide="graphiql",
    )
