"""The GraphQL API (``/graphql``): the REST operations again, through the same services."""

from api.graphql.schema import build_schema, graphql_router

__all__ = ["build_schema", "graphql_router"]
