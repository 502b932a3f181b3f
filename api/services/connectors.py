"""The connector catalog of this installation, each with its config JSON Schema."""

from __future__ import annotations

from api.errors import Problem
from api.models.connector import BrokenConnector, ConnectorPage, ConnectorPublic
from api.pagination import decode_cursor, encode_cursor
from api.services.base import Ctx, check_limit, operation
from openfuse_connectors.registry import Registry

__all__ = ["get_connector", "list_connectors"]


def _public(registry: Registry, name: str) -> ConnectorPublic:
    c = registry.connectors[name]
    return ConnectorPublic(
        name=c.name,
        kinds=list(c.kinds),
        description=c.description,
        required_feature=c.required_feature,
        origin=registry.origins.get(name, ""),
        config_schema=c.config_model.json_schema() if c.config_model is not None else None,
    )


@operation("connector:list")
def list_connectors(ctx: Ctx, *, cursor: str | None = None, limit: int = 50) -> ConnectorPage:
    """Installed connectors, by name."""
    check_limit(limit)
    registry = ctx.registry
    names = sorted(registry.connectors)
    if cursor is not None:
        (after,) = decode_cursor(cursor, "connectors", [str])
        names = [n for n in names if n > after]
    page = names[:limit]
    more = len(names) > limit
    return ConnectorPage(
        items=[_public(registry, n) for n in page],
        next_cursor=encode_cursor("connectors", [page[-1]]) if more and page else None,
        broken=[BrokenConnector(name=b.name, error=b.error) for b in registry.broken.values()]
        if cursor is None
        else [],
    )


@operation("connector:read")
def get_connector(ctx: Ctx, name: str) -> ConnectorPublic:
    """One connector and its config schema."""
    if name not in ctx.registry.connectors:
        raise Problem.not_found("connector", name)
    return _public(ctx.registry, name)
