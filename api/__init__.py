"""The OpenFuse API (REST and GraphQL): FastAPI app, metadata store, auth, runs through Dagster
and the audit log. See api/README.md.

The names below are imported on first use, so the ``openfuse`` CLI can load ``api.cli``
without pulling in FastAPI or SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.app import create_app
    from api.settings import Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from api.app import create_app

        return create_app
    if name == "Settings":
        from api.settings import Settings

        return Settings
    raise AttributeError(f"module 'api' has no attribute {name!r}")
