"""The OpenFuse REST + GraphQL API (issue #5, not built yet)."""

__all__: list[str] = []
