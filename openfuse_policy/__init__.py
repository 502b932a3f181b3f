"""OpenFuse governance: ABAC policies on Cedar and license flags (issue #6, not built yet)."""

__all__: list[str] = []
