"""``/connectors``: the connector catalog of this installation, each with its config JSON Schema."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from api.auth.dependencies import Authorize, Guard
from api.deps import RegistryDep
from api.errors import Problem
from api.pagination import CursorParam, LimitParam, Page, decode_cursor, encode_cursor
from openfuse_connectors.registry import Registry

__all__ = ["router"]

router = APIRouter(prefix="/connectors", tags=["connectors"])


class ConnectorPublic(BaseModel):
    name: str
    kinds: list[str] = Field(description="Any of `source`, `destination`, `transform`.")
    description: str
    required_feature: str | None = Field(description="License feature needed; null in the community edition.")
    origin: str = Field(description="Distribution (or module) that registered it.")
    config_schema: dict[str, Any] | None = Field(
        description="JSON Schema of the connection config; secret fields are `writeOnly`. Null for transforms."
    )


class BrokenConnector(BaseModel):
    name: str
    error: str


class ConnectorPage(Page[ConnectorPublic]):
    broken: list[BrokenConnector] = Field(
        default_factory=list, description="Plugins that failed to load (first page only)."
    )


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


@router.get("", response_model=ConnectorPage)
def list_connectors(
    guard: Annotated[Guard, Authorize("connector:list")],
    registry: RegistryDep,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> ConnectorPage:
    """Installed connectors, by name."""
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


@router.get("/{name}", response_model=ConnectorPublic)
def get_connector(
    guard: Annotated[Guard, Authorize("connector:read")],
    registry: RegistryDep,
    name: Annotated[str, Path(max_length=100)],
) -> ConnectorPublic:
    """One connector and its config schema."""
    if name not in registry.connectors:
        raise Problem.not_found("connector", name)
    return _public(registry, name)
