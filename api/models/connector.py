"""A connector of the catalog (not a table: the catalog is the entry-point registry)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.pagination import Page

__all__ = ["BrokenConnector", "ConnectorPage", "ConnectorPublic"]


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
