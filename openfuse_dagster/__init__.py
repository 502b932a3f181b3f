"""OpenFuse on Dagster: connectors as resources, syncs as ops, jobs and assets (issue #4, not built yet)."""

__all__: list[str] = []
